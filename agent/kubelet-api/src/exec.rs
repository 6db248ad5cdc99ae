//! `kubectl exec` over WebSocket: the `channel.k8s.io` family of subprotocols, where each binary message starts with
//! its channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255 = close one stream).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::{status, Backend, BackendError, ExecRequest};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// After the process exited, how long its output may still take to drain (a background child can keep the pipes
/// open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelProtocol {
    /// `channel.k8s.io`, v2, v3 and no subprotocol: the error channel carries the bare message.
    V1,
    /// `v4.channel.k8s.io`: the error channel carries a Status.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
}

/// Subprotocols in our order of preference, though the client's order decides (as in upstream's wsstream).
const PROTOCOLS: &[(&str, ChannelProtocol)] = &[
    ("v5.channel.k8s.io", ChannelProtocol::V5),
    ("v4.channel.k8s.io", ChannelProtocol::V4),
    ("v3.channel.k8s.io", ChannelProtocol::V1),
    ("v2.channel.k8s.io", ChannelProtocol::V1),
    ("channel.k8s.io", ChannelProtocol::V1),
];

/// Picks the first subprotocol the client offered that is supported. No offer at all means the legacy binary
/// protocol with no `Sec-WebSocket-Protocol` in the reply; offers with nothing supported yield `Err`.
pub(crate) fn negotiate(offered: &[String]) -> Result<(Option<&'static str>, ChannelProtocol), String> {
    if offered.is_empty() {
        return Ok((None, ChannelProtocol::V1));
    }
    for o in offered {
        if let Some((name, p)) = PROTOCOLS.iter().find(|(name, _)| name == o) {
            return Ok((Some(name), *p));
        }
    }
    let supported: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
    Err(format!("requested protocol(s) are not supported: {offered:?}; supports {supported:?}"))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.extend_from_slice(data);
    Message::Binary(b.freeze())
}

fn error_frame(proto: ChannelProtocol, status: &serde_json::Value) -> Option<Message> {
    match proto {
        ChannelProtocol::V4 | ChannelProtocol::V5 => Some(frame(ERROR, status.to_string().as_bytes())),
        ChannelProtocol::V1 => {
            let msg = status.get("message").and_then(|m| m.as_str()).unwrap_or("");
            (status["status"] != "Success").then(|| frame(ERROR, msg.as_bytes()))
        }
    }
}

/// Runs one exec (or, with `attach`, attach) session on an accepted WebSocket.
pub(crate) async fn serve<S>(
    ws: WebSocketStream<S>,
    proto: ChannelProtocol,
    req: ExecRequest,
    attach: bool,
    backend: Arc<dyn Backend>,
    cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // The session is over once the status went out. The close frame must carry 1000 (normal):
        // client-go reports a status-less close (1005) as "error reading from error stream".
        let normal = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });

    let command = req.command.clone();
    let (want_stdout, want_stderr) = (req.stdout, req.stderr);
    let started = if attach { backend.attach(req) } else { backend.exec(req) };
    let process = match started.await {
        Ok(p) => p,
        Err(e) => {
            finish(out_tx, writer, &mut incoming, proto, &status::exec_error(&e)).await;
            return;
        }
    };

    // Upstream announces the session with an empty message on the lowest writable channel.
    let first = if want_stdout {
        STDOUT
    } else if want_stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = out_tx.send(frame(first, &[])).await;

    let mut pumps = Vec::new();
    if let Some(r) = process.stdout {
        pumps.push(tokio::spawn(pump(r, STDOUT, out_tx.clone())));
    }
    if let Some(r) = process.stderr {
        pumps.push(tokio::spawn(pump(r, STDERR, out_tx.clone())));
    }
    let mut outputs = Box::pin(futures_util::future::join_all(pumps));
    let mut outputs_done = false;

    let mut stdin_tx = process.stdin.map(|w| {
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        tokio::spawn(feed_stdin(w, rx));
        tx
    });
    let resize = process.resize;
    let mut wait = process.wait;
    let mut exit: Option<std::io::Result<i32>> = None;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain_deadline);

    while exit.is_none() || !outputs_done {
        tokio::select! {
            msg = incoming.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(d))) => d,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        tracing::debug!("exec client went away");
                        return;
                    }
                    // Pings are answered by tungstenite itself; text frames only exist in base64 protocols.
                    Some(Ok(_)) => continue,
                };
                // Some clients open each stream with an empty message.
                let Some((&channel, payload)) = data.split_first() else { continue };
                match channel {
                    STDIN => {
                        if let (Some(tx), false) = (&stdin_tx, payload.is_empty()) {
                            if tx.send(Bytes::copy_from_slice(payload)).await.is_err() {
                                stdin_tx = None;
                            }
                        }
                    }
                    RESIZE => {
                        if let (Some(f), Some((w, h))) = (&resize, parse_resize(payload)) {
                            f(w, h);
                        }
                    }
                    CLOSE if proto == ChannelProtocol::V5 => {
                        if payload == [STDIN] {
                            stdin_tx = None;
                        }
                    }
                    _ => tracing::debug!(channel, "ignoring exec message for an unknown channel"),
                }
            }
            r = &mut wait, if exit.is_none() => {
                exit = Some(r);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            _ = &mut outputs, if !outputs_done => outputs_done = true,
            _ = &mut drain_deadline, if exit.is_some() && !outputs_done => {
                tracing::debug!("exec output still open after the process exited; not waiting for it");
                outputs_done = true;
            }
            _ = cancel.cancelled() => return,
        }
    }
    drop(stdin_tx);
    let status = match exit {
        Some(Ok(code)) => status::exec_exit(&command, code),
        Some(Err(e)) => status::exec_error(&BackendError::Internal(e.to_string())),
        None => return,
    };
    finish(out_tx, writer, &mut incoming, proto, &status).await;
}

