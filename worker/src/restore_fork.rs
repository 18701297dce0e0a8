//! Restore through a timeline fork (PostgreSQL): a point of incarnation N, taken
//! before N has a set that reaches it, restored from a set of incarnation N-1 whose
//! timeline N branched from.

use backstop_common::BackupSetId;
use backstop_common::layout;
use backstop_common::task::TenantDest;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::dest_catalog::{complete_sets, find_tenant, piece_manifests};
use crate::error::Result;
use crate::manifest::{self, PieceManifest};
use crate::restore_plan::{self, Candidate, Target};
use crate::storage::TenantStore;

/// A restore onto incarnation N from a set of incarnation N-1 (PostgreSQL).
pub(crate) struct AcrossFork {
    /// Incarnation N-1 at the destination, its store and pieces.
    pub(crate) dest: TenantDest,
    pub(crate) store: TenantStore,
    pub(crate) pieces: Vec<PieceManifest>,
    /// Its sets that restore to `at`, each with the target on incarnation N.
    pub(crate) candidates: Vec<Candidate>,
    /// Incarnation N's system, timeline and history.
    pub(crate) timeline: crate::pg::PgTimeline,
    /// Where incarnation N's archive begins: the segment holding the switchpoint.
    pub(crate) at: u64,
}

/// When incarnation `dest` (N > 1, a PostgreSQL tenant) has no set that reaches
/// `target`: the sets of incarnation N-1 that restore to the start of the segment
/// where N's timeline began, and the target on N (at or after the switchpoint,
/// within N's archive from that segment). `None` when there is no such way.
///
/// A time target is resolved later, in the staged WAL ([`crate::pg_restore`]).
///
/// Errors: `Storage` and `Corrupt` reading the destination.
pub(crate) async fn across_fork(
    dest: &TenantDest,
    store: &TenantStore,
    pieces: &[PieceManifest],
    target: Target,
    backup_set: Option<BackupSetId>,
    cancel: &CancellationToken,
) -> Result<Option<AcrossFork>> {
    if dest.incarnation <= 1 || !store.exists(layout::PG_TIMELINE).await? {
        return Ok(None);
    }
    let timeline: crate::pg::PgTimeline = manifest::from_json(
        &store.get(layout::PG_TIMELINE, cancel).await?,
        layout::PG_TIMELINE,
    )?;
    let Some((parent, switch)) = backstop_pg::wal::fork_point(&timeline.history) else {
        return Ok(None);
    };
    let runs = restore_plan::archived_runs(pieces);
    let Some(&(at, end)) = runs.iter().find(|(s, e)| *s <= switch && switch <= *e) else {
        return Ok(None);
    };
    let until = match target {
        Target::Latest => end,
        Target::Scn(x) if switch <= x && x <= end => x,
        Target::Scn(_) => return Ok(None),
        // The time is found in the staged WAL (PostgreSQL's commit timestamps), on
        // N's timeline; one before the switchpoint is refused there.
        Target::Time(_) => end,
    };
    let Ok(prev) = find_tenant(
        &dest.uri,
        &dest.tenant_id.0.to_string(),
        Some(dest.incarnation - 1),
    )
    .await
    else {
        return Ok(None);
    };
    let prev_store = TenantStore::open(&prev)?;
    let prev_pieces = piece_manifests(&prev_store, cancel).await?;
    let prev_sets = complete_sets(&prev_store, cancel).await?;
    let Ok(candidates) = restore_plan::plan(&prev_sets, &prev_pieces, Target::Scn(at), backup_set)
    else {
        return Ok(None);
    };
    info!(
        tenant = %dest.tenant_name,
        parent_timeline = parent,
        switchpoint = %backstop_pg::Lsn(switch),
        "no set of this incarnation reaches the target: restoring a set of the incarnation before, through the fork"
    );
    Ok(Some(AcrossFork {
        dest: prev,
        store: prev_store,
        pieces: prev_pieces,
        candidates: candidates
            .into_iter()
            .map(|c| Candidate {
                until_scn: until,
                ..c
            })
            .collect(),
        timeline,
        at,
    }))
}
