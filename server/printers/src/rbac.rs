//! The RoleBinding / ClusterRoleBinding printer. Role and ClusterRole have no printer upstream and
//! fall back to the default table.

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, list_at, name, str_at, string};
use crate::Printer;

pub(crate) const BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Role",
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
        ),
        AGE,
        Column::string("Users", "Users in the roleBinding").wide(),
        Column::string("Groups", "Groups in the roleBinding").wide(),
        Column::string("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
    ],
    cells: |binding, now| {
        let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
        for subject in list_at(binding, &["subjects"]) {
            let subject_name = str_at(subject, &["name"]);
            match str_at(subject, &["kind"]) {
                "ServiceAccount" => {
                    service_accounts.push(format!("{}/{subject_name}", str_at(subject, &["namespace"])))
                }
                "User" => users.push(subject_name.to_string()),
                "Group" => groups.push(subject_name.to_string()),
                // Upstream collects other kinds separately and does not print them.
                _ => {}
            }
        }
        let role = format!("{}/{}", str_at(binding, &["roleRef", "kind"]), str_at(binding, &["roleRef", "name"]));
        vec![
            name(binding),
            string(role),
            age(binding, now),
            string(users.join(", ")),
            string(groups.join(", ")),
            string(service_accounts.join(", ")),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::{json, Value};

    #[test]
    fn bindings() {
        let cases: Vec<(Value, Vec<Value>)> = vec![
            (
                json!({"metadata": {"name": "admins", "creationTimestamp": ago(86400 * 400)},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                    "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "system:masters"},
                                 {"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
                                 {"kind": "Robot", "name": "r2"}]}),
                row!["admins", "ClusterRole/cluster-admin", "400d", "alice, bob", "system:masters", "ci/deployer"],
            ),
            (
                json!({"metadata": {"name": "reader"}, "roleRef": {"kind": "Role", "name": "pod-reader"}}),
                row!["reader", "Role/pod-reader", "<unknown>", "", "", ""],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!((BINDING.cells)(&obj, now()), want, "{obj}");
        }
    }
}