/// Sends the final status, closes the socket and waits (briefly) for the client's close.
async fn finish<S>(
    out_tx: mpsc::Sender<Message>,
    writer: tokio::task::JoinHandle<()>,
    incoming: &mut S,
    proto: ChannelProtocol,
    status: &serde_json::Value,
) where
    S: futures_util::Stream + Unpin,
{
    if let Some(m) = error_frame(proto, status) {
        let _ = out_tx.send(m).await;
    }
    drop(out_tx);
    let _ = writer.await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while incoming.next().await.is_some() {} }).await;
}

async fn pump(mut r: Box<dyn AsyncRead + Send + Unpin>, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn feed_stdin(mut w: Box<dyn AsyncWrite + Send + Unpin>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    // Dropping the writer closes the process's stdin.
    let _ = w.shutdown().await;
}

/// `{"Width":80,"Height":24}` (remotecommand.TerminalSize) → (cols, rows).
fn parse_resize(payload: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(payload).ok()?;
    Some((s.width, s.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_client_order() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            negotiate(&o(&["v5.channel.k8s.io", "v4.channel.k8s.io"])).unwrap(),
            (Some("v5.channel.k8s.io"), ChannelProtocol::V5)
        );
        assert_eq!(
            negotiate(&o(&["v4.channel.k8s.io", "v5.channel.k8s.io"])).unwrap(),
            (Some("v4.channel.k8s.io"), ChannelProtocol::V4)
        );
        assert_eq!(
            negotiate(&o(&["base64.channel.k8s.io", "channel.k8s.io"])).unwrap(),
            (Some("channel.k8s.io"), ChannelProtocol::V1)
        );
        assert_eq!(negotiate(&[]).unwrap(), (None, ChannelProtocol::V1));
        assert!(negotiate(&o(&["SPDY/3.1+portforward.k8s.io"])).is_err());
    }

    #[test]
    fn resize_messages() {
        assert_eq!(parse_resize(br#"{"Width":120,"Height":40}"#), Some((120, 40)));
        assert_eq!(parse_resize(b"{}"), None);
        assert_eq!(parse_resize(b"junk"), None);
    }

    #[test]
    fn v1_error_channel_is_the_bare_message() {
        let ok = status::exec_exit(&["true".to_string()], 0);
        assert!(error_frame(ChannelProtocol::V1, &ok).is_none());
        let failed = status::exec_exit(&["false".to_string()], 1);
        let Some(Message::Binary(b)) = error_frame(ChannelProtocol::V1, &failed) else { panic!() };
        assert_eq!(
            &b[..],
            b"\x03command terminated with non-zero exit code: error executing command [false], exit code 1"
        );
        let Some(Message::Binary(b)) = error_frame(ChannelProtocol::V5, &ok) else { panic!() };
        assert_eq!(&b[..], b"\x03{\"metadata\":{},\"status\":\"Success\"}");
    }
}
