//! Image garbage collection under disk pressure, with the kubelet's defaults: when the filesystem
//! holding the data dir is 85 % full, images no pod on this node uses are removed, least recently
//! used first, until usage would be back at 80 %.

use std::sync::Arc;
use std::time::Duration;

use edge_images::gc::{collect, disk_usage, GcOptions};
use edge_images::ContentStore;
use tokio_util::sync::CancellationToken;

const HIGH: f64 = 0.85;
const LOW: f64 = 0.80;
const PERIOD: Duration = Duration::from_secs(300);

/// How many bytes of images to free so that a filesystem of `total` bytes with `used` bytes used
/// drops to the low threshold; None below the high threshold.
pub fn bytes_to_free(total: u64, used: u64) -> Option<u64> {
    if total == 0 || (used as f64) < HIGH * total as f64 {
        return None;
    }
    Some(used.saturating_sub((LOW * total as f64) as u64))
}

pub async fn run(
    client: kube::Client,
    node: String,
    store: Arc<ContentStore>,
    data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
        let Some((total, available)) = crate::node::facts::filesystem_bytes(&data_dir) else { continue };
        let used = total.saturating_sub(available);
        let Some(free) = bytes_to_free(total, used) else { continue };
        let in_use: Vec<String> = match crate::pods::list(&client, &node).await {
            Ok(pods) => pods
                .iter()
                .filter_map(|p| p.spec.as_ref())
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .filter_map(|c| c.image.clone())
                .map(|i| edge_images::Reference::parse(&i).map(|r| r.to_string()).unwrap_or(i))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing pods for image GC");
                continue;
            }
        };
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let usage = disk_usage(&store)?;
            collect(
                &store,
                &in_use,
                &GcOptions { target_bytes: Some(usage.saturating_sub(free)), min_age: Duration::from_secs(600) },
            )
        })
        .await;
        match result {
            Ok(Ok(r)) => {
                tracing::info!(removed = ?r.removed_images, before = r.usage_before, after = r.usage_after, "image garbage collection")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection task"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(bytes_to_free(100, 50), None);
        assert_eq!(bytes_to_free(100, 84), None);
        assert_eq!(bytes_to_free(100, 90), Some(10));
        assert_eq!(bytes_to_free(0, 0), None);
    }
}
