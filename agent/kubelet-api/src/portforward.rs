//! `kubectl port-forward` over SPDY (protocol `portforward.k8s.io`): per forwarded connection the client opens an
//! `error` and a `data` stream sharing a `requestID`; once both exist the pod port is dialled through the backend
//! and bytes are copied both ways. Mirrors kubelet's cri/streaming/portforward/httpstream.go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::spdy::frame::{Headers, RST_CANCEL};
use crate::spdy::session::{self, Stream};
use crate::spdy::Frame;
use crate::Backend;

/// The only port-forward protocol version there is.
pub(crate) const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of kubectl's SPDY-in-WebSocket tunnel (KEP-4006).
pub(crate) const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long the second stream of a pair may take to arrive (upstream's streamCreationTimeout).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

const HEADER_STREAM_TYPE: &str = "streamtype";
const HEADER_PORT: &str = "port";
const HEADER_REQUEST_ID: &str = "requestid";

/// Upstream's checks on a new stream, before it is accepted.
pub(crate) fn validate_stream(headers: &Headers) -> Result<(), String> {
    let port = Frame::header(headers, HEADER_PORT).unwrap_or("");
    if port.is_empty() {
        return Err(format!("{HEADER_PORT:?} header is required"));
    }
    let p: u16 = port.parse().map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if p < 1 {
        return Err(format!("port {port:?} must be > 0"));
    }
    match Frame::header(headers, HEADER_STREAM_TYPE).unwrap_or("") {
        "" => Err(format!("{HEADER_STREAM_TYPE:?} header is required")),
        "error" | "data" => Ok(()),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// The pair a stream belongs to. Old clients sent no request id: then the error stream's own id names the pair
/// and the data stream (opened right after) refers back to it.
fn request_id(stream: &Stream) -> String {
    if let Some(id) = stream.header(HEADER_REQUEST_ID) {
        return id.to_string();
    }
    match stream.header(HEADER_STREAM_TYPE) {
        Some("data") => stream.id.saturating_sub(2).to_string(),
        _ => stream.id.to_string(),
    }
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// Who the forwarded connections are for.
#[derive(Clone)]
pub(crate) struct Target {
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
}

/// Serves port-forward over one SPDY connection until it ends.
pub(crate) async fn serve_spdy<IO>(io: IO, target: Target, backend: Arc<dyn Backend>, cancel: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (streams_tx, mut streams_rx) = mpsc::channel::<Stream>(16);
    let session_cancel = cancel.child_token();
    let session = tokio::spawn(session::run(io, validate_stream, streams_tx, session_cancel.clone()));
    let (timeout_tx, mut timeout_rx) = mpsc::channel::<String>(16);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    loop {
        tokio::select! {
            stream = streams_rx.recv() => {
                let Some(stream) = stream else { break };
                let id = request_id(&stream);
                let pair = pairs.entry(id.clone()).or_insert_with(|| {
                    let tx = timeout_tx.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(PAIR_TIMEOUT).await;
                        let _ = tx.send(id).await;
                    });
                    Pair::default()
                });
                let is_data = stream.header(HEADER_STREAM_TYPE) == Some("data");
                let slot = if is_data { &mut pair.data } else { &mut pair.error };
                if slot.is_some() {
                    let which = if is_data { "data" } else { "error" };
                    let msg = format!("error processing stream for request {id}: {which} stream already assigned");
                    tracing::warn!("{msg}");
                    if let Some(e) = &pair.error {
                        let _ = e.writer().write(Bytes::from(msg)).await;
                    }
                    stream.writer().reset(RST_CANCEL).await;
                    continue;
                }
                *slot = Some(stream);
                if pair.error.is_some() && pair.data.is_some() {
                    if let Some(Pair { error: Some(error), data: Some(data) }) = pairs.remove(&id) {
                        tokio::spawn(forward(error, data, target.clone(), backend.clone()));
                    }
                }
            }
            Some(id) = timeout_rx.recv() => {
                if let Some(pair) = pairs.remove(&id) {
                    let msg = format!("error processing stream for request {id}: timed out waiting for streams");
                    tracing::warn!("{msg}");
                    for s in [pair.error, pair.data].into_iter().flatten() {
                        let w = s.writer();
                        if s.header(HEADER_STREAM_TYPE) == Some("error") {
                            let _ = w.write(Bytes::from(msg.clone())).await;
                        }
                        w.reset(RST_CANCEL).await;
                    }
                }
            }
            _ = cancel.cancelled() => break,
        }
    }
    // Streams still waiting for their partner must not keep the session's writer alive.
    drop(pairs);
    session_cancel.cancel();
    match session.await {
        Ok(Err(e)) => tracing::debug!(error = %e, "port-forward session ended"),
        Err(e) => tracing::warn!(error = %e, "port-forward session task failed"),
        Ok(Ok(())) => {}
    }
}

/// One forwarded connection.
async fn forward(error: Stream, data: Stream, target: Target, backend: Arc<dyn Backend>) {
    let port: u16 = data.header(HEADER_PORT).and_then(|p| p.parse().ok()).unwrap_or(0);
    let (_, error_w) = error.split();
    let (mut data_in, data_w) = data.split();
    let describe = |e: &dyn std::fmt::Display| {
        format!(
            "error forwarding port {port} to pod {}/{}, uid {}: {e}",
            target.namespace,
            target.pod,
            target.uid.as_deref().unwrap_or("")
        )
    };
    let conn = match backend.port_forward(&target.namespace, &target.pod, port).await {
        Ok(c) => c,
        Err(e) => {
            let msg = describe(&e);
            tracing::info!("{msg}");
            let _ = error_w.write(Bytes::from(msg)).await;
            let _ = error_w.finish().await;
            let _ = data_w.finish().await;
            return;
        }
    };
    let (mut pod_rd, mut pod_wr) = conn.into_split();

    // Client → pod, until the client half-closes (then the pod sees EOF) or resets.
    let up = tokio::spawn(async move {
        while let Some(chunk) = data_in.recv().await {
            if pod_wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = pod_wr.shutdown().await;
    });

    // Pod → client. kubectl waits for the error stream to end once the pod side is done, so that decides when this
    // connection is over, whatever the client still sends.
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = pod_rd.read(&mut buf).await?;
            if n == 0 {
                return data_w.finish().await;
            }
            data_w.write(Bytes::copy_from_slice(&buf[..n])).await?;
        }
    };
    let result: std::io::Result<()> = tokio::select! {
        r = down => r,
        _ = data_w.closed() => Ok(()),
    };
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = error_w.write(Bytes::from(describe(&e))).await;
        }
    }
    let _ = error_w.finish().await;
    // The upload side ends on its own (client FIN/reset or connection end); it holds no writer.
    drop(up);
}

