//! Streaming a container's CRI log file as the body of `GET /containerLogs/...`, following it while the container
//! runs.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;

use crate::cri_log::{tail_start, Flow, LogRenderer};
use crate::{LogRequest, LogSource};

/// How often a followed file is checked for new lines.
const POLL: Duration = Duration::from_millis(100);
/// Output is sent in chunks of about this size (and whenever the reader catches up with the file).
const CHUNK: usize = 32 * 1024;

/// Opens the log and returns the receiving end of its rendered chunks; the channel closes at the end of the log
/// (carrying an `Err` first if reading failed midway). Opening errors are returned directly so they can still
/// become an error reply.
pub(crate) fn open(src: LogSource, req: LogRequest) -> io::Result<mpsc::Receiver<io::Result<Bytes>>> {
    let mut file = File::open(&src.path)?;
    let start = tail_start(&mut file, req.tail_lines.unwrap_or(-1))?;
    file.seek(SeekFrom::Start(start))?;
    let (tx, rx) = mpsc::channel(8);
    // Blocking reads on a blocking-pool thread: std's BufReader keeps working after EOF when the file grows.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = pump(BufReader::new(file), &src, &req, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(rx)
}

fn pump(
    mut reader: BufReader<File>,
    src: &LogSource,
    req: &LogRequest,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut renderer = LogRenderer::new(req, Utc::now());
    let mut out = Vec::with_capacity(CHUNK);
    let mut line = Vec::new();
    // Whether the container was running before the current pass over the file: after it is seen stopped, one more
    // pass to EOF picks up everything it wrote.
    let mut was_running = true;
    let send = |out: &mut Vec<u8>| -> bool {
        if out.is_empty() {
            return true;
        }
        tx.blocking_send(Ok(Bytes::from(std::mem::take(out)))).is_ok()
    };
    loop {
        reader.read_until(b'\n', &mut line)?;
        if line.last() == Some(&b'\n') {
            let flow = renderer.feed(&line, &mut out);
            line.clear();
            if flow == Flow::Done {
                break;
            }
            if out.len() >= CHUNK && !send(&mut out) {
                return Ok(());
            }
            continue;
        }
        // End of file; `line` may hold the start of a line still being written.
        if !req.follow || !was_running {
            if !line.is_empty() {
                renderer.feed(&line, &mut out);
            }
            break;
        }
        if !send(&mut out) || tx.is_closed() {
            return Ok(());
        }
        was_running = (src.running)();
        if was_running {
            std::thread::sleep(POLL);
        }
    }
    send(&mut out);
    Ok(())
}
