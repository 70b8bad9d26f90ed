//! `--retention-days`: a sweep, at start and then every hour, that removes the
//! transcriptions (their paired files) and the complete batches (their rows
//! and files) older than that, so that people's recordings are not kept for ever.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Batches, Deleted};
use crate::telemetry::metrics;

/// How often the sweep runs after the first.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Sweeps every [`SWEEP_INTERVAL`] until `shutdown`, removing what is older than `keep`.
pub(super) async fn run(batches: Arc<Batches>, keep: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
        match sweep(&batches, keep).await {
            Ok((0, 0)) => {}
            Ok((transcriptions, batches)) => {
                tracing::info!(transcriptions, batches, "removed what is older than --retention-days")
            }
            Err(e) => tracing::error!(error = %e, "the retention sweep failed; it runs again within the hour"),
        }
    }
}

/// Removes the complete batches, then the other transcriptions, created more
/// than `keep` ago; returns how many of each. A file of a batch still running
/// is left to its batch.
async fn sweep(batches: &Batches, keep: Duration) -> anyhow::Result<(usize, usize)> {
    let cutoff = chrono::Utc::now() - keep;
    let mut removed_batches = 0;
    for batch_id in batches.store.complete_before(cutoff).await? {
        if batches.delete(batch_id).await? == Deleted::Done {
            metrics::record_retention_removal("batch");
            removed_batches += 1;
        }
    }
    let files = batches.history.files();
    let mut old = Vec::new();
    for id in files.record_ids().await? {
        if files
            .load_record(&id)
            .await?
            .is_some_and(|record| record.created_at < cutoff)
        {
            old.push(id);
        }
    }
    let mut removed = 0;
    for id in old {
        if batches.store.file(id).await?.is_some() {
            continue;
        }
        if batches.history.delete(id).await? {
            metrics::record_retention_removal("transcription");
            removed += 1;
        }
    }
    Ok((removed, removed_batches))
}
