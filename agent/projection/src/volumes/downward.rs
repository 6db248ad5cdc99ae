//! downwardAPI items (`downwardapi.CollectData`): pod metadata fields and container resources as
//! files; every item is tried and the failures are reported together.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::DownwardAPIVolumeFile;

use super::{mode_bits, File, VolumeError};
use crate::fieldpath;
use crate::PodContext;

pub(super) fn collect(
    ctx: &PodContext,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<BTreeMap<String, File>, VolumeError> {
    let mut files = BTreeMap::new();
    let mut errors = Vec::new();
    for item in items {
        match value(ctx, item) {
            Ok(data) => {
                let mode = mode_bits(item.mode.unwrap_or(default_mode));
                files.insert(item.path.clone(), File { data: data.into_bytes(), mode });
            }
            Err(e) => errors.push(VolumeError::Field(e)),
        }
    }
    match VolumeError::aggregate(errors) {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

fn value(ctx: &PodContext, item: &DownwardAPIVolumeFile) -> Result<String, fieldpath::FieldPathError> {
    if let Some(field) = &item.field_ref {
        // Volumes read the object's fields only; the kubelet-provided ones are env-only.
        return fieldpath::metadata_field(ctx.pod, &field.field_path);
    }
    if let Some(res) = &item.resource_field_ref {
        let container = fieldpath::container_by_name(ctx.pod, res.container_name.as_deref().unwrap_or_default())?;
        return fieldpath::resource_field(ctx, container, &res.resource, res.divisor.as_ref());
    }
    Ok(String::new())
}
