//! Shared fixtures of the server tests and the benchmark: a fake upstream resolver on 127.0.0.1, a DNS client, and
//! a server started on random ports.
#![allow(dead_code, clippy::unwrap_used)] // test helpers fail loudly on purpose

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_dns::hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use edge_dns::hickory_proto::rr::rdata::{A, SOA};
use edge_dns::hickory_proto::rr::{Name, RData, Record, RecordType};
use edge_dns::{DnsConfig, Server, Zone};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const BIG_RECORDS: usize = 40;

/// A resolver that answers from a fixed table and counts the queries it receives.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn udp(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst)
    }
    pub fn tcp(&self) -> usize {
        self.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The fake's table:
/// - www.example.com A 93.184.216.34 (TTL 300); short.example A 192.0.2.1 (TTL 1)
/// - big.example: truncated over UDP, BIG_RECORDS A records over TCP
/// - servfail.example: SERVFAIL; anything else NXDOMAIN with an SOA (minimum 60)
pub fn fake_reply(query: &Message, over_tcp: bool) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_available = true;
    reply.queries = query.queries.clone();
    let Some(q) = query.queries.first() else { return reply };
    let owner = q.name.clone();
    let a = |ttl, ip: Ipv4Addr| Record::from_rdata(owner.clone(), ttl, RData::A(A(ip)));
    match (q.name.to_ascii().to_ascii_lowercase().as_str(), q.query_type) {
        ("www.example.com.", RecordType::A) => reply.answers.push(a(300, Ipv4Addr::new(93, 184, 216, 34))),
        ("short.example.", RecordType::A) => reply.answers.push(a(1, Ipv4Addr::new(192, 0, 2, 1))),
        ("big.example.", RecordType::A) if !over_tcp => reply.metadata.truncation = true,
        ("big.example.", RecordType::A) => {
            for i in 0..BIG_RECORDS {
                reply.answers.push(a(300, Ipv4Addr::new(198, 51, 100, u8::try_from(i).unwrap())));
            }
        }
        ("servfail.example.", _) => reply.metadata.response_code = ResponseCode::ServFail,
        _ => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(name("ns.example."), name("hostmaster.example."), 1, 1, 1, 1, 60);
            reply.authorities.push(Record::from_rdata(name("example."), 60, RData::SOA(soa)));
        }
    }
    reply
}

pub async fn fake_upstream() -> FakeUpstream {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let udp_queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let counter = udp_queries.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buf[..n]).unwrap();
            let _ = udp.send_to(&fake_reply(&query, false).to_vec().unwrap(), peer).await;
        }
    });
    let counter = tcp_queries.clone();
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                while let Ok(bytes) = read_framed(&mut stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let query = Message::from_vec(&bytes).unwrap();
                    let reply = fake_reply(&query, true).to_vec().unwrap();
                    write_framed(&mut stream, &reply).await;
                }
            });
        }
    });
    FakeUpstream { addr, udp_queries, tcp_queries, tasks: vec![udp_task, tcp_task] }
}

/// An address where a UDP socket exists but never answers (no ICMP refusal, so the forwarder must time out).
pub async fn silent_upstream() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
}

pub fn query(id: u16, qname: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries.push(Query::query(name(qname), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.edns = Some(e);
    }
    m
}

/// One UDP exchange with `server`; panics after 5 s.
pub async fn ask_udp(socket: &UdpSocket, server: SocketAddr, query: &Message) -> Message {
    socket.send_to(&query.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await.unwrap().unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

pub async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

pub async fn ask_tcp(stream: &mut TcpStream, query: &Message) -> Message {
    write_framed(stream, &query.to_vec().unwrap()).await;
    let bytes = tokio::time::timeout(Duration::from_secs(5), read_framed(stream)).await.unwrap().unwrap();
    Message::from_vec(&bytes).unwrap()
}

pub fn cluster_ip_service(ns: &str, name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        spec: Some(ServiceSpec { cluster_ip: Some(ip.into()), ..Default::default() }),
        ..Default::default()
    }
}

pub fn external_name_service(ns: &str, name: &str, target: &str) -> Service {
    Service {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub zone: watch::Sender<Arc<Zone>>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

pub async fn start(upstreams: Vec<SocketAddr>, zone: Zone, upstream_timeout: Duration) -> Running {
    let cfg =
        DnsConfig { listen: vec!["127.0.0.1:0".parse().unwrap()], upstreams, cache_entries: 1000, upstream_timeout };
    let server = Server::bind(cfg).await.unwrap();
    let addr = server.local_addrs()[0];
    let (tx, rx) = watch::channel(Arc::new(zone));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(rx, shutdown.clone()));
    Running { addr, zone: tx, shutdown, task }
}

pub fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

pub fn services_zone(services: &[Service]) -> Zone {
    Zone::build("cluster.local", services, &[])
}

pub fn empty_zone() -> Zone {
    Zone::build("cluster.local", &[], &[])
}
