//! Services end to end on three nodes with the real kubectl: ClusterIP through cluster DNS and by
//! address from another node, fair spreading, session affinity, NodePort and LoadBalancer from
//! outside the cluster (the LAN namespace), externalTrafficPolicy Local keeping the client's
//! address, readiness leaving the endpoints, refusal without endpoints, ExternalName, and the
//! nftables table itself.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{sh, Cluster};

const MINUTE: Duration = Duration::from_secs(60);

/// The seed's nginx Deployment, each replica answering with its own name on `/` and the caller's
/// address on `/cgi-bin/ip`; ready while /tmp/ready exists.
const NGINX: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cgi
data:
  ip: |
    #!/bin/sh
    printf 'Content-Type: text/plain\r\n\r\n%s\n' "$REMOTE_ADDR"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deploy
spec:
  replicas: 3
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: nginx}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: nginx
        image: nginx:1.7.9
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && ln -s /cgi /www/cgi-bin && touch /tmp/ready && exec httpd -f -p 80 -h /www"]
        ports: [{containerPort: 80}]
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 1
        volumeMounts: [{name: cgi, mountPath: /cgi}]
      volumes:
      - name: cgi
        configMap: {name: cgi, defaultMode: 0755}
"#;

fn jsonpath(c: &Cluster, args: &[&str], jp: &str) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let jp = format!("jsonpath={jp}");
    all.extend_from_slice(&["-o", &jp]);
    c.ok(&all).trim().to_string()
}

