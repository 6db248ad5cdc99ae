//! The scheduler's decision for pending pods: upstream's default plugins' filters (in their
//! order: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit) and
//! scores (TaintToleration, NodeAffinity, NodeResourcesFit LeastAllocated,
//! NodeResourcesBalancedAllocation, spreading of one owner's pods), and the FailedScheduling
//! message upstream's FitError prints.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::resources::{self, Resources};
use crate::{affinity, controller_uid, taints};

pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Why a node cannot take the pod: upstream's reason strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Unschedulable,
    UntoleratedTaint { key: String, value: String },
    NodeAffinity,
    NodePorts,
    Insufficient(&'static str),
    TooManyPods,
}

impl Reason {
    pub fn message(&self) -> String {
        match self {
            Reason::Unschedulable => "node(s) were unschedulable".into(),
            Reason::UntoleratedTaint { key, value } => format!("node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Reason::NodePorts => "node(s) didn't have free ports for the requested pod ports".into(),
            Reason::Insufficient(r) => format!("Insufficient {r}"),
            Reason::TooManyPods => "Too many pods".into(),
        }
    }

    /// Upstream's UnschedulableAndUnresolvable: removing other pods would not help.
    fn unresolvable(&self) -> bool {
        matches!(self, Reason::Unschedulable | Reason::UntoleratedTaint { .. } | Reason::NodeAffinity)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    protocol: String,
    ip: String,
    port: i32,
}

impl HostPort {
    fn conflicts(&self, other: &HostPort) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (any(&self.ip) || any(&other.ip) || self.ip == other.ip)
    }
}

fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| HostPort {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            ip: p.host_ip.clone().unwrap_or_default(),
            port: p.host_port.unwrap_or_default(),
        })
        .collect()
}

/// A node and what is already placed on it (upstream's NodeInfo).
#[derive(Debug, Clone)]
pub struct NodeState {
    pub node: Node,
    pub name: String,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    /// spec.taints plus the NoSchedule taint the node's Ready condition implies, so that a node
    /// is not used in the moment before the lifecycle controller taints it.
    pub taints: Vec<Taint>,
    ports: Vec<HostPort>,
    owners: HashMap<String, usize>,
}

/// The Ready condition's status ("True", "False", "Unknown"), if the node reports one.
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

impl NodeState {
    pub fn new(node: Node) -> NodeState {
        let mut taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let implied = match ready_status(&node) {
            Some("True") => None,
            Some("Unknown") => Some(taints::UNREACHABLE),
            _ => Some(taints::NOT_READY),
        };
        if let Some(key) = implied {
            if !taints.iter().any(|t| t.key == key && t.effect == taints::NO_SCHEDULE) {
                taints.push(taints::taint(key, taints::NO_SCHEDULE));
            }
        }
        NodeState {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: resources::node_allocatable(&node),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            taints,
            ports: Vec::new(),
            owners: HashMap::new(),
            node,
        }
    }

    /// Accounts for a pod bound (or assumed bound) to this node.
    pub fn add_pod(&mut self, pod: &Pod) {
        if let Some(spec) = &pod.spec {
            self.requested.add(&resources::pod_requests(spec, false));
            self.non_zero_requested.add(&resources::pod_requests(spec, true));
        }
        self.ports.extend(host_ports(pod));
        if let Some(uid) = controller_uid(&pod.metadata) {
            *self.owners.entry(uid.to_string()).or_default() += 1;
        }
    }

    fn unschedulable(&self) -> bool {
        self.node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
    }
}

/// Every reason the first failing filter gives, or nothing when the node fits the pod.
pub fn filter(pod: &Pod, n: &NodeState) -> Vec<Reason> {
    let Some(spec) = &pod.spec else { return vec![Reason::NodeAffinity] };
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if n.unschedulable() && !taints::tolerated(tolerations, &taints::taint(taints::UNSCHEDULABLE, taints::NO_SCHEDULE))
    {
        return vec![Reason::Unschedulable];
    }
    let hard = |t: &Taint| t.effect == taints::NO_SCHEDULE || t.effect == taints::NO_EXECUTE;
    if let Some(t) = taints::find_untolerated(&n.taints, tolerations, hard) {
        return vec![Reason::UntoleratedTaint { key: t.key.clone(), value: t.value.clone().unwrap_or_default() }];
    }
    if !affinity::required_matches(spec, &n.node) {
        return vec![Reason::NodeAffinity];
    }
    let wanted = host_ports(pod);
    if wanted.iter().any(|w| n.ports.iter().any(|u| u.conflicts(w))) {
        return vec![Reason::NodePorts];
    }
    let req = resources::pod_requests(spec, false);
    let (alloc, used) = (&n.allocatable, &n.requested);
    let mut reasons = Vec::new();
    if used.pods + 1 > alloc.pods {
        reasons.push(Reason::TooManyPods);
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        reasons.push(Reason::Insufficient("memory"));
    }
    if req.ephemeral_storage > 0 && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage {
        reasons.push(Reason::Insufficient("ephemeral-storage"));
    }
    reasons
}

const MAX_SCORE: i64 = 100;

