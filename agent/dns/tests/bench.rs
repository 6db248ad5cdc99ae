//! Latency benchmark (ignored by default): `cargo test -p edge-dns --test bench -- --ignored --nocapture`.
//! Prints median and p99 of a cluster-record answer and a cached forwarded answer through the server, of the fake
//! upstream asked directly (the baseline of one UDP round trip), and of `answer` in-process.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::*;
use edge_dns::hickory_proto::rr::RecordType;
use edge_dns::{answer, Outcome};

const ROUNDS: usize = 3000;

fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!("{what:<32} median {:>8.1} µs   p99 {:>8.1} µs", micros(median), micros(p99));
    median
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn measure_udp(server: std::net::SocketAddr, name: &str) -> Vec<Duration> {
    let c = client().await;
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS + 100 {
        let q = query(u16::try_from(i % 65536).unwrap(), name, RecordType::A, false);
        let started = Instant::now();
        let reply = ask_udp(&c, server, &q).await;
        let took = started.elapsed();
        assert!(!reply.answers.is_empty(), "{name}");
        // The first 100 warm caches and sockets up.
        if i >= 100 {
            samples.push(took);
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn latency() {
    let upstream = fake_upstream().await;
    let zone = services_zone(&[cluster_ip_service("default", "web", "10.43.0.20")]);
    let server = start(vec![upstream.addr], zone.clone(), Duration::from_secs(2)).await;

    let q = query(1, "web.default.svc.cluster.local.", RecordType::A, false);
    let mut in_process = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let outcome = answer(&zone, &q);
        in_process.push(started.elapsed());
        assert!(matches!(outcome, Outcome::Answer(_)));
    }
    report("answer() in-process", in_process);
    report("cluster record via server", measure_udp(server.addr, "web.default.svc.cluster.local.").await);
    let cached = report("cached forward via server", measure_udp(server.addr, "www.example.com.").await);
    assert_eq!(upstream.udp(), 1, "every forwarded query after the first came from the cache");
    report("upstream directly (baseline)", measure_udp(upstream.addr, "www.example.com.").await);
    assert!(cached < Duration::from_millis(1), "cached answers under 1 ms (median)");
}