/// Runs `cmd` in the client pod; (success, stdout, stderr).
fn in_client(c: &Cluster, cmd: &str) -> (bool, String, String) {
    let out = c.kubectl(&["exec", "client", "--", "sh", "-c", cmd]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` requests from the client pod to `url`: how often each replica answered.
fn spread(c: &Cluster, url: &str, n: usize) -> BTreeMap<String, usize> {
    // Into a file first, then read back after a pause: kubectl's WebSocket client drops output that
    // arrives before it has set up its stdout stream ("Unknown stream id 1"), and a fast loop's first
    // lines can beat it.
    let (ok, _, err) = in_client(
        c,
        &format!("i=0; rm -f /tmp/spread; while [ $i -lt {n} ]; do timeout 5 wget -qO- {url} >> /tmp/spread; i=$((i+1)); done"),
    );
    assert!(ok, "{url}: {err}");
    let (_, out, _) = in_client(c, "sleep 0.5; cat /tmp/spread");
    let mut counts = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.values().sum::<usize>(), n, "{counts:?} {err}");
    counts
}

/// The caller's address as a pod saw it (busybox httpd listens on IPv6: `[::ffff:a.b.c.d]`).
fn caller_seen(c: &Cluster, node_ip: std::net::Ipv4Addr, node_port: &str) -> Option<String> {
    let raw = from_outside(c, &format!("http://{node_ip}:{node_port}/cgi-bin/ip"))?;
    Some(raw.trim_matches(|ch| ch == '[' || ch == ']').trim_start_matches("::ffff:").to_string())
}

/// A GET from the LAN namespace, outside the cluster.
fn from_outside(c: &Cluster, url: &str) -> Option<String> {
    let out = sh(&format!("ip netns exec {} timeout 3 busybox wget -qO- {url}", c.lan_ns));
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn services_dns_node_ports_and_load_balancers() {
    let Some(c) = Cluster::start(3) else { return };
    c.apply(NGINX);
    c.wait_for(&["deploy", "nginx-deploy"], "{.status.readyReplicas}", "3", 2 * MINUTE);
    let pods: Vec<String> =
        jsonpath(&c, &["pods", "-l", "app=nginx"], "{.items[*].metadata.name}").split(' ').map(String::from).collect();
    let client_node = c.nodes[2].name.clone();
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  nodeName: {client_node}\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n"
    ));
    c.wait_for(&["pod", "client"], "{.status.phase}", "Running", MINUTE);

    // ClusterIP, by name through cluster DNS and by address, from another node.
    c.ok(&["expose", "deployment", "nginx-deploy", "--port=80"]);
    let ip = jsonpath(&c, &["svc", "nginx-deploy"], "{.spec.clusterIP}");
    c.eventually(MINUTE, "nginx-deploy answers by name", || {
        let (ok, out, _) = in_client(&c, "timeout 5 wget -qO- http://nginx-deploy");
        ok && pods.contains(&out.trim().to_string())
    });
    let (ok, out, err) = in_client(&c, "nslookup nginx-deploy.default.svc.cluster.local");
    assert!(ok && out.contains(&ip), "nslookup: {out} {err}");
    // Every container learns where the API server is, as client-go's in-cluster config expects.
    let (_, api, _) = in_client(&c, "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $KUBERNETES_PORT");
    assert_eq!(api.trim(), "10.43.0.1:443 tcp://10.43.0.1:443");
    let (_, resolv, _) = in_client(&c, "cat /etc/resolv.conf");
    assert!(resolv.contains("nameserver 10.43.0.10") && resolv.contains("ndots:5"), "{resolv}");

    // 300 requests: every replica gets a fair share.
    let counts = spread(&c, &format!("http://{ip}"), 300);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n >= 50), "unfair spread: {counts:?}");

    // Session affinity: one client, one replica.
    c.ok(&["patch", "svc", "nginx-deploy", "-p", r#"{"spec":{"sessionAffinity":"ClientIP"}}"#]);
    std::thread::sleep(Duration::from_secs(1));
    let pinned = spread(&c, &format!("http://{ip}"), 30);
    assert_eq!(pinned.len(), 1, "affinity: {pinned:?}");
    c.ok(&["patch", "svc", "nginx-deploy", "-p", r#"{"spec":{"sessionAffinity":"None"}}"#]);

    // NodePort on every node's address, from outside the cluster; masqueraded by default.
    c.ok(&["expose", "deployment", "nginx-deploy", "--name=nginx-np", "--type=NodePort", "--port=80"]);
    let node_port = jsonpath(&c, &["svc", "nginx-np"], "{.spec.ports[0].nodePort}");
    let outside = format!("10.213.{}.253", c.host_ip.octets()[2]);
    assert!(sh(&format!("ip -n {} addr add {outside}/24 dev br0", c.lan_ns)).status.success());
    for n in &c.nodes {
        let url = format!("http://{}:{node_port}/", n.ip);
        c.eventually(MINUTE, &format!("NodePort {url}"), || from_outside(&c, &url).is_some_and(|r| pods.contains(&r)));
        let seen = caller_seen(&c, n.ip, &node_port).unwrap_or_default();
        assert!(seen.parse::<std::net::Ipv4Addr>().is_ok() && seen != outside, "Cluster policy masquerades: {seen:?}");
    }
    // externalTrafficPolicy Local: the endpoint sees the real client, and only local endpoints serve.
    c.ok(&["patch", "svc", "nginx-np", "-p", r#"{"spec":{"externalTrafficPolicy":"Local"}}"#]);
    let pod_on_node = |node: &str| {
        let names = jsonpath(
            &c,
            &["pods", "-l", "app=nginx", "--field-selector", &format!("spec.nodeName={node}")],
            "{.items[*].metadata.name}",
        );
        names.split(' ').next().unwrap_or_default().to_string()
    };
    let deadline = Instant::now() + MINUTE;
    loop {
        let seen = caller_seen(&c, c.nodes[1].ip, &node_port);
        if seen.as_deref() == Some(outside.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Local policy: the pod saw {seen:?}, not {outside}\n{}",
            String::from_utf8_lossy(&c.in_node(1, "nft list table inet edge-proxy").stdout)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for n in &c.nodes {
        let r = from_outside(&c, &format!("http://{}:{node_port}/", n.ip));
        assert_eq!(r.as_deref(), Some(pod_on_node(&n.name).as_str()), "Local policy on {}", n.name);
    }

    // LoadBalancer: the nodes' addresses in its status, answering on the service port.
    c.ok(&[
        "expose",
        "deployment",
        "nginx-deploy",
        "--name=nginx-lb",
        "--type=LoadBalancer",
        "--port=8080",
        "--target-port=80",
    ]);
    let mut node_ips: Vec<String> = c.nodes.iter().map(|n| n.ip.to_string()).collect();
    node_ips.sort();
    c.wait_for(&["svc", "nginx-lb"], "{.status.loadBalancer.ingress[*].ip}", &node_ips.join(" "), MINUTE);
    for ip in &node_ips {
        let url = format!("http://{ip}:8080/");
        c.eventually(MINUTE, &format!("LoadBalancer {url}"), || {
            from_outside(&c, &url).is_some_and(|r| pods.contains(&r))
        });
    }

    // A replica that turns unready leaves the endpoints and gets no more traffic.
    let victim = pod_on_node(&c.nodes[1].name);
    c.ok(&["exec", &victim, "--", "rm", "/tmp/ready"]);
    c.eventually(MINUTE, "unready endpoint removed", || {
        !jsonpath(&c, &["endpoints", "nginx-deploy"], "{.subsets[*].addresses[*].targetRef.name}").contains(&victim)
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = spread(&c, &format!("http://{ip}"), 60);
    assert!(!after.contains_key(&victim) && after.len() == 2, "{victim} still served: {after:?}");
    // ... and with Local policy its node now has no endpoint: external traffic there is dropped.
    assert_eq!(from_outside(&c, &format!("http://{}:{node_port}/", c.nodes[1].ip)), None);

    // No endpoints: refused at once rather than timing out.
    c.ok(&["create", "service", "clusterip", "empty", "--tcp=80:80"]);
    let empty_ip = jsonpath(&c, &["svc", "empty"], "{.spec.clusterIP}");
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (ok, _, err) = in_client(&c, &format!("timeout 10 wget -qO- http://{empty_ip}/"));
    assert!(!ok && started.elapsed() < Duration::from_secs(5), "{err} after {:?}", started.elapsed());
    assert!(err.contains("refused"), "{err}");

    // ExternalName: a CNAME, followed to the target's address.
    c.ok(&["create", "service", "externalname", "alias", "--external-name", "nginx-deploy.default.svc.cluster.local"]);
    c.eventually(MINUTE, "ExternalName resolves", || {
        let (ok, out, _) = in_client(&c, "nslookup alias.default.svc.cluster.local");
        ok && out.contains("canonical name") && out.contains(&ip)
    });
    let (ok, out, err) = in_client(&c, "timeout 5 wget -qO- http://alias");
    assert!(ok && pods.contains(&out.trim().to_string()), "via ExternalName: {out} {err}");

    // The table is there to read, shaped as DESIGN.md §2 says.
    let ruleset = String::from_utf8_lossy(&c.in_node(2, "nft list ruleset").stdout).into_owned();
    for want in ["table ", "edge-proxy", "service-ips", "service-nodeports", "numgen random mod", "dnat", "masquerade"]
    {
        assert!(ruleset.contains(want), "nft list ruleset lacks {want:?}:\n{ruleset}");
    }
    assert!(ruleset.contains("default/nginx-deploy"), "{ruleset}");
}
