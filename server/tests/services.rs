//! Service address allocation, Endpoints/EndpointSlices from pods, and node pod CIDRs, through
//! the real kubectl. The test plays the kubelet: it sets pod IPs and readiness through the status
//! subresource.

mod support;

use std::time::Duration;

use support::{eventually, Server};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: NAME
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx:1.7.9
    ports: [{name: http, containerPort: 8080}]
";

fn run_pod(s: &Server, name: &str, ip: &str, ready: bool) {
    let out = s.apply_stdin(&["apply", "-f", "-"], &POD.replace("NAME", name));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = format!(
        r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"conditions":[{{"type":"Ready","status":"{}"}}]}}}}"#,
        if ready { "True" } else { "False" }
    );
    s.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status]);
}

#[test]
fn cluster_ips_and_node_ports_are_allocated_once() {
    let s = Server::start();
    // The kubernetes Service holds the first address.
    assert_eq!(s.ok(&["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]), "10.43.0.1");
    s.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = s.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43.") && ip != "10.43.0.1" && ip != "10.43.0.10", "{ip}");
    let table = s.ok(&["get", "svc", "web"]);
    assert!(table.contains(&ip) && table.contains("80/TCP"), "{table}");
    // Cluster DNS holds its own address.
    eventually("kube-dns", Duration::from_secs(15), || {
        s.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]).stdout
            == b"10.43.0.10"
    });
    // A requested address is honoured, or refused when taken or outside the range.
    s.ok(&["create", "service", "clusterip", "dns", "--clusterip=10.43.0.20", "--tcp=53:53"]);
    assert_eq!(s.ok(&["get", "svc", "dns", "-o", "jsonpath={.spec.clusterIP}"]), "10.43.0.20");
    let taken = s.fails(&["create", "service", "clusterip", "dup", "--clusterip=10.43.0.10", "--tcp=53:53"]);
    assert!(taken.contains("provided IP is already allocated"), "{taken}");
    let outside = s.fails(&["create", "service", "clusterip", "out", "--clusterip=10.99.0.1", "--tcp=53:53"]);
    assert!(outside.contains("The range of valid IPs is 10.43.0.0/16"), "{outside}");
    // Node ports: allocated, conflicts refused, freed on delete.
    s.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"]);
    assert_eq!(s.ok(&["get", "svc", "np", "-o", "jsonpath={.spec.ports[0].nodePort}"]), "30080");
    assert!(s.ok(&["get", "svc", "np"]).contains("80:30080/TCP"));
    assert!(s
        .fails(&["create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port=30080"])
        .contains("provided port is already allocated"));
    s.ok(&["delete", "svc", "np"]);
    s.ok(&["create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port=30080"]);
    // Allocations survive a restart: the same address cannot be handed out again.
    let mut s = s;
    s.restart();
    assert!(s
        .fails(&["create", "service", "clusterip", "again", &format!("--clusterip={ip}"), "--tcp=80:80"])
        .contains("already allocated"));
    s.ok(&["create", "service", "clusterip", "fresh", "--tcp=80:80"]);
    assert_ne!(s.ok(&["get", "svc", "fresh", "-o", "jsonpath={.spec.clusterIP}"]), ip);
}

#[test]
fn endpoints_follow_pod_readiness_and_named_ports() {
    let s = Server::start();
    s.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n",
    );
    run_pod(&s, "web-a", "10.42.0.5", true);
    run_pod(&s, "web-b", "10.42.0.6", false);
    eventually("endpoints", Duration::from_secs(15), || {
        s.ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}"]) == "10.42.0.5"
    });
    assert_eq!(s.ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].notReadyAddresses[*].ip}"]), "10.42.0.6");
    assert_eq!(s.ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].ports[0].port}"]), "8080");
    let slices = s.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "jsonpath={.items[*].endpoints[*].addresses[0]}",
    ]);
    assert_eq!(slices, "10.42.0.5 10.42.0.6");
    // Readiness changes move the address; deleting the pod removes it.
    s.ok(&[
        "patch",
        "pod",
        "web-b",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    eventually("both ready", Duration::from_secs(15), || {
        s.ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}"]) == "10.42.0.5 10.42.0.6"
    });
    s.ok(&["delete", "pod", "web-a", "--grace-period=0", "--force"]);
    eventually("a removed", Duration::from_secs(15), || {
        s.ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}"]) == "10.42.0.6"
    });
    // A selector-less service keeps the Endpoints its user writes.
    s.apply_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  ports: [{port: 5432}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: ext\nsubsets:\n- addresses: [{ip: 192.168.1.50}]\n  ports: [{port: 5432}]\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.ok(&["get", "endpoints", "ext", "-o", "jsonpath={.subsets[0].addresses[0].ip}"]), "192.168.1.50");
    // ... mirrored into an EndpointSlice, which is what proxies read.
    eventually("mirrored slice", Duration::from_secs(15), || {
        s.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=ext",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}",
        ]) == "192.168.1.50"
    });
    let managed = s.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=ext",
        "-o",
        "jsonpath={.items[0].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}",
    ]);
    assert_eq!(managed, "endpointslicemirroring-controller.k8s.io");
    // The kubernetes Service has its slice too.
    assert!(!s.ok(&["get", "endpointslice", "kubernetes", "-o", "jsonpath={.endpoints[0].addresses[0]}"]).is_empty());
    // Deleting the service removes what the controller wrote.
    s.ok(&["delete", "svc", "web"]);
    eventually("endpoints gone", Duration::from_secs(15), || !s.kubectl(&["get", "endpoints", "web"]).status.success());
    eventually("slices gone", Duration::from_secs(15), || {
        s.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "name"]).trim().is_empty()
    });
}

