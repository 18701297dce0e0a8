//! The invariants a chaos run checks after every fault is healed, one file each. Each
//! returns a [`Verdict`]: held, or why not.

use crate::scenario::report::Verdict;

mod acknowledged_work_kept;
mod archive_continuity;
mod cancels_within_bound;
mod catalog_equals_storage;
mod copies_validate_and_restore;
mod jobs_settle;
mod leader_times_monotonic;
mod postgres_restores_exact;
mod replicas_agree;
mod storage;

pub(crate) use acknowledged_work_kept::acknowledged_work_kept;
pub(crate) use archive_continuity::archive_continuity;
pub(crate) use cancels_within_bound::cancels_within_bound;
pub(crate) use catalog_equals_storage::catalog_equals_storage;
pub(crate) use copies_validate_and_restore::copies_validate_and_restore;
pub(crate) use jobs_settle::jobs_settle;
pub(crate) use leader_times_monotonic::leader_times_monotonic;
pub(crate) use postgres_restores_exact::postgres_restores_exact;
pub(crate) use replicas_agree::replicas_agree;

pub(crate) const FOLLOWERS: [&str; 2] = ["ARCHIVE", "BACKUP_ARCHIVELOG"];

pub(crate) fn verdict(invariant: &'static str, result: anyhow::Result<String>) -> Verdict {
    match result {
        Ok(detail) => Verdict {
            invariant,
            ok: true,
            detail,
        },
        Err(e) => Verdict {
            invariant,
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}