/// Weighted scores of the feasible nodes, in their order (upstream's default plugin weights:
/// TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, NodeResourcesFit 1,
/// NodeResourcesBalancedAllocation 1).
pub fn score(pod: &Pod, feasible: &[&NodeState]) -> Vec<i64> {
    let Some(spec) = &pod.spec else { return vec![0; feasible.len()] };
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let req = resources::pod_requests(spec, true);
    let owner = controller_uid(&pod.metadata);

    let prefer_no_schedule: Vec<i64> = feasible
        .iter()
        .map(|n| {
            n.taints
                .iter()
                .filter(|t| t.effect == taints::PREFER_NO_SCHEDULE && !taints::tolerated(tolerations, t))
                .count() as i64
        })
        .collect();
    let preferred: Vec<i64> = feasible.iter().map(|n| affinity::preferred_weight(spec, &n.node)).collect();
    let same_owner: Vec<i64> =
        feasible.iter().map(|n| owner.and_then(|o| n.owners.get(o)).copied().unwrap_or(0) as i64).collect();
    let max = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
    let (max_taint, max_pref, max_owner) = (max(&prefer_no_schedule), max(&preferred), max(&same_owner));

    feasible
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let taint =
                if max_taint == 0 { MAX_SCORE } else { MAX_SCORE - prefer_no_schedule[i] * MAX_SCORE / max_taint };
            let pref = if max_pref == 0 { 0 } else { preferred[i] * MAX_SCORE / max_pref };
            let spread = if max_owner == 0 { MAX_SCORE } else { (max_owner - same_owner[i]) * MAX_SCORE / max_owner };
            let (least, balanced) = allocation_scores(&n.allocatable, &n.non_zero_requested, &req);
            3 * taint + 2 * pref + 2 * spread + least + balanced
        })
        .collect()
}

/// LeastAllocated (mean free fraction of cpu and memory after placing the pod) and
/// BalancedAllocation (how close the two used fractions are), both 0..=100.
fn allocation_scores(alloc: &Resources, used: &Resources, req: &Resources) -> (i64, i64) {
    let pairs = [(alloc.milli_cpu, used.milli_cpu + req.milli_cpu), (alloc.memory, used.memory + req.memory)];
    let least: i64 = pairs
        .iter()
        .map(|&(cap, want)| if cap <= 0 || want > cap { 0 } else { (cap - want) * MAX_SCORE / cap })
        .sum::<i64>()
        / 2;
    let fractions: Vec<f64> =
        pairs.iter().map(|&(cap, want)| if cap <= 0 { 1.0 } else { (want as f64 / cap as f64).min(1.0) }).collect();
    let std = (fractions[0] - fractions[1]).abs() / 2.0;
    let balanced = ((1.0 - std) * MAX_SCORE as f64) as i64;
    (least, balanced)
}

/// Why no node fits: upstream's FitError, whose text is the FailedScheduling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    /// Filter reason message → number of nodes.
    pub reasons: BTreeMap<String, usize>,
    /// Preemption outcome → number of nodes; None when the pod may not preempt.
    pub preemption: Option<BTreeMap<String, usize>>,
}

fn histogram(h: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = h.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    parts.sort();
    parts.join(", ")
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available: {}.", self.num_nodes, histogram(&self.reasons))?;
        match &self.preemption {
            Some(p) => write!(f, " preemption: 0/{} nodes are available: {}.", self.num_nodes, histogram(p)),
            None => write!(f, " preemption: not eligible due to preemptionPolicy=Never."),
        }
    }
}

/// Picks the node for `pod`: the best score, ties to the first in name order (upstream picks
/// among ties at random).
pub fn schedule_one(pod: &Pod, nodes: &[NodeState]) -> Result<usize, FitError> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let why = filter(pod, n);
        if why.is_empty() {
            feasible.push(i);
            continue;
        }
        for r in &why {
            *reasons.entry(r.message()).or_default() += 1;
        }
        let outcome = if why.iter().any(Reason::unresolvable) {
            "Preemption is not helpful for scheduling"
        } else {
            "No preemption victims found for incoming pod"
        };
        *preemption.entry(outcome.to_string()).or_default() += 1;
    }
    if feasible.is_empty() {
        let never = pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
        return Err(FitError { num_nodes: nodes.len(), reasons, preemption: (!never).then_some(preemption) });
    }
    let candidates: Vec<&NodeState> = feasible.iter().map(|&i| &nodes[i]).collect();
    let scores = score(pod, &candidates);
    let mut best = 0;
    for i in 1..candidates.len() {
        if scores[i] > scores[best] || (scores[i] == scores[best] && candidates[i].name < candidates[best].name) {
            best = i;
        }
    }
    Ok(feasible[best])
}

/// Pods the default scheduler must place: unbound, ours, not being deleted, not finished.
pub fn is_pending(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
    spec.node_name.as_deref().unwrap_or_default().is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        && pod.metadata.deletion_timestamp.is_none()
        && phase != "Succeeded"
        && phase != "Failed"
}

/// Pods that occupy their node's resources: bound and not finished.
pub fn occupies_node(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty())
        && phase != "Succeeded"
        && phase != "Failed"
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind { namespace: String, name: String, node: String },
    Unschedulable { namespace: String, name: String, message: String },
}

/// Decides every pending pod, highest priority and oldest first, each placement counting
/// against the nodes for the pods after it (upstream's assumed pods).
pub fn plan(pods: &[Pod], nodes: Vec<Node>) -> Vec<Decision> {
    let mut states: Vec<NodeState> = nodes.into_iter().map(NodeState::new).collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    let index: HashMap<String, usize> = states.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
    for pod in pods.iter().filter(|p| occupies_node(p)) {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default();
        if let Some(&i) = index.get(node) {
            states[i].add_pod(pod);
        }
    }
    let mut pending: Vec<&Pod> = pods.iter().filter(|p| is_pending(p)).collect();
    pending.sort_by(|a, b| {
        let prio = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        prio(b)
            .cmp(&prio(a))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let mut decisions = Vec::new();
    for pod in pending {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        match schedule_one(pod, &states) {
            Ok(i) => {
                states[i].add_pod(pod);
                decisions.push(Decision::Bind { namespace, name, node: states[i].name.clone() });
            }
            Err(e) => decisions.push(Decision::Unschedulable { namespace, name, message: e.to_string() }),
        }
    }
    decisions
}

#[cfg(test)]
mod tests;
