//! Table tests of `answer` over a fixture cluster.

use std::collections::BTreeMap;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::addr_names::reverse_name;
use crate::{answer, Outcome, Zone};

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() }
}

fn port(name: &str, port: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.into()),
        port,
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn service(name: &str, cluster_ips: &[&str], ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta("default", name),
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ips.first().map(|ip| ip.to_string()),
            cluster_ips: Some(cluster_ips.iter().map(|ip| ip.to_string()).collect()),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn external(name: &str, target: &str) -> Service {
    Service {
        metadata: meta("default", name),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (address, hostname, ready)
type Ep<'a> = (&'a str, Option<&'a str>, Option<bool>);

fn slice(service: &str, family: &str, endpoints: &[Ep], ports: &[(&str, i32)]) -> EndpointSlice {
    let mut metadata = meta("default", &format!("{service}-abcde"));
    metadata.labels = Some(BTreeMap::from([("kubernetes.io/service-name".to_owned(), service.to_owned())]));
    EndpointSlice {
        metadata,
        address_type: family.into(),
        endpoints: endpoints
            .iter()
            .map(|(ip, hostname, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                hostname: hostname.map(Into::into),
                conditions: Some(EndpointConditions { ready: *ready, ..Default::default() }),
                ..Default::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: Some(name.to_string()),
                    port: Some(*port),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

fn fixture() -> Zone {
    let mut pnr = service("pnr", &["None"], vec![]);
    if let Some(spec) = pnr.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }
    let services = vec![
        service("web", &["10.43.0.20"], vec![port("http", 80, "TCP"), port("dns", 53, "UDP"), port("", 8080, "TCP")]),
        service("dual", &["10.43.0.30", "fd00:43::30"], vec![]),
        service("db", &["None"], vec![port("pg", 5432, "TCP")]),
        service("db6", &["None"], vec![]),
        service("empty", &["None"], vec![]),
        pnr,
        external("ext", "www.Example.com"),
        external("inner", "web.default.svc.cluster.local."),
        external("loop1", "loop2.default.svc.cluster.local"),
        external("loop2", "loop1.default.svc.cluster.local"),
    ];
    let slices = vec![
        slice("web", "IPv4", &[("10.42.0.9", None, Some(true))], &[("http", 8080)]),
        slice(
            "db",
            "IPv4",
            &[
                ("10.42.0.5", Some("db-0"), Some(true)),
                ("10.42.0.6", None, None),
                ("10.42.0.7", Some("db-2"), Some(false)),
            ],
            &[("pg", 5433)],
        ),
        slice("db6", "IPv6", &[("fd00:42::5", None, Some(true))], &[]),
        slice("empty", "IPv4", &[("10.42.0.8", None, Some(false))], &[]),
        slice("pnr", "IPv4", &[("10.42.1.5", None, Some(false))], &[]),
        slice("orphan", "FQDN", &[("example.com", None, Some(true))], &[]),
    ];
    Zone::build("cluster.local", &services, &slices)
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.queries.push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

fn show(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {}", r.name, r.record_type(), r.data)).collect()
}

enum Want<'a> {
    /// rcode, answers, additionals, SOA in authority
    Answer(ResponseCode, &'a [&'a str], &'a [&'a str], bool),
    Forward,
    Chase(&'a [&'a str], &'a str),
}
use Want::*;

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;

#[test]
fn cluster_records() {
    use RecordType::*;
    let cases: &[(&str, RecordType, Want)] = &[
        (
            "web.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["web.default.svc.cluster.local. A 10.43.0.20"], &[], false),
        ),
        (
            "WEB.Default.SVC.cluster.LOCAL.",
            A,
            Answer(NOERROR, &["WEB.Default.SVC.cluster.LOCAL. A 10.43.0.20"], &[], false),
        ),
        ("web.default.svc.cluster.local.", AAAA, Answer(NOERROR, &[], &[], true)),
        ("web.default.svc.cluster.local.", TXT, Answer(NOERROR, &[], &[], true)),
        (
            "dual.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["dual.default.svc.cluster.local. A 10.43.0.30"], &[], false),
        ),
        (
            "dual.default.svc.cluster.local.",
            AAAA,
            Answer(NOERROR, &["dual.default.svc.cluster.local. AAAA fd00:43::30"], &[], false),
        ),
        (
            "_http._tcp.web.default.svc.cluster.local.",
            SRV,
            Answer(
                NOERROR,
                &["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."],
                &["web.default.svc.cluster.local. A 10.43.0.20"],
                false,
            ),
        ),
        (
            "_DNS._UDP.web.default.svc.cluster.local.",
            SRV,
            Answer(
                NOERROR,
                &["_DNS._UDP.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local."],
                &["web.default.svc.cluster.local. A 10.43.0.20"],
                false,
            ),
        ),
        ("_http._udp.web.default.svc.cluster.local.", SRV, Answer(NXDOMAIN, &[], &[], true)),
        ("_http._tcp.web.default.svc.cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        ("_tcp.web.default.svc.cluster.local.", SRV, Answer(NOERROR, &[], &[], true)),
        // Endpoint names of a ClusterIP Service exist so that PTR answers resolve forward.
        (
            "10-42-0-9.web.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["10-42-0-9.web.default.svc.cluster.local. A 10.42.0.9"], &[], false),
        ),
        // Headless: ready endpoints only (nil ready counts as ready).
        (
            "db.default.svc.cluster.local.",
            A,
            Answer(
                NOERROR,
                &["db.default.svc.cluster.local. A 10.42.0.5", "db.default.svc.cluster.local. A 10.42.0.6"],
                &[],
                false,
            ),
        ),
        (
            "db-0.db.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["db-0.db.default.svc.cluster.local. A 10.42.0.5"], &[], false),
        ),
        (
            "10-42-0-6.db.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["10-42-0-6.db.default.svc.cluster.local. A 10.42.0.6"], &[], false),
        ),
        ("db-2.db.default.svc.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        (
            "_pg._tcp.db.default.svc.cluster.local.",
            SRV,
            Answer(
                NOERROR,
                &[
                    "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5433 db-0.db.default.svc.cluster.local.",
                    "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5433 10-42-0-6.db.default.svc.cluster.local.",
                ],
                &[
                    "db-0.db.default.svc.cluster.local. A 10.42.0.5",
                    "10-42-0-6.db.default.svc.cluster.local. A 10.42.0.6",
                ],
                false,
            ),
        ),
        (
            "db6.default.svc.cluster.local.",
            AAAA,
            Answer(NOERROR, &["db6.default.svc.cluster.local. AAAA fd00:42::5"], &[], false),
        ),
        (
            "fd00-42--5.db6.default.svc.cluster.local.",
            AAAA,
            Answer(NOERROR, &["fd00-42--5.db6.default.svc.cluster.local. AAAA fd00:42::5"], &[], false),
        ),
        ("db6.default.svc.cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        (
            "pnr.default.svc.cluster.local.",
            A,
            Answer(NOERROR, &["pnr.default.svc.cluster.local. A 10.42.1.5"], &[], false),
        ),
        // The spec: a headless Service without ready endpoints is NXDOMAIN.
        ("empty.default.svc.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        // ExternalName (the target keeps the case the Service gave it).
        (
            "ext.default.svc.cluster.local.",
            A,
            Chase(&["ext.default.svc.cluster.local. CNAME www.Example.com."], "www.Example.com."),
        ),
        (
            "ext.default.svc.cluster.local.",
            CNAME,
            Answer(NOERROR, &["ext.default.svc.cluster.local. CNAME www.Example.com."], &[], false),
        ),
        (
            "inner.default.svc.cluster.local.",
            A,
            Answer(
                NOERROR,
                &[
                    "inner.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
                    "web.default.svc.cluster.local. A 10.43.0.20",
                ],
                &[],
                false,
            ),
        ),
        (
            "inner.default.svc.cluster.local.",
            AAAA,
            Answer(NOERROR, &["inner.default.svc.cluster.local. CNAME web.default.svc.cluster.local."], &[], false),
        ),
        // Pods ("pods insecure").
        (
            "10-42-0-99.default.pod.cluster.local.",
            A,
            Answer(NOERROR, &["10-42-0-99.default.pod.cluster.local. A 10.42.0.99"], &[], false),
        ),
        ("10-42-0-99.any-ns.pod.cluster.local.", AAAA, Answer(NOERROR, &[], &[], true)),
        (
            "fd00-42--1.default.pod.cluster.local.",
            AAAA,
            Answer(NOERROR, &["fd00-42--1.default.pod.cluster.local. AAAA fd00:42::1"], &[], false),
        ),
        ("not-an-ip.default.pod.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        ("x.10-42-0-99.default.pod.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        ("default.pod.cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        // Structure of the zone.
        ("google.com.default.svc.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        ("default.svc.cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        ("svc.cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        ("nosuchns.svc.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        ("nosuch.default.svc.cluster.local.", A, Answer(NXDOMAIN, &[], &[], true)),
        ("cluster.local.", A, Answer(NOERROR, &[], &[], true)),
        ("dns-version.cluster.local.", TXT, Answer(NOERROR, &["dns-version.cluster.local. TXT 1.0.1"], &[], false)),
        // Reverse.
        (
            "20.0.43.10.in-addr.arpa.",
            PTR,
            Answer(NOERROR, &["20.0.43.10.in-addr.arpa. PTR web.default.svc.cluster.local."], &[], false),
        ),
        (
            "5.0.42.10.in-addr.arpa.",
            PTR,
            Answer(NOERROR, &["5.0.42.10.in-addr.arpa. PTR db-0.db.default.svc.cluster.local."], &[], false),
        ),
        (
            "6.0.42.10.IN-ADDR.ARPA.",
            PTR,
            Answer(NOERROR, &["6.0.42.10.IN-ADDR.ARPA. PTR 10-42-0-6.db.default.svc.cluster.local."], &[], false),
        ),
        (
            "9.0.42.10.in-addr.arpa.",
            PTR,
            Answer(NOERROR, &["9.0.42.10.in-addr.arpa. PTR 10-42-0-9.web.default.svc.cluster.local."], &[], false),
        ),
        ("7.0.42.10.in-addr.arpa.", PTR, Forward),
        ("20.0.43.10.in-addr.arpa.", A, Forward),
        ("4.3.2.1.in-addr.arpa.", PTR, Forward),
        // Elsewhere.
        ("google.com.", A, Forward),
        ("cluster.local.example.com.", A, Forward),
        ("local.", SOA, Forward),
    ];
    let zone = fixture();
    for (name, qtype, want) in cases {
        let q = query(name, *qtype);
        let outcome = answer(&zone, &q);
        let what = format!("{name} {qtype}");
        match (want, outcome) {
            (Forward, Outcome::Forward) => {}
            (Answer(rcode, answers, additionals, soa), Outcome::Answer(m)) => {
                assert_eq!(m.metadata.response_code, *rcode, "{what}");
                assert_eq!(show(&m.answers), *answers, "{what}");
                assert_eq!(show(&m.additionals), *additionals, "{what}");
                let has_soa =
                    m.authorities.iter().any(|r| r.record_type() == SOA && r.name.to_ascii() == "cluster.local.");
                assert_eq!(has_soa, *soa, "{what}: SOA in authority");
                assert!(m.metadata.authoritative, "{what}: authoritative");
                assert_eq!(m.metadata.id, 4242, "{what}");
                assert_eq!(m.queries, q.queries, "{what}: question echoed");
                assert!(m.queries[0].name.eq_case(&q.queries[0].name), "{what}: question case kept");
                assert!(m.answers.iter().all(|r| r.ttl == crate::CLUSTER_TTL), "{what}: TTL");
            }
            (Chase(answers, target), Outcome::Chase { response, target: got }) => {
                assert_eq!(show(&response.answers), *answers, "{what}");
                assert_eq!(got.to_ascii(), *target, "{what}");
            }
            (_, got) => panic!("{what}: unexpected {got:?}"),
        }
    }
}

#[test]
fn ipv6_ptr_for_cluster_ip() {
    let zone = fixture();
    let name = format!("{}.", reverse_name("fd00:43::30".parse().unwrap()));
    let Outcome::Answer(m) = answer(&zone, &query(&name, RecordType::PTR)) else { panic!("not answered") };
    assert_eq!(show(&m.answers), [format!("{name} PTR dual.default.svc.cluster.local.")]);
}

#[test]
fn soa_at_apex_and_negative_ttl() {
    let zone = fixture();
    let Outcome::Answer(m) = answer(&zone, &query("cluster.local.", RecordType::SOA)) else { panic!("not answered") };
    assert_eq!(m.answers.len(), 1);
    let hickory_proto::rr::RData::SOA(soa) = &m.answers[0].data else { panic!("not an SOA") };
    assert_eq!(soa.mname.to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(soa.minimum, crate::CLUSTER_TTL, "negative answers cached as briefly as positive ones");
}

#[test]
fn cname_loop_is_servfail() {
    let Outcome::Answer(m) = answer(&fixture(), &query("loop1.default.svc.cluster.local.", RecordType::A)) else {
        panic!("not answered")
    };
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn malformed_and_unsupported_queries() {
    let zone = fixture();
    let mut two = query("web.default.svc.cluster.local.", RecordType::A);
    two.queries.push(two.queries[0].clone());
    let mut none = query("web.default.svc.cluster.local.", RecordType::A);
    none.queries.clear();
    let mut update = query("web.default.svc.cluster.local.", RecordType::A);
    update.metadata.op_code = OpCode::Update;
    let mut chaos = query("web.default.svc.cluster.local.", RecordType::TXT);
    chaos.queries[0].query_class = DNSClass::CH;
    let cases = [
        ("two questions", two, ResponseCode::FormErr),
        ("no question", none, ResponseCode::FormErr),
        ("update", update, ResponseCode::NotImp),
        ("chaos class", chaos, ResponseCode::Refused),
    ];
    for (what, q, code) in cases {
        let Outcome::Answer(m) = answer(&zone, &q) else { panic!("{what}: not answered") };
        assert_eq!(m.metadata.response_code, code, "{what}");
    }
}

#[test]
fn edns_echoed_only_when_asked() {
    let zone = fixture();
    let plain = query("web.default.svc.cluster.local.", RecordType::A);
    let Outcome::Answer(m) = answer(&zone, &plain) else { panic!() };
    assert!(m.edns.is_none());
    let mut with_edns = plain.clone();
    with_edns.edns = Some(Edns::new());
    let Outcome::Answer(m) = answer(&zone, &with_edns) else { panic!() };
    assert_eq!(m.edns.map(|e| e.max_payload()), Some(crate::EDNS_PAYLOAD));
}

#[test]
fn other_domains_and_invalid_objects() {
    // A custom domain, and objects whose names cannot be DNS names, must not break the build.
    let mut bad = service("Bad_Name", &["10.43.0.99"], vec![]);
    bad.metadata.namespace = Some("default".into());
    let zone = Zone::build("Edge.Internal.", &[bad, service("web", &["10.43.0.20"], vec![])], &[]);
    assert_eq!(zone.origin().to_ascii(), "edge.internal.");
    let Outcome::Answer(m) = answer(&zone, &query("web.default.svc.edge.internal.", RecordType::A)) else { panic!() };
    assert_eq!(show(&m.answers), ["web.default.svc.edge.internal. A 10.43.0.20"]);
    assert_eq!(answer(&zone, &query("web.default.svc.cluster.local.", RecordType::A)), Outcome::Forward);
}
