//! The durable half of the store: one SQLite file in WAL mode. Each write is one transaction that
//! changes the object row and the revision high-water mark together, so a crash at any moment leaves
//! either the whole write or none of it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::Key;

#[derive(Debug, thiserror::Error)]
#[error("sqlite {path}: {source}")]
pub struct SqliteError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

pub struct Db {
    conn: Connection,
    path: PathBuf,
}

type Row = (Key, i64, Vec<u8>);

impl Db {
    /// Opens (creating if needed) the database; returns it, every stored object, and the highest
    /// revision that may have been handed out.
    pub fn open(path: &Path) -> Result<(Db, Vec<Row>, i64), SqliteError> {
        let err = |source| SqliteError { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        // synchronous=NORMAL in WAL mode: a power cut can lose the last commits but never corrupts the
        // database, and a killed process loses nothing; FULL would fsync on every write, which the SD
        // cards this runs on pay for in wear and latency.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA foreign_keys=OFF;
             PRAGMA wal_autocheckpoint=1000;
             CREATE TABLE IF NOT EXISTS objects (
                 resource TEXT NOT NULL,
                 namespace TEXT NOT NULL,
                 name TEXT NOT NULL,
                 rv INTEGER NOT NULL,
                 data BLOB NOT NULL,
                 PRIMARY KEY (resource, namespace, name)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);",
        )
        .map_err(err)?;
        let revision: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| r.get(0))
            .optional()
            .map_err(err)?
            .unwrap_or(0);
        let rows = {
            let mut stmt = conn.prepare("SELECT resource, namespace, name, rv, data FROM objects").map_err(err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((Key { resource: r.get(0)?, namespace: r.get(1)?, name: r.get(2)? }, r.get(3)?, r.get(4)?))
                })
                .map_err(err)?;
            rows.collect::<Result<Vec<Row>, _>>().map_err(err)?
        };
        Ok((Db { conn, path: path.to_path_buf() }, rows, revision))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> SqliteError {
        SqliteError { path: self.path.clone(), source }
    }

    pub fn put(&mut self, key: &Key, rev: i64, json: &[u8]) -> Result<(), SqliteError> {
        let tx = self.conn.transaction().map_err(|e| SqliteError { path: self.path.clone(), source: e })?;
        let res = (|| {
            tx.prepare_cached(
                "INSERT INTO objects (resource, namespace, name, rv, data) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (resource, namespace, name) DO UPDATE SET rv = excluded.rv, data = excluded.data",
            )?
            .execute(params![key.resource, key.namespace, key.name, rev, json])?;
            tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'revision'")?
                .execute(params![rev])?;
            tx.commit()
        })();
        res.map_err(|e| self.err(e))
    }

    pub fn delete(&mut self, key: &Key, rev: i64) -> Result<(), SqliteError> {
        let tx = self.conn.transaction().map_err(|e| SqliteError { path: self.path.clone(), source: e })?;
        let res = (|| {
            tx.prepare_cached("DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3")?
                .execute(params![key.resource, key.namespace, key.name])?;
            tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'revision'")?
                .execute(params![rev])?;
            tx.commit()
        })();
        res.map_err(|e| self.err(e))
    }

    /// Records that revisions up to `upto` may be handed out without their own durable write.
    pub fn reserve(&mut self, upto: i64) -> Result<(), SqliteError> {
        self.conn
            .prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'revision'")
            .and_then(|mut s| s.execute(params![upto]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
