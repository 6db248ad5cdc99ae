//! Forwarding to the node's upstream resolvers (CoreDNS's `forward` + `cache`): UDP to each upstream in turn until
//! one answers within the timeout, TCP when the answer is truncated or the client came over TCP, and the answers
//! cached. Each exchange uses its own connected socket, so replies cannot be confused between queries.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::answer::EDNS_PAYLOAD;
use crate::cache::{Cache, CacheKey};

/// Largest DNS message (TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65535;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    #[error("upstream {upstream} did not answer in time")]
    Timeout { upstream: SocketAddr },
    #[error("upstream {upstream}: {source}")]
    Io { upstream: SocketAddr, source: io::Error },
    #[error("upstream {upstream} sent an undecodable or mismatched response")]
    BadResponse { upstream: SocketAddr },
    #[error("cannot encode the upstream query: {0}")]
    Encode(String),
}

/// Upstream resolution with a shared cache.
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<Cache>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache_entries: usize) -> Forwarder {
        Forwarder { upstreams, timeout, cache: Mutex::new(Cache::new(cache_entries)) }
    }

    /// The upstream answer to `question`, from the cache when fresh. Records keep the upstream's names and TTLs;
    /// the caller fits ID, question and EDNS to its client.
    pub async fn resolve(&self, question: &Query, tcp: bool) -> Result<Message, ForwardError> {
        let key = CacheKey::of(question);
        if let Some(hit) = self.cache_get(&key) {
            return Ok(hit);
        }
        let response = self.exchange_any(question, tcp).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, &response, Instant::now());
        }
        Ok(response)
    }

    fn cache_get(&self, key: &CacheKey) -> Option<Message> {
        self.cache.lock().ok()?.get(key, Instant::now())
    }

    /// Tries the upstreams in order. A SERVFAIL or REFUSED moves on to the next one too; if every upstream refuses,
    /// the last such answer is what the client gets.
    async fn exchange_any(&self, question: &Query, tcp: bool) -> Result<Message, ForwardError> {
        let mut last_error = ForwardError::NoUpstreams;
        let mut last_refusal = None;
        for upstream in &self.upstreams {
            match exchange(*upstream, question, tcp, self.timeout).await {
                Ok(response)
                    if matches!(response.metadata.response_code, ResponseCode::ServFail | ResponseCode::Refused) =>
                {
                    tracing::debug!(%upstream, code = %response.metadata.response_code, "upstream refused, next");
                    last_refusal = Some(response);
                }
                Ok(response) => return Ok(response),
                Err(error) => {
                    tracing::debug!(%upstream, %error, "upstream failed, next");
                    last_error = error;
                }
            }
        }
        last_refusal.ok_or(last_error)
    }
}

/// One query to one upstream: UDP, then TCP if the UDP answer was truncated; TCP only if `tcp`.
pub(crate) async fn exchange(
    upstream: SocketAddr,
    question: &Query,
    tcp: bool,
    timeout: Duration,
) -> Result<Message, ForwardError> {
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.queries.push(question.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    request.edns = Some(edns);
    let bytes = request.to_vec().map_err(|e| ForwardError::Encode(e.to_string()))?;
    if !tcp {
        let response = with_timeout(upstream, timeout, udp_exchange(upstream, &bytes, &request)).await?;
        if !response.metadata.truncation {
            return Ok(response);
        }
        tracing::debug!(%upstream, name = %question.name, "truncated over UDP, retrying over TCP");
    }
    with_timeout(upstream, timeout, tcp_exchange(upstream, &bytes, &request)).await
}

async fn with_timeout<F>(upstream: SocketAddr, timeout: Duration, f: F) -> Result<Message, ForwardError>
where
    F: std::future::Future<Output = Result<Message, ForwardError>>,
{
    tokio::time::timeout(timeout, f).await.map_err(|_| ForwardError::Timeout { upstream })?
}

async fn udp_exchange(upstream: SocketAddr, bytes: &[u8], request: &Message) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    socket.send(bytes).await.map_err(io)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        // Anything that is not the reply to this request (late or forged datagrams) is skipped, not fatal.
        match Message::from_vec(&buf[..n]) {
            Ok(response) if is_reply(request, &response) => return Ok(response),
            _ => tracing::debug!(%upstream, "ignoring a datagram that is not the expected reply"),
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, bytes: &[u8], request: &Message) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    write_framed(&mut stream, bytes).await.map_err(io)?;
    let reply = read_framed(&mut stream).await.map_err(io)?.ok_or(ForwardError::BadResponse { upstream })?;
    match Message::from_vec(&reply) {
        Ok(response) if is_reply(request, &response) => Ok(response),
        _ => Err(ForwardError::BadResponse { upstream }),
    }
}

fn is_reply(request: &Message, response: &Message) -> bool {
    response.metadata.id == request.metadata.id
        && response.metadata.message_type == MessageType::Response
        && response.queries.len() == request.queries.len()
        && response.queries.iter().zip(&request.queries).all(|(a, b)| {
            a.query_type == b.query_type && a.query_class == b.query_class && a.name.eq_ignore_root(&b.name)
        })
}

/// Writes one TCP DNS message (RFC 1035 §4.2.2: a two-byte length, then the message).
pub(crate) async fn write_framed<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too big"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    w.write_all(&framed).await
}

/// Reads one TCP DNS message; `None` on a clean end of stream before a new message.
pub(crate) async fn read_framed<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}
