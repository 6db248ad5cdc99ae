//! Printers for networking.k8s.io Ingress and IngressClass and discovery.k8s.io EndpointSlice.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::column::{Column, AGE, NAME};
use crate::core::load_balancer_ingress;
use crate::fields::{age, list_at, name, object, opt_int, opt_str, str_at, string};
use crate::Printer;

pub(crate) const INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Class",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::string("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        Column::string("Address", "Address is a list containing ingress points for the load-balancer"),
        Column::string("Ports", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress_cells,
};

fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = list_at(ing, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - MAX),
        (false, false) => hosts.join(","),
    };
    let ports = if list_at(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name(ing),
        string(opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        string(hosts),
        // Tables are generated wide, so the address list is never clipped.
        string(load_balancer_ingress(ing).join(",")),
        string(ports),
        age(ing, now),
    ]
}

pub(crate) const INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Controller", "Controller that is responsible for handling this class"),
        Column::string("Parameters", "A reference to a resource with additional parameters"),
        AGE,
    ],
    cells: |class, now| {
        let parameters = object(class, &["spec", "parameters"]).map_or_else(
            || "<none>".to_string(),
            |p| {
                let kind = match opt_str(p, &["apiGroup"]) {
                    Some(group) => format!("{}.{group}", str_at(p, &["kind"])),
                    None => str_at(p, &["kind"]).to_string(),
                };
                format!("{kind}/{}", str_at(p, &["name"]))
            },
        );
        vec![name(class), string(str_at(class, &["spec", "controller"])), string(parameters), age(class, now)]
    },
};

pub(crate) const ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
        Column::string("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
        Column::string("Endpoints", "endpoints is a list of unique endpoints in this slice."),
        AGE,
    ],
    cells: |slice, now| {
        let ports = list_at(slice, &["ports"]).iter().map(|p| match opt_int(p, &["port"]) {
            Some(port) => port.to_string(),
            None => opt_str(p, &["name"]).unwrap_or("*").to_string(),
        });
        let addresses = list_at(slice, &["endpoints"])
            .iter()
            .flat_map(|e| list_at(e, &["addresses"]))
            .map(|a| a.as_str().unwrap_or("").to_string());
        vec![
            name(slice),
            string(str_at(slice, &["addressType"])),
            string(first_three(ports)),
            string(first_three(addresses)),
            age(slice, now),
        ]
    },
};

/// Upstream's listWithMoreString over at most three items: "a,b,c + N more..." or "<unset>".
fn first_three(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let all: Vec<String> = items.collect();
    if all.len() > MAX {
        format!("{} + {} more...", all[..MAX].join(","), all.len() - MAX)
    } else if all.is_empty() {
        "<unset>".to_string()
    } else {
        all.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    #[test]
    fn ingresses() {
        let cases = vec![
            (
                json!({"metadata": {"name": "web", "creationTimestamp": ago(30)},
                    "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                             "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"ip": "10.0.0.10"}, {"hostname": "lb.example.com"}]}}}),
                row![
                    "web",
                    "nginx",
                    "a.example.com,b.example.com",
                    "10.0.0.10,10.0.0.9,lb.example.com",
                    "80, 443",
                    "30s"
                ],
            ),
            (
                json!({"metadata": {"name": "many"},
                    "spec": {"rules": [{"host": "1"}, {}, {"host": "3"}, {"host": "4"}, {"host": "5"}]}}),
                row!["many", "<none>", "1,3,4 + 2 more...", "", "80", "<unknown>"],
            ),
            (
                json!({"metadata": {"name": "catchall"}, "spec": {"defaultBackend": {"service": {"name": "web"}}}}),
                row!["catchall", "<none>", "*", "", "80", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(ingress_cells(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn ingress_classes() {
        let cases = vec![
            (
                json!({"metadata": {"name": "nginx", "creationTimestamp": ago(61)}, "spec": {"controller": "k8s.io/ingress-nginx",
                    "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}),
                row!["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb", "61s"],
            ),
            (
                json!({"metadata": {"name": "cm"}, "spec": {"controller": "example.com/ctl", "parameters": {"kind": "ConfigMap", "name": "p"}}}),
                row!["cm", "example.com/ctl", "ConfigMap/p", "<unknown>"],
            ),
            (
                json!({"metadata": {"name": "plain"}, "spec": {"controller": "x"}}),
                row!["plain", "x", "<none>", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((INGRESS_CLASS.cells)(&obj, now()), want, "{obj}");
        }
    }

    #[test]
    fn endpoint_slices() {
        let cases = vec![
            (
                json!({"metadata": {"name": "web-abc12", "creationTimestamp": ago(5)}, "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}],
                    "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.1.5", "10.42.1.6"]}, {"addresses": ["10.42.2.5"]}]}),
                row!["web-abc12", "IPv4", "80,metrics,*", "10.42.0.5,10.42.1.5,10.42.1.6 + 1 more...", "5s"],
            ),
            (
                json!({"metadata": {"name": "empty"}, "addressType": "IPv6"}),
                row!["empty", "IPv6", "<unset>", "<unset>", "<unknown>"],
            ),
            (
                json!({"metadata": {"name": "ports"}, "addressType": "IPv4",
                    "ports": [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}, {"port": 5}], "endpoints": [{"addresses": ["fd00::1"]}]}),
                row!["ports", "IPv4", "1,2,3 + 2 more...", "fd00::1", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((ENDPOINT_SLICE.cells)(&obj, now()), want, "{obj}");
        }
    }
}
