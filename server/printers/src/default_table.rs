//! Upstream's default table convertor, used for kinds without a printer (Role, ClusterRole,
//! custom kinds): NAME and "Created At" as an RFC 3339 UTC date.

use chrono::{DateTime, Utc};

use crate::column::{Column, CREATION_DESCRIPTION, NAME};
use crate::fields::{name, string, time_at};
use crate::Printer;

pub(crate) const PRINTER: Printer = Printer {
    columns: &[
        NAME,
        Column { name: "Created At", type_: "date", format: "", description: CREATION_DESCRIPTION, priority: 0 },
    ],
    cells: |obj, _now| {
        // Go formats an unset time as its zero value rather than leaving the cell empty.
        let created = time_at(obj, &["metadata", "creationTimestamp"]).map_or_else(
            || "0001-01-01T00:00:00Z".to_string(),
            |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
        vec![name(obj), string(created)]
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::test_support::now;
    use serde_json::json;

    #[test]
    fn name_and_created_at() {
        let role = json!({"metadata": {"name": "pod-reader", "creationTimestamp": "2024-04-30T08:15:00+02:00"}});
        assert_eq!((PRINTER.cells)(&role, now()), row!["pod-reader", "2024-04-30T06:15:00Z"]);
        assert_eq!((PRINTER.cells)(&json!({"metadata": {"name": "x"}}), now()), row!["x", "0001-01-01T00:00:00Z"]);
    }
}
