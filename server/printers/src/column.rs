//! Column definitions shared by the per-kind printers (one meta.k8s.io/v1 TableColumnDefinition).

/// One column of a meta.k8s.io/v1 Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// "string", "integer", "date", "number" or "boolean".
    pub type_: &'static str,
    /// "name" for the column holding the object's name, "" otherwise.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for normal columns, 1 for columns kubectl shows only with `-o wide`.
    pub priority: i32,
}

// Upstream takes these from metav1.ObjectMeta's swagger documentation.
pub(crate) const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

impl Column {
    /// A normal string column.
    pub(crate) const fn string(name: &'static str, description: &'static str) -> Self {
        Column { name, type_: "string", format: "", description, priority: 0 }
    }

    pub(crate) const fn integer(name: &'static str, description: &'static str) -> Self {
        Column { name, type_: "integer", format: "", description, priority: 0 }
    }

    pub(crate) const fn boolean(name: &'static str, description: &'static str) -> Self {
        Column { name, type_: "boolean", format: "", description, priority: 0 }
    }

    /// The same column, shown only with `-o wide`.
    pub(crate) const fn wide(self) -> Self {
        Column { priority: 1, ..self }
    }
}

pub(crate) const NAME: Column =
    Column { name: "Name", type_: "string", format: "name", description: NAME_DESCRIPTION, priority: 0 };
pub(crate) const AGE: Column = Column::string("Age", CREATION_DESCRIPTION);
pub(crate) const CONTAINERS: Column = Column::string("Containers", "Names of each container in the template.").wide();
pub(crate) const IMAGES: Column =
    Column::string("Images", "Images referenced by each container in the template.").wide();
