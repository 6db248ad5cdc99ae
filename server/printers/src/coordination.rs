//! The coordination.k8s.io Lease printer (HOLDER AGE).

use crate::column::{Column, AGE, NAME};
use crate::fields::{age, name, str_at, string};
use crate::Printer;

pub(crate) const LEASE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Holder", "holderIdentity contains the identity of the holder of a current lease."),
        AGE,
    ],
    cells: |lease, now| vec![name(lease), string(str_at(lease, &["spec", "holderIdentity"])), age(lease, now)],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::{ago, now};
    use serde_json::json;

    #[test]
    fn leases() {
        let held = json!({"metadata": {"name": "edge-1", "creationTimestamp": ago(7 * 3600 + 59 * 60)},
                          "spec": {"holderIdentity": "edge-1", "leaseDurationSeconds": 40, "renewTime": ago(3)}});
        assert_eq!((LEASE.cells)(&held, now()), row!["edge-1", "edge-1", "7h59m"]);
        assert_eq!(
            (LEASE.cells)(&json!({"metadata": {"name": "free"}, "spec": {}}), now()),
            row!["free", "", "<unknown>"]
        );
    }
}
