//! The DNS server: UDP and TCP listeners, each query answered from the current zone or forwarded, responses fitted
//! to the client (ID, question case, EDNS, UDP size with truncation).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Name;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::answer::{answer, reply_to, Outcome, EDNS_PAYLOAD};
use crate::forward::{read_framed, write_framed, Forwarder};
use crate::zone::Zone;

/// Classic DNS UDP limit for clients without EDNS (RFC 1035).
const PLAIN_UDP_PAYLOAD: usize = 512;
/// A TCP client idle this long is disconnected (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Attempts to find a port free for both UDP and TCP when the configuration asks for port 0.
const EPHEMERAL_ATTEMPTS: usize = 8;

/// Where to listen and where to forward.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// From the node's resolv.conf ([`crate::upstreams_from_resolv_conf`]), tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// Bound of the forwarder's cache, e.g. 10_000; 0 disables caching.
    pub cache_entries: usize,
    /// How long one upstream gets to answer before the next one is tried.
    pub upstream_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: Vec::new(),
            upstreams: Vec::new(),
            cache_entries: 10_000,
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Bound sockets, ready to serve. Binding apart from serving lets callers learn the ports chosen for port 0.
pub struct Server {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
    forwarder: Forwarder,
}

impl Server {
    /// Binds UDP and TCP on every listen address (the same port for both when port 0 is asked for).
    pub async fn bind(cfg: DnsConfig) -> Result<Server, DnsError> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &cfg.listen {
            let (u, t) = bind_pair(*addr).await?;
            udp.push(Arc::new(u));
            tcp.push(t);
        }
        let forwarder = Forwarder::new(cfg.upstreams, cfg.upstream_timeout, cfg.cache_entries);
        Ok(Server { udp, tcp, forwarder })
    }

    /// The bound addresses, in the order of `listen` (UDP and TCP share each).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Serves until `shutdown`; the zone is read anew for every query.
    pub async fn run(self, zone: watch::Receiver<Arc<Zone>>, shutdown: CancellationToken) {
        let handler = Arc::new(Handler { forwarder: self.forwarder, zone });
        let mut tasks = JoinSet::new();
        for socket in self.udp {
            let span = tracing::info_span!("dns_udp", addr = ?socket.local_addr().ok());
            tasks.spawn(serve_udp(socket, handler.clone(), shutdown.clone()).instrument(span));
        }
        for listener in self.tcp {
            let span = tracing::info_span!("dns_tcp", addr = ?listener.local_addr().ok());
            tasks.spawn(serve_tcp(listener, handler.clone(), shutdown.clone()).instrument(span));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Serves until `shutdown` (see [`Server`] to learn ports bound for port 0). The zone is swapped by the agent
/// through the watch channel. Errors binding are returned; per-query errors are logged and answered SERVFAIL.
pub async fn serve(
    cfg: DnsConfig,
    zone: watch::Receiver<Arc<Zone>>,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    Server::bind(cfg).await?.run(zone, shutdown).await;
    Ok(())
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let attempts = if addr.port() == 0 { EPHEMERAL_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await.map_err(|source| DnsError::Bind { addr, source })?;
        let bound = udp.local_addr().map_err(|source| DnsError::Bind { addr, source })?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => last = Some(DnsError::Bind { addr: bound, source }),
        }
    }
    Err(last.unwrap_or(DnsError::Bind { addr, source: io::Error::other("no attempt made") }))
}

async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65535];
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            Err(error) => {
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (socket, handler) = (socket.clone(), handler.clone());
        // One task per query: a slow upstream must not hold up cluster answers.
        tokio::spawn(async move {
            if let Some(reply) = handler.handle(&query, Transport::Udp).await {
                if let Err(error) = socket.send_to(&reply, peer).await {
                    tracing::debug!(%peer, %error, "UDP send failed");
                }
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (handler, shutdown) = (handler.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        result = serve_connection(stream, &handler) => {
                            if let Err(error) = result {
                                tracing::debug!(%peer, %error, "TCP client dropped");
                            }
                        }
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "TCP accept failed");
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers the queries of one TCP client in order until it closes or idles.
async fn serve_connection(mut stream: TcpStream, handler: &Handler) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let query = match tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        if let Some(reply) = handler.handle(&query, Transport::Tcp).await {
            write_framed(&mut stream, &reply).await?;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

struct Handler {
    forwarder: Forwarder,
    zone: watch::Receiver<Arc<Zone>>,
}

impl Handler {
    /// The encoded reply to one query, `None` when nothing should be sent (responses, garbage).
    async fn handle(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let query = match Message::from_vec(bytes) {
            Ok(query) => query,
            Err(error) => {
                tracing::debug!(%error, "undecodable query");
                return format_error(bytes);
            }
        };
        if query.metadata.message_type == MessageType::Response {
            return None;
        }
        let zone = self.zone.borrow().clone();
        let tcp = transport == Transport::Tcp;
        let response = match answer(&zone, &query) {
            Outcome::Answer(response) => response,
            Outcome::Forward => self.forward(&query, tcp).await,
            Outcome::Chase { response, target } => self.chase(&query, response, target, tcp).await,
        };
        encode(&response, &query, transport)
    }

    async fn forward(&self, query: &Message, tcp: bool) -> Message {
        let mut response = reply_to(query);
        let Some(question) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        match self.forwarder.resolve(question, tcp).await {
            Ok(upstream) => {
                response.metadata.response_code = upstream.metadata.response_code;
                response.metadata.truncation = upstream.metadata.truncation;
                response.answers = upstream.answers;
                response.authorities = upstream.authorities;
                response.additionals = upstream.additionals;
            }
            Err(error) => {
                tracing::warn!(name = %question.name, qtype = %question.query_type, %error, "forwarding failed");
                response.metadata.response_code = ResponseCode::ServFail;
            }
        }
        response
    }

    /// Completes an ExternalName answer with the upstream records of its target; without them the CNAME alone
    /// still lets the client resolve the target itself.
    async fn chase(&self, query: &Message, mut response: Message, target: Name, tcp: bool) -> Message {
        let Some(question) = query.queries.first() else {
            return response;
        };
        let mut target_query = Query::query(target, question.query_type);
        target_query.query_class = question.query_class;
        match self.forwarder.resolve(&target_query, tcp).await {
            Ok(upstream) => {
                // RFC 6604: the RCODE describes the last name of the chain.
                if upstream.metadata.response_code == ResponseCode::NXDomain {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                response.answers.extend(upstream.answers);
            }
            Err(error) => tracing::warn!(target = %target_query.name, %error, "ExternalName target unresolved"),
        }
        response
    }
}

/// FORMERR for a message whose header is readable, silence otherwise (RFC 1035 gives nothing to reply to).
fn format_error(bytes: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return None;
    }
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok()
}

/// Encodes `response`; over UDP, a response larger than the client accepts becomes an empty truncated one so the
/// client retries over TCP.
fn encode(response: &Message, query: &Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "cannot encode a response");
            let mut failed = reply_to(query);
            failed.metadata.response_code = ResponseCode::ServFail;
            return failed.to_vec().ok();
        }
    };
    let limit = match &query.edns {
        Some(edns) => usize::from(edns.max_payload().min(EDNS_PAYLOAD)).max(PLAIN_UDP_PAYLOAD),
        None => PLAIN_UDP_PAYLOAD,
    };
    if transport == Transport::Tcp || bytes.len() <= limit {
        return Some(bytes);
    }
    let mut truncated = reply_to(query);
    truncated.metadata = response.metadata;
    truncated.metadata.truncation = true;
    truncated.to_vec().ok()
}
