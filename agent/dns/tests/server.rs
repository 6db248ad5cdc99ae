//! The server over real sockets on 127.0.0.1 against a fake upstream: forwarding, caching, TTL expiry,
//! truncation, failure, zone swaps and TCP clients.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use edge_dns::hickory_proto::op::ResponseCode;
use edge_dns::hickory_proto::rr::{RData, RecordType};
use edge_dns::{serve, DnsConfig, DnsError};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn forwards_and_caches_with_client_id_and_case() {
    let upstream = fake_upstream().await;
    let server = start(vec![upstream.addr], empty_zone(), TIMEOUT).await;
    let c = client().await;

    let first = ask_udp(&c, server.addr, &query(777, "www.example.com.", RecordType::A, false)).await;
    assert_eq!(first.metadata.id, 777);
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&first), ["93.184.216.34"]);
    assert!(!first.metadata.authoritative && first.metadata.recursion_available);
    assert_eq!(upstream.udp(), 1);

    let second = ask_udp(&c, server.addr, &query(778, "WWW.Example.COM.", RecordType::A, true)).await;
    assert_eq!(second.metadata.id, 778, "ID rewritten to the client's");
    assert_eq!(a_records(&second), ["93.184.216.34"]);
    assert_eq!(second.queries[0].name.to_ascii(), "WWW.Example.COM.", "question echoed with its case");
    assert!(second.answers[0].ttl <= 300);
    assert!(second.edns.is_some(), "EDNS answered with EDNS");
    assert_eq!(upstream.udp(), 1, "second query served from the cache");

    let nx = ask_udp(&c, server.addr, &query(779, "nope.example.", RecordType::A, false)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let nx = ask_udp(&c, server.addr, &query(780, "nope.example.", RecordType::A, false)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.udp(), 2, "negative answer cached too");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn cached_answers_expire_with_their_ttl() {
    let upstream = fake_upstream().await;
    let server = start(vec![upstream.addr], empty_zone(), TIMEOUT).await;
    let c = client().await;
    let q = query(1, "short.example.", RecordType::A, false);
    assert_eq!(a_records(&ask_udp(&c, server.addr, &q).await), ["192.0.2.1"]);
    assert_eq!(a_records(&ask_udp(&c, server.addr, &q).await), ["192.0.2.1"]);
    assert_eq!(upstream.udp(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(a_records(&ask_udp(&c, server.addr, &q).await), ["192.0.2.1"]);
    assert_eq!(upstream.udp(), 2, "TTL 1 s expired");
}

#[tokio::test]
async fn truncated_upstream_answer_is_fetched_over_tcp_and_truncated_for_small_clients() {
    let upstream = fake_upstream().await;
    let server = start(vec![upstream.addr], empty_zone(), TIMEOUT).await;
    let c = client().await;

    let big = ask_udp(&c, server.addr, &query(5, "big.example.", RecordType::A, true)).await;
    assert_eq!(big.answers.len(), BIG_RECORDS, "EDNS client gets all records over UDP");
    assert!(!big.metadata.truncation);
    assert_eq!((upstream.udp(), upstream.tcp()), (1, 1), "UDP truncated, retried over TCP");

    let small = ask_udp(&c, server.addr, &query(6, "big.example.", RecordType::A, false)).await;
    assert!(small.metadata.truncation, "over 512 bytes for a client without EDNS");
    assert!(small.answers.is_empty());
    assert_eq!(small.metadata.id, 6);

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let full = ask_tcp(&mut stream, &query(7, "big.example.", RecordType::A, false)).await;
    assert_eq!(full.answers.len(), BIG_RECORDS, "TCP retry gets everything");
    assert_eq!((upstream.udp(), upstream.tcp()), (1, 1), "both served from the cache");
}

#[tokio::test]
async fn tcp_clients_are_forwarded_over_tcp_and_get_cluster_answers() {
    let upstream = fake_upstream().await;
    let zone = services_zone(&[cluster_ip_service("default", "web", "10.43.0.20")]);
    let server = start(vec![upstream.addr], zone, TIMEOUT).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let web = ask_tcp(&mut stream, &query(1, "web.default.svc.cluster.local.", RecordType::A, false)).await;
    assert_eq!(a_records(&web), ["10.43.0.20"]);
    assert!(web.metadata.authoritative);
    let www = ask_tcp(&mut stream, &query(2, "www.example.com.", RecordType::A, false)).await;
    assert_eq!((www.metadata.id, a_records(&www)), (2, vec!["93.184.216.34".to_owned()]));
    assert_eq!((upstream.udp(), upstream.tcp()), (0, 1), "a TCP client is forwarded over TCP");
}

#[tokio::test]
async fn servfail_when_no_upstream_answers_and_next_upstream_is_tried() {
    let (_silent, silent_addr) = silent_upstream().await;
    let server = start(vec![silent_addr], empty_zone(), Duration::from_millis(200)).await;
    let c = client().await;
    let started = Instant::now();
    let failed = ask_udp(&c, server.addr, &query(9, "www.example.com.", RecordType::A, false)).await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(failed.metadata.id, 9);
    assert!(started.elapsed() < Duration::from_secs(2));

    let upstream = fake_upstream().await;
    let server = start(vec![silent_addr, upstream.addr], empty_zone(), Duration::from_millis(200)).await;
    let ok = ask_udp(&c, server.addr, &query(10, "www.example.com.", RecordType::A, false)).await;
    assert_eq!(a_records(&ok), ["93.184.216.34"], "second upstream answers after the first timed out");

    let upstream_failure = ask_udp(&c, server.addr, &query(11, "servfail.example.", RecordType::A, false)).await;
    assert_eq!(upstream_failure.metadata.response_code, ResponseCode::ServFail);

    let none = start(vec![], empty_zone(), TIMEOUT).await;
    let failed = ask_udp(&c, none.addr, &query(12, "www.example.com.", RecordType::A, false)).await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail, "no upstreams configured");
}

#[tokio::test]
async fn zone_swap_is_visible_to_the_next_query() {
    let upstream = fake_upstream().await;
    let server = start(vec![upstream.addr], empty_zone(), TIMEOUT).await;
    let c = client().await;
    let q = query(1, "web.default.svc.cluster.local.", RecordType::A, false);
    let before = ask_udp(&c, server.addr, &q).await;
    assert_eq!(before.metadata.response_code, ResponseCode::NXDomain);
    assert!(before.metadata.authoritative);

    server.zone.send(Arc::new(services_zone(&[cluster_ip_service("default", "web", "10.43.0.20")]))).unwrap();
    let after = ask_udp(&c, server.addr, &q).await;
    assert_eq!(a_records(&after), ["10.43.0.20"]);
    assert_eq!(upstream.udp() + upstream.tcp(), 0, "cluster names never reach the upstream");
}

#[tokio::test]
async fn external_name_is_chased_through_the_forwarder() {
    let upstream = fake_upstream().await;
    let zone = services_zone(&[external_name_service("default", "ext", "www.example.com")]);
    let server = start(vec![upstream.addr], zone, TIMEOUT).await;
    let c = client().await;
    let m = ask_udp(&c, server.addr, &query(3, "ext.default.svc.cluster.local.", RecordType::A, false)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(matches!(&m.answers[0].data, RData::CNAME(t) if t.0.to_ascii() == "www.example.com."));
    assert_eq!(a_records(&m), ["93.184.216.34"]);
}

#[tokio::test]
async fn garbage_is_ignored_or_formerr() {
    let server = start(vec![], empty_zone(), TIMEOUT).await;
    let c = client().await;
    // A readable header with a question that runs past the end: FORMERR with the same ID.
    let mut bad = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[0x05, b'a']);
    c.send_to(&bad, server.addr).await.unwrap();
    let mut buf = vec![0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf)).await.unwrap().unwrap();
    let reply = edge_dns::hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!((reply.metadata.id, reply.metadata.response_code), (0x1234, ResponseCode::FormErr));
    // Too short to carry an ID: nothing is sent back, and the server keeps serving.
    c.send_to(&[1, 2, 3], server.addr).await.unwrap();
    let zone_answer =
        ask_udp(&c, server.addr, &query(4, "nope.default.svc.cluster.local.", RecordType::A, false)).await;
    assert_eq!((zone_answer.metadata.id, zone_answer.metadata.response_code), (4, ResponseCode::NXDomain));
}

#[tokio::test]
async fn bind_errors_are_returned() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = DnsConfig { listen: vec![taken.local_addr().unwrap()], ..DnsConfig::default() };
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(empty_zone()));
    let result = serve(cfg, rx, tokio_util::sync::CancellationToken::new()).await;
    assert!(matches!(result, Err(DnsError::Bind { .. })), "{result:?}");
}
