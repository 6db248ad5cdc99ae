//! Kubernetes patch semantics on `serde_json::Value`, as the API server applies them to
//! PATCH requests:
//!
//! - [`merge_patch`]: `application/merge-patch+json` (RFC 7386);
//! - [`strategic_merge`]: `application/strategic-merge-patch+json`, with upstream's merge keys
//!   and `$patch` / `$retainKeys` / `$setElementOrder` / `$deleteFromPrimitiveList` directives;
//! - [`apply`]: server-side apply and the `metadata.managedFields` bookkeeping of every write.
//!
//! The per-type knowledge both need (which lists merge by which key) lives in [`schema`].

pub mod apply;
mod merge_patch;
pub mod schema;
mod strategic;

pub use merge_patch::merge_patch;
pub use strategic::{strategic_merge, PatchError};

/// Identifies the object's type: group (`""` for core), version, kind, e.g.
/// `("apps", "v1", "Deployment")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeRef<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
}

impl TypeRef<'_> {
    /// The `apiVersion` string: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}