/// Presents a WebSocket carrying SPDY in binary messages (kubectl's tunnelling dialer) as a byte stream.
pub(crate) fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let (mut sink, mut incoming) = ws.split();
    tokio::spawn(async move {
        while let Some(msg) = incoming.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_validation_matches_upstream() {
        let h =
            |pairs: &[(&str, &str)]| -> Headers { pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect() };
        let cases: Vec<(Headers, Result<(), &str>)> = vec![
            (h(&[("port", "80"), ("streamtype", "data")]), Ok(())),
            (h(&[("port", "80"), ("streamtype", "error")]), Ok(())),
            (h(&[("streamtype", "data")]), Err("\"port\" header is required")),
            (h(&[("port", "x"), ("streamtype", "data")]), Err("unable to parse \"x\" as a port")),
            (h(&[("port", "70000"), ("streamtype", "data")]), Err("unable to parse \"70000\" as a port")),
            (h(&[("port", "0"), ("streamtype", "data")]), Err("port \"0\" must be > 0")),
            (h(&[("port", "80")]), Err("\"streamtype\" header is required")),
            (h(&[("port", "80"), ("streamtype", "ctl")]), Err("invalid stream type \"ctl\"")),
        ];
        for (headers, want) in cases {
            let got = validate_stream(&headers);
            match want {
                Ok(()) => assert!(got.is_ok(), "{headers:?}: {got:?}"),
                Err(prefix) => assert!(got.as_ref().is_err_and(|e| e.starts_with(prefix)), "{headers:?}: {got:?}"),
            }
        }
    }
}
