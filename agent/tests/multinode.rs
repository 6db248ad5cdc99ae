//! The pod network across three nodes (root): the multi-node harness, flannel-style VXLAN, unique pod
//! IPs from each node's CIDR, pod-to-pod by IP across nodes, egress masquerade, node removal, agent
//! restart, and uninstall leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{sh, Cluster};

const MINUTE: Duration = Duration::from_secs(60);

const SPREAD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: nginx:1.7.9
"#;

fn jsonpath(c: &Cluster, args: &[&str], jp: &str) -> Vec<String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let jp = format!("jsonpath={jp}");
    all.extend_from_slice(&["-o", &jp]);
    c.ok(&all).split_whitespace().map(str::to_string).collect()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    net.contains(&ip)
}

/// Every pod fetches every other pod's page and pings it.
fn all_pairs_reach(c: &Cluster, pods: &[String], ips: &[String]) {
    for p in pods {
        for ip in ips {
            let out = c.kubectl(&[
                "exec",
                p,
                "--",
                "sh",
                "-c",
                &format!("ping -c 1 -W 3 {ip} >/dev/null && timeout 5 wget -qO- http://{ip}/"),
            ]);
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(
                body.contains("Welcome to nginx!"),
                "{p} → {ip}: {body} {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.logs()
            );
        }
    }
}

#[test]
fn three_nodes_overlay_egress_restart_and_cleanup() {
    let Some(mut c) = Cluster::start(3) else { return };

    // One pod per node; addresses unique and from each node's own CIDR.
    c.apply(SPREAD);
    c.wait_for(&["deploy", "web"], "{.status.readyReplicas}", "3", 2 * MINUTE);
    let pods = jsonpath(&c, &["pods", "-l", "app=web"], "{.items[*].metadata.name}");
    let ips = jsonpath(&c, &["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    let nodes = jsonpath(&c, &["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    let mut distinct = nodes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "pods spread over the nodes: {nodes:?}");
    for (ip, node) in ips.iter().zip(&nodes) {
        let cidr = jsonpath(&c, &["node", node], "{.spec.podCIDR}").remove(0);
        assert!(in_cidr(ip, &cidr), "{ip} not in {node}'s {cidr}");
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);

    // flannel's three entries per remote node on each node.
    let routes = String::from_utf8_lossy(&c.in_node(0, "ip route show dev flannel.1").stdout).into_owned();
    assert_eq!(routes.lines().filter(|l| l.contains("onlink")).count(), 2, "{routes}");

    all_pairs_reach(&c, &pods, &ips);

    // Egress: a server outside the cluster sees the node's address, not the pod's.
    let lan = c.lan_ns.clone();
    let outside = format!("10.213.{}.253", c.host_ip.octets()[2]);
    let www = c.dir.path().join("www");
    std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
    std::fs::write(
        www.join("cgi-bin/ip"),
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    assert!(sh(&format!("chmod 755 {}/cgi-bin/ip", www.display())).status.success());
    assert!(sh(&format!("ip -n {lan} addr add {outside}/24 dev br0")).status.success());
    let mut httpd = std::process::Command::new("ip")
        .args(["netns", "exec", &lan, "busybox", "httpd", "-f", "-p", &format!("{outside}:8080"), "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let node_ip_of =
        |name: &str| jsonpath(&c, &["node", name], "{.status.addresses[?(@.type=='InternalIP')].address}").remove(0);
    for (p, node) in pods.iter().zip(&nodes) {
        let out =
            c.kubectl(&["exec", p, "--", "sh", "-c", &format!("timeout 5 wget -qO- http://{outside}:8080/cgi-bin/ip")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            node_ip_of(node),
            "{p} egress: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = httpd.kill();
    let _ = httpd.wait();

    // An agent restart keeps pods, their addresses and connectivity.
    c.restart(1);
    c.wait_node_ready(1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jsonpath(&c, &["pods", "-l", "app=web"], "{.items[*].status.podIP}"), ips);
    assert_eq!(
        jsonpath(&c, &["pods", "-l", "app=web"], "{.items[*].status.containerStatuses[0].restartCount}"),
        vec!["0"; 3]
    );
    all_pairs_reach(&c, &pods, &ips);

    // Removing node 3 (its agent stopped first) removes its overlay entries on the others.
    let n3 = c.nodes[2].name.clone();
    let n3_cidr = jsonpath(&c, &["node", &n3], "{.spec.podCIDR}").remove(0);
    c.stop(2);
    c.ok(&["delete", "node", &n3]);
    c.eventually(MINUTE, "node 3's route gone on node 1", || {
        let r = String::from_utf8_lossy(&c.in_node(0, "ip route show dev flannel.1").stdout).into_owned();
        !r.contains(&n3_cidr)
    });
    let fdb = String::from_utf8_lossy(&c.in_node(0, "bridge fdb show dev flannel.1").stdout).into_owned();
    assert!(!fdb.contains(&c.nodes[2].ip.to_string()), "{fdb}");

    // Uninstall removes everything the agent made on node 3.
    let dir = c.nodes[2].agent_dir(false);
    let ns = c.nodes[2].netns.clone();
    let agent = c.dir.path().join("bin/edge-agent");
    let st = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(&agent)
        .arg("--data-dir")
        .arg(&dir)
        .arg("uninstall")
        .status()
        .unwrap();
    assert!(st.success());
    let links = String::from_utf8_lossy(&sh(&format!("ip -n {ns} -o link")).stdout).into_owned();
    assert!(!links.contains("cni0") && !links.contains("flannel.1") && !links.contains("veth"), "{links}");
    let tables = String::from_utf8_lossy(&sh(&format!("ip netns exec {ns} nft list tables")).stdout).into_owned();
    assert!(tables.trim().is_empty(), "{tables}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&*dir.to_string_lossy()), "mounts left under {}", dir.display());
    assert!(!dir.exists());
    let shims = String::from_utf8_lossy(&sh("pgrep -af 'edge-shim --serve'").stdout).into_owned();
    assert!(!shims.contains(&*dir.to_string_lossy()), "{shims}");
}
