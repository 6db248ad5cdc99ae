//! Answers from the zone: what CoreDNS's `kubernetes` plugin does for the cluster domain and the reverse names of
//! addresses the zone knows. Pure: a query message in, an [`Outcome`] out.

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::addr_names::parse_reverse;
use crate::zone::{Node, Zone, CLUSTER_TTL};

/// The UDP payload size this server advertises and asks upstreams for (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// ExternalName Services may point at each other; a loop must end.
const MAX_CNAME_CHAIN: usize = 8;

/// What to do with a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A complete response (the query's ID and question, possibly NXDOMAIN/NODATA/FORMERR).
    Answer(Message),
    /// Not a cluster name: resolve it upstream.
    Forward,
    /// An ExternalName chain leaving the cluster domain: `response` already carries the CNAME records; resolve
    /// `target` (same type and class) upstream and append its answers, as CoreDNS does.
    Chase { response: Message, target: Name },
}

/// Answers a query for names inside the cluster domain (and reverse zones of cluster addresses it knows);
/// [`Outcome::Forward`] for everything else.
pub fn answer(zone: &Zone, query: &Message) -> Outcome {
    let mut response = reply_to(query);
    if query.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Outcome::Answer(response);
    }
    let [question] = query.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Outcome::Answer(response);
    };
    let labels = lower_labels(&question.name);
    let Some(relative) = zone.relative(&labels) else {
        return reverse(zone, question, &labels, response);
    };
    if !matches!(question.query_class, DNSClass::IN | DNSClass::ANY) {
        response.metadata.response_code = ResponseCode::Refused;
        return Outcome::Answer(response);
    }
    response.metadata.authoritative = true;
    let qtype = question.query_type;
    let mut owner = question.name.clone();
    let mut relative = relative.to_vec();
    for _ in 0..MAX_CNAME_CHAIN {
        let Some(node) = zone.lookup(&relative) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.authorities.push(soa(zone));
            return Outcome::Answer(response);
        };
        if let Some(target) = &node.cname {
            response.answers.push(Record::from_rdata(owner.clone(), CLUSTER_TTL, RData::CNAME(CNAME(target.clone()))));
            if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
                return Outcome::Answer(response);
            }
            let target_labels = lower_labels(target);
            match zone.relative(&target_labels) {
                Some(inside) => {
                    relative = inside.to_vec();
                    owner = target.clone();
                    continue;
                }
                None => return Outcome::Chase { response, target: target.clone() },
            }
        }
        let answers = records(zone, &owner, &node, relative.is_empty(), qtype);
        if answers.is_empty() && response.answers.is_empty() {
            response.authorities.push(soa(zone));
        }
        if qtype == RecordType::SRV || qtype == RecordType::ANY {
            response.additionals = srv_additionals(zone, &node);
        }
        response.answers.extend(answers);
        return Outcome::Answer(response);
    }
    tracing::warn!(name = %question.name, "CNAME chain too long inside the cluster domain");
    response.answers.clear();
    response.metadata.response_code = ResponseCode::ServFail;
    Outcome::Answer(response)
}

/// A response skeleton for `query`: its ID, opcode, question and RD bit; EDNS if the client spoke it.
pub(crate) fn reply_to(query: &Message) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.checking_disabled = query.metadata.checking_disabled;
    response.queries = query.queries.clone();
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.edns = Some(edns);
    }
    response
}

pub(crate) fn lower_labels(name: &Name) -> Vec<String> {
    name.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect()
}

fn reverse(zone: &Zone, question: &Query, labels: &[String], mut response: Message) -> Outcome {
    let target = match parse_reverse(labels) {
        Some(ip) => zone.ptr(&ip),
        None => None,
    };
    // Unknown addresses and other types fall through to upstream, like CoreDNS's `fallthrough in-addr.arpa`.
    match target {
        Some(target) if matches!(question.query_type, RecordType::PTR | RecordType::ANY) => {
            response.metadata.authoritative = true;
            response.answers.push(Record::from_rdata(
                question.name.clone(),
                CLUSTER_TTL,
                RData::PTR(PTR(target.clone())),
            ));
            Outcome::Answer(response)
        }
        _ => Outcome::Forward,
    }
}

fn records(zone: &Zone, owner: &Name, node: &Node, apex: bool, qtype: RecordType) -> Vec<Record> {
    let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
    let mut out = Vec::new();
    let mut push = |rdata: RData| out.push(Record::from_rdata(owner.clone(), CLUSTER_TTL, rdata));
    if wants(RecordType::A) {
        node.a.iter().for_each(|ip| push(RData::A(A(*ip))));
    }
    if wants(RecordType::AAAA) {
        node.aaaa.iter().for_each(|ip| push(RData::AAAA(AAAA(*ip))));
    }
    if wants(RecordType::SRV) {
        for srv in &node.srv {
            push(RData::SRV(SRV::new(0, srv.weight, srv.port, srv.target.clone())));
        }
    }
    if wants(RecordType::TXT) {
        if let Some(txt) = &node.txt {
            push(RData::TXT(TXT::new(vec![txt.clone()])));
        }
    }
    if apex && wants(RecordType::SOA) {
        out.push(soa(zone));
    }
    out
}

/// The A/AAAA records of SRV targets inside the zone, for the additional section.
fn srv_additionals(zone: &Zone, node: &Node) -> Vec<Record> {
    let mut out = Vec::new();
    let mut seen: Vec<&Name> = Vec::new();
    for srv in &node.srv {
        if seen.contains(&&srv.target) {
            continue;
        }
        seen.push(&srv.target);
        let labels = lower_labels(&srv.target);
        let Some(target) = zone.relative(&labels).and_then(|r| zone.lookup(r)) else {
            continue;
        };
        for ip in &target.a {
            out.push(Record::from_rdata(srv.target.clone(), CLUSTER_TTL, RData::A(A(*ip))));
        }
        for ip in &target.aaaa {
            out.push(Record::from_rdata(srv.target.clone(), CLUSTER_TTL, RData::AAAA(AAAA(*ip))));
        }
    }
    out
}

/// The zone's SOA, in the shape CoreDNS gives it (negative answers cached for the cluster TTL).
pub(crate) fn soa(zone: &Zone) -> Record {
    let origin = zone.origin().clone();
    let mname = zone.absolute("ns.dns").unwrap_or_else(|| origin.clone());
    let rname = zone.absolute("hostmaster").unwrap_or_else(|| origin.clone());
    let rdata = SOA::new(mname, rname, zone.serial(), 7200, 1800, 86400, CLUSTER_TTL);
    Record::from_rdata(origin, CLUSTER_TTL, RData::SOA(rdata))
}
