//! The ruleset as an `nft -f` script in the order the netlink batch uses: replace the table,
//! declare every chain and set, then rules, then map elements. For the benchmark's baseline
//! and for reading what the proxy programs.

use edge_nft::{ChainType, Hook};

use crate::plan::{nodeport_ips_set, ChainPlan, ElemKey, Fam, MapId, Plan, StaticPlan, Target};

fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

fn type_name(t: ChainType) -> &'static str {
    match t {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
        ChainType::Route => "route",
    }
}

fn addr_type(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "ipv4_addr",
        Fam::V6 => "ipv6_addr",
    }
}

fn key_text(k: &ElemKey) -> String {
    match k {
        ElemKey::Addr { ip, proto, port } => format!("{ip} . {} . {port}", proto.as_str()),
        ElemKey::Port { proto, port } => format!("{} . {port}", proto.as_str()),
    }
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Goto(c) => format!("goto {c}"),
        Target::Drop => "drop".into(),
    }
}

pub(crate) fn render(table: &str, statics: &StaticPlan, plan: &Plan) -> String {
    let t = format!("inet {table}");
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("add table {t}"));
    line(format!("delete table {t}"));
    line(format!("add table {t}"));
    let service_chains: Vec<&ChainPlan> = plan.services.values().flat_map(|p| &p.chains).collect();
    for c in statics.chains.iter().chain(service_chains.iter().copied()) {
        match c.base {
            Some(b) => line(format!(
                "add chain {t} {} {{ type {} hook {} priority {}; policy accept; }}",
                c.name,
                type_name(b.kind),
                hook_name(b.hook),
                b.priority
            )),
            None => line(format!("add chain {t} {}", c.name)),
        }
    }
    for id in MapId::all() {
        let key = if id.keyed_by_address() {
            format!("{} . inet_proto . inet_service", addr_type(id.fam))
        } else {
            "inet_proto . inet_service".to_owned()
        };
        line(format!("add map {t} {} {{ type {key} : verdict; }}", id.name()));
    }
    for (fam, ips) in &statics.nodeport_ips {
        line(format!("add set {t} {} {{ type {}; }}", nodeport_ips_set(*fam), addr_type(*fam)));
        if !ips.is_empty() {
            let list: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
            line(format!("add element {t} {} {{ {} }}", nodeport_ips_set(*fam), list.join(", ")));
        }
    }
    for a in plan.services.values().flat_map(|p| &p.sets) {
        line(format!(
            "add set {t} {} {{ type {}; flags dynamic,timeout; timeout {}s; }}",
            a.name,
            addr_type(a.fam),
            a.timeout_seconds
        ));
    }
    for c in service_chains.iter().copied().chain(&statics.chains) {
        for r in &c.rules {
            line(format!("add rule {t} {} {}", c.name, r.to_text()));
        }
    }
    let mut by_map: std::collections::BTreeMap<MapId, Vec<String>> = Default::default();
    for e in plan.services.values().flat_map(|p| &p.elements) {
        by_map.entry(e.map).or_default().push(format!("{} : {}", key_text(&e.key), target_text(&e.target)));
    }
    for (id, elems) in by_map {
        line(format!("add element {t} {} {{ {} }}", id.name(), elems.join(", ")));
    }
    out
}
