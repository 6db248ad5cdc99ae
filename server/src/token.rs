//! The join token, k3s-style: `K10<sha256 of the CA certificate PEM>::server:<secret>`. The hash lets
//! a joining agent check that `/cacerts` came from this cluster; the secret is what it proves itself
//! with. This module owns the token file in the data dir and the check of presented credentials.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("--token: a K10 token must read K10<ca-hash>::<user>:<secret>")]
    Malformed,
    #[error("--token: the secret is empty")]
    Empty,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: anyhow::Error,
    },
}

/// The cluster's join token.
#[derive(Clone)]
pub struct JoinToken {
    secret: String,
    full: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(..)")
    }
}

impl JoinToken {
    /// The token for the CA in `ca_pem` and `secret`.
    pub fn new(ca_pem: &str, secret: &str) -> JoinToken {
        JoinToken { secret: secret.to_string(), full: format!("K10{}::server:{secret}", ca_hash(ca_pem)) }
    }

    /// `K10<ca-hash>::server:<secret>`: what agents are given.
    pub fn full(&self) -> &str {
        &self.full
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `password` is this cluster's secret or its full token. Both sides are hashed first so
    /// the comparison takes the same time whatever the length or content of the guess.
    pub fn accepts(&self, password: &str) -> bool {
        let guess = Sha256::digest(password.as_bytes());
        let secret = Sha256::digest(self.secret.as_bytes());
        let full = Sha256::digest(self.full.as_bytes());
        let a = guess.as_slice().ct_eq(secret.as_slice());
        let b = guess.as_slice().ct_eq(full.as_slice());
        bool::from(a | b)
    }

    /// Whether an `Authorization: Basic base64(user:password)` header value carries this token, with
    /// the user an agent (`node`) or a server (`server`) joins as.
    pub fn accepts_basic(&self, header: &str) -> bool {
        let Some(encoded) = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        match text.split_once(':') {
            Some(("node" | "server", password)) => self.accepts(password),
            _ => false,
        }
    }
}

/// Lower-case hex SHA-256 of the CA certificate file's bytes, as the token carries it.
pub fn ca_hash(ca_pem: &str) -> String {
    Sha256::digest(ca_pem.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret in a configured or stored token: what follows `::<user>:` in a K10 token, else all of it.
pub fn secret_of(token: &str) -> Result<String, TokenError> {
    let token = token.trim();
    let secret = match token.strip_prefix("K10") {
        Some(rest) => {
            let (_, cred) = rest.split_once("::").ok_or(TokenError::Malformed)?;
            let (_, secret) = cred.split_once(':').ok_or(TokenError::Malformed)?;
            secret
        }
        None => token,
    };
    if secret.is_empty() {
        return Err(TokenError::Empty);
    }
    Ok(secret.to_string())
}

/// The token for this cluster, kept in `<data_dir>/token`: the configured one when given, else the
/// stored secret (older versions stored a bare secret, which keeps working), else a new random one.
/// The file is rewritten in the full form whenever that differs from what it holds.
pub fn ensure(data_dir: &Path, configured: Option<&str>, ca_pem: &str) -> Result<JoinToken, TokenError> {
    let path = data_dir.join("token");
    let io = |e: anyhow::Error| TokenError::Io { path: path.display().to_string(), source: e };
    let stored = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e.into())),
    };
    let secret = match (configured, &stored) {
        (Some(t), _) => secret_of(t)?,
        (None, Some(t)) => secret_of(t)?,
        (None, None) => random_secret(),
    };
    if let Some(t) = configured.filter(|t| t.starts_with("K10")) {
        let want = format!("K10{}::", ca_hash(ca_pem));
        if !t.starts_with(&want) {
            tracing::warn!(
                "--token carries a CA hash that is not this cluster's CA: agents given it will refuse /cacerts"
            );
        }
    }
    let token = JoinToken::new(ca_pem, &secret);
    if stored.as_deref() != Some(token.full()) {
        crate::pki::write_private(&path, token.full()).map_err(io)?;
    }
    Ok(token)
}

fn random_secret() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..32).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn secrets_are_read_from_either_form() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("abc123", Ok("abc123")),
            ("  abc123\n", Ok("abc123")),
            ("K10deadbeef::server:s3cret", Ok("s3cret")),
            ("K10deadbeef::node:with:colon", Ok("with:colon")),
            ("K10deadbeef", Err(())),
            ("K10deadbeef::server", Err(())),
            ("K10deadbeef::server:", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            let got = secret_of(input);
            match want {
                Ok(w) => assert_eq!(got.as_deref().ok(), Some(*w), "{input:?}"),
                Err(()) => assert!(got.is_err(), "{input:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn the_full_token_pins_the_ca() {
        let t = JoinToken::new(CA, "s");
        assert_eq!(t.full(), format!("K10{}::server:s", ca_hash(CA)));
        assert_eq!(ca_hash(CA).len(), 64);
        assert_ne!(ca_hash(CA), ca_hash("other"));
    }

    #[test]
    fn credentials_are_checked() {
        let t = JoinToken::new(CA, "s3cret");
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        let cases = [
            (basic("node:s3cret"), true),
            (basic("server:s3cret"), true),
            (basic(&format!("node:{}", t.full())), true),
            (basic("node:s3cre"), false),
            (basic("node:s3cret2"), false),
            (basic("admin:s3cret"), false),
            (basic("s3cret"), false),
            ("Bearer s3cret".to_string(), false),
            ("Basic !!!".to_string(), false),
        ];
        for (header, want) in cases {
            assert_eq!(t.accepts_basic(&header), want, "{header}");
        }
    }

    #[test]
    fn the_token_file_keeps_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), None, CA).unwrap();
        assert_eq!(first.secret().len(), 32);
        assert_eq!(std::fs::read_to_string(dir.path().join("token")).unwrap(), first.full());
        let again = ensure(dir.path(), None, CA).unwrap();
        assert_eq!(again.full(), first.full());

        // A bare secret from an older version keeps its secret and is upgraded to the full form.
        std::fs::write(dir.path().join("token"), "oldsecret\n").unwrap();
        let upgraded = ensure(dir.path(), None, CA).unwrap();
        assert_eq!(upgraded.secret(), "oldsecret");
        assert_eq!(std::fs::read_to_string(dir.path().join("token")).unwrap(), upgraded.full());

        let flag = ensure(dir.path(), Some("K10abc::server:fromflag"), CA).unwrap();
        assert_eq!(flag.secret(), "fromflag");
        assert_eq!(flag.full(), format!("K10{}::server:fromflag", ca_hash(CA)));
        assert_eq!(ensure(dir.path(), Some("bare"), CA).unwrap().secret(), "bare");
        assert!(ensure(dir.path(), Some("K10nothing"), CA).is_err());
    }
}