#[test]
fn nodes_get_distinct_pod_cidrs() {
    let s = Server::start();
    for n in ["n1", "n2"] {
        s.apply_stdin(&["apply", "-f", "-"], &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {n}\n"));
    }
    eventually("pod CIDRs", Duration::from_secs(15), || {
        s.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]).split_whitespace().count() == 2
    });
    let cidrs = s.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let list: Vec<&str> = cidrs.split_whitespace().collect();
    assert_ne!(list[0], list[1]);
    assert!(list.iter().all(|c| c.starts_with("10.42.") && c.ends_with(".0/24")), "{cidrs}");
    let err = s.fails(&["patch", "node", "n1", "--type=merge", "-p", r#"{"spec":{"podCIDR":"10.42.200.0/24"}}"#]);
    assert!(err.contains("podCIDR"), "{err}");
}

#[test]
fn dns_endpoints_and_load_balancer_ingress_follow_ready_nodes() {
    let s = Server::start();
    s.apply_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n");
    let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}],"addresses":[{"type":"InternalIP","address":"192.0.2.7"}]}}"#;
    s.ok(&["patch", "node", "n1", "--subresource=status", "--type=merge", "-p", ready]);
    eventually("pod CIDR", Duration::from_secs(15), || {
        !s.ok(&["get", "node", "n1", "-o", "jsonpath={.spec.podCIDR}"]).is_empty()
    });
    let cidr = s.ok(&["get", "node", "n1", "-o", "jsonpath={.spec.podCIDR}"]);
    let gateway = cidr.replace(".0/24", ".1");
    // Cluster DNS answers on each node's pod gateway; queries stay on the node.
    eventually("kube-dns endpoints", Duration::from_secs(15), || {
        s.ok(&[
            "get",
            "endpointslices",
            "-n",
            "kube-system",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}",
        ]) == gateway
    });
    assert_eq!(
        s.ok(&[
            "get",
            "endpoints",
            "-n",
            "kube-system",
            "kube-dns",
            "-o",
            "jsonpath={.subsets[0].addresses[0].nodeName}"
        ]),
        "n1"
    );
    assert_eq!(
        s.ok(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.internalTrafficPolicy}"]),
        "Local"
    );
    // Deleted, it comes back.
    s.ok(&["delete", "svc", "-n", "kube-system", "kube-dns"]);
    eventually("kube-dns recreated", Duration::from_secs(15), || {
        s.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]).stdout
            == b"10.43.0.10"
    });

    // A LoadBalancer is served by the nodes: their addresses are its ingress.
    s.ok(&["create", "service", "loadbalancer", "lb", "--tcp=80:8080"]);
    eventually("ingress", Duration::from_secs(15), || {
        s.ok(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"]) == "192.0.2.7"
    });
    let table = s.ok(&["get", "svc", "lb"]);
    assert!(table.contains("192.0.2.7") && table.contains("80:3"), "{table}");
    s.ok(&["patch", "svc", "lb", "--type=merge", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    eventually("ingress cleared", Duration::from_secs(15), || {
        s.ok(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress}"]).is_empty()
    });
    assert_eq!(s.ok(&["get", "svc", "lb", "-o", "jsonpath={.spec.ports[0].nodePort}"]), "");
}
