//! A server-side SPDY/3.1 session: reads frames, answers pings, accepts or refuses client streams, routes DATA to
//! the accepted streams and serializes everything written back through one writer task.

use std::collections::HashMap;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frame::{Decoder, Encoder, Frame, FrameError, Headers, FLAG_FIN, RST_CANCEL, RST_PROTOCOL_ERROR};

/// Largest DATA payload sent in one frame; keeps one busy stream from holding the connection for long.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Frames received for one stream and not yet consumed; beyond this the whole connection waits (as spdystream does).
const STREAM_BUFFER: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("reading the connection: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A stream the client opened and this side accepted (SYN_REPLY already queued).
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    inbound: mpsc::Receiver<Bytes>,
    writer: StreamWriter,
}

impl Stream {
    /// The next chunk the client sent; `None` once it half-closed (FIN), reset the stream or the connection ended.
    pub async fn read(&mut self) -> Option<Bytes> {
        self.inbound.recv().await
    }

    pub fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        Frame::header(&self.headers, name)
    }

    /// Splits into the inbound half and a writer.
    pub fn split(self) -> (mpsc::Receiver<Bytes>, StreamWriter) {
        (self.inbound, self.writer)
    }
}

/// The sending half of a stream; cheap to clone.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    reset: CancellationToken,
}

impl StreamWriter {
    pub async fn write(&self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA_CHUNK));
            self.send(Frame::Data { stream_id: self.id, flags: 0, data: chunk }).await?;
        }
        Ok(())
    }

    /// Half-closes this side of the stream (an empty DATA frame with FLAG_FIN).
    pub async fn finish(&self) -> io::Result<()> {
        self.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }).await
    }

    /// Aborts the stream in both directions.
    pub async fn reset(&self, status: u32) {
        if !self.reset.is_cancelled() {
            self.reset.cancel();
            let _ = self.out.send(Frame::RstStream { stream_id: self.id, status }).await;
        }
    }

    /// Resolves once the client reset the stream or the connection ended.
    pub async fn closed(&self) {
        self.reset.cancelled().await
    }

    async fn send(&self, frame: Frame) -> io::Result<()> {
        if self.reset.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream was reset"));
        }
        self.out.send(frame).await.map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }
}

struct StreamState {
    data: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
}

/// Runs the session until the client closes the connection, an I/O or framing error, or `cancel`. `accept` decides
/// on each new stream from its headers (an `Err` refuses it with RST_STREAM); accepted streams go to `streams`.
pub async fn run<IO>(
    io: IO,
    accept: impl Fn(&Headers) -> Result<(), String>,
    streams: mpsc::Sender<Stream>,
    cancel: CancellationToken,
) -> Result<(), SessionError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(write_loop(wr, out_rx));
    let mut state: HashMap<u32, StreamState> = HashMap::new();
    let mut last_client_id = 0u32;
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);

    let result = 'conn: loop {
        while let Some(frame) = match decoder.decode(&mut buf) {
            Ok(f) => f,
            Err(e) => break 'conn Err(SessionError::from(e)),
        } {
            match frame {
                Frame::SynStream { stream_id, flags, headers, .. } => {
                    // Client streams are odd and strictly increasing (SPDY/3 section 2.3.2).
                    if stream_id % 2 == 0 || stream_id <= last_client_id {
                        let _ = out_tx.send(Frame::RstStream { stream_id, status: RST_PROTOCOL_ERROR }).await;
                        continue;
                    }
                    last_client_id = stream_id;
                    if let Err(reason) = accept(&headers) {
                        tracing::warn!(stream_id, %reason, "refusing SPDY stream");
                        let _ = out_tx.send(Frame::RstStream { stream_id, status: RST_CANCEL }).await;
                        continue;
                    }
                    let (data_tx, data_rx) = mpsc::channel(STREAM_BUFFER);
                    let reset = CancellationToken::new();
                    let fin = flags & FLAG_FIN != 0;
                    state.insert(stream_id, StreamState { data: (!fin).then_some(data_tx), reset: reset.clone() });
                    let _ = out_tx.send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await;
                    let writer = StreamWriter { id: stream_id, out: out_tx.clone(), reset };
                    let stream = Stream { id: stream_id, headers, inbound: data_rx, writer };
                    if streams.send(stream).await.is_err() {
                        break 'conn Ok(());
                    }
                }
                Frame::Data { stream_id, flags, data } => {
                    let Some(st) = state.get_mut(&stream_id) else { continue };
                    if !data.is_empty() {
                        if let Some(tx) = &st.data {
                            // A consumer that dropped its receiver just discards what the client sends.
                            let _ = tx.send(data).await;
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        st.data = None;
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    if let Some(st) = state.remove(&stream_id) {
                        st.reset.cancel();
                    }
                }
                // Client pings carry odd ids; echoing them is what keeps kubectl's 5 s pinger happy.
                Frame::Ping { id } if id % 2 == 1 => {
                    let _ = out_tx.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => tracing::debug!("SPDY client sent GOAWAY"),
                Frame::Ping { .. }
                | Frame::SynReply { .. }
                | Frame::Settings { .. }
                | Frame::Headers { .. }
                | Frame::WindowUpdate { .. } => {}
            }
        }
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(SessionError::from(e)),
            },
            _ = cancel.cancelled() => break Ok(()),
        }
    };
    for (_, st) in state.drain() {
        st.reset.cancel();
    }
    drop(out_tx);
    // The writer ends when every stream writer is gone; streams end on their reset tokens.
    let _ = writer.await;
    result
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>) {
    let mut encoder = Encoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        // Batch what is already queued into one write.
        while let Some(f) = next {
            if let Err(e) = encoder.encode(&f, &mut buf) {
                tracing::warn!(error = %e, "dropping unencodable SPDY frame");
            }
            next = if buf.len() < 64 * 1024 { rx.try_recv().ok() } else { None };
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}
