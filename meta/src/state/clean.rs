//! What ended jobs leave behind: leftovers (directories and objects a clean task could
//! not delete, or a finished copy's staging files to scrub after `SCRUB_DELAY_MS`), and
//! the cleaner job the leader's housekeeping starts when one is due.
//!
//! ```text
//! leftover --due (retry backoff, or scrub delay)--> cleaner job: Clean task per dest
//! Clean --Cleaned--> leftover removed; what failed again stays with a later due time
//! ```
//!
//! A clean item is guarded before it is handed out (`guard_clean_item`): nothing that
//! a live set, piece or copy still uses is ever deleted. Nothing here is refused: the
//! cleaner starts only when something is due.

use backstop_common::layout;
use backstop_common::task::{CleanItem, TaskOutcome, TaskSpec, TenantDest};
use backstop_common::{CopyId, PieceId, RoundId};
use backstop_common::{JobId, TenantId};

use super::dest::{dest_root, same_place};
use super::records::{JobKind, JobStatus, LeftoverRecord, PieceStatus, TaskRecord};
use super::{MetaState, Outcome, Touched};
use crate::command::Reply;

/// How long after a failed-over piece or set is finished its directory is scrubbed
/// (ms): longer than any task lease, so every fenced attempt has stopped writing.
pub const SCRUB_DELAY_MS: u64 = 30_000;

impl MetaState {
    /// Schedules a scrub of a finished directory (a frozen piece, a complete set) that
    /// a failed-over attempt wrote into: a dead attempt — or a zombie that wakes up
    /// after its lease — may have left objects there that no manifest references.
    /// The cleaner deletes them once `SCRUB_DELAY_MS` has passed.
    pub(crate) fn scrub_later(&mut self, dest: TenantDest, dir: String, now: u64) -> Vec<Touched> {
        self.add_leftover(
            dest,
            CleanItem {
                dir,
                index: None,
                keep_referenced: true,
            },
            now + SCRUB_DELAY_MS,
            "scrub after a failover: objects of earlier attempts",
        )
    }

    pub(crate) fn add_leftover(
        &mut self,
        dest: TenantDest,
        item: CleanItem,
        not_before_ms: u64,
        reason: &str,
    ) -> Vec<Touched> {
        // One unclaimed leftover per directory. A full delete is never swallowed by a
        // scrub already pending there: the scrub becomes the delete. A leftover the
        // cleaner is working on right now is not changed; the new one waits beside it.
        if let Some(l) = self.work.leftovers.values_mut().find(|l| {
            l.claimed_by.is_none() && same_place(&l.dest, &dest) && l.item.dir == item.dir
        }) {
            if l.item.keep_referenced && !item.keep_referenced {
                l.item = item;
                l.reason = reason.to_string();
                l.not_before_ms = l.not_before_ms.min(not_before_ms);
                return vec![Touched::Leftover(l.id)];
            }
            return vec![];
        }
        self.work.next_leftover_id += 1;
        let id = self.work.next_leftover_id;
        self.work.leftovers.insert(
            id,
            LeftoverRecord {
                id,
                dest,
                item,
                not_before_ms,
                reason: reason.to_string(),
                claimed_by: None,
            },
        );
        vec![Touched::Leftover(id), Touched::Cluster]
    }

    /// A clean task ended: failed items become leftovers; the job may end.
    pub(crate) fn cleaned(
        &mut self,
        job_id: JobId,
        spec: &TaskSpec,
        failed: &[String],
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = Vec::new();
        let TaskSpec::Clean { dest, items } = spec else {
            return touched;
        };
        let is_cleaner = self
            .work
            .jobs
            .get(&job_id)
            .is_some_and(|j| matches!(j.kind, JobKind::Cleaner));
        let failed_dir = |dir: &str| failed.iter().any(|f| f.starts_with(dir));
        if is_cleaner {
            let done: Vec<u64> = self
                .work
                .leftovers
                .values()
                .filter(|l| l.claimed_by == Some(job_id) && same_place(&l.dest, dest))
                .map(|l| l.id)
                .collect();
            for id in done {
                let keep = self
                    .work
                    .leftovers
                    .get(&id)
                    .is_some_and(|l| failed_dir(&l.item.dir));
                if keep {
                    if let Some(l) = self.work.leftovers.get_mut(&id) {
                        l.claimed_by = None;
                        l.not_before_ms = now + 30_000;
                    }
                } else if let Some(l) = self.work.leftovers.remove(&id) {
                    // Only a delete that really ran makes a set DELETED; a scrub (the
                    // guard may have turned a delete into one) leaves it as it is.
                    let deleted = items
                        .iter()
                        .any(|i| i.dir == l.item.dir && !i.keep_referenced);
                    if deleted {
                        touched.extend(self.set_deleted(&l.dest, &l.item.dir));
                    }
                }
                touched.push(Touched::Leftover(id));
            }
        } else {
            for item in items.iter().filter(|i| failed_dir(&i.dir)) {
                touched.extend(self.add_leftover(
                    dest.clone(),
                    item.clone(),
                    now,
                    "could not be deleted when the job ended",
                ));
            }
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// Whether the cleaner may take a leftover now: unclaimed, past its time, and — for
    /// a scrub of a piece — the piece frozen (an active piece is still being written).
    pub fn leftover_due(&self, l: &LeftoverRecord, now: u64) -> bool {
        if l.claimed_by.is_some() || l.not_before_ms > now {
            return false;
        }
        if !l.item.keep_referenced {
            return true;
        }
        let piece = l
            .item
            .dir
            .strip_prefix("clog/round_")
            .and_then(|r| r.split_once("/piece_"))
            .and_then(|(r, p)| Some((r.parse::<u64>().ok()?, p.parse::<u64>().ok()?)));
        match piece {
            Some((round, piece)) => self
                .work
                .pieces
                .get(&(l.dest.tenant_id, RoundId(round), PieceId(piece), CopyId(0)))
                .is_none_or(|p| p.status == PieceStatus::Frozen),
            None => true,
        }
    }

    /// The one rule every clean obeys: where a complete set or piece (of any copy)
    /// lives in the item's directory at that place, the item only scrubs — what its
    /// manifest references stays, and so does its index entry.
    pub(crate) fn guard_clean_item(&self, dest: &TenantDest, mut item: CleanItem) -> CleanItem {
        if !item.keep_referenced && self.copy_complete(dest, &item.dir) {
            item.keep_referenced = true;
            item.index = None;
        }
        item
    }

    /// Whether a set at `dest` lives in `dir` with `file_status` one of `statuses`.
    pub(super) fn set_at(&self, dest: &TenantDest, dir: &str, statuses: &[&str]) -> bool {
        self.work.sets.values().any(|s| {
            same_place(&s.dest, dest)
                && statuses.contains(&s.file_status.as_str())
                && layout::set_dir(s.backup_set_id, s.backup_type) == dir
        })
    }

    /// Whether a piece of `dest`'s tenant lives in `dir` at `dest`'s root with
    /// `file_status` one of `statuses`.
    pub(super) fn piece_at(&self, dest: &TenantDest, dir: &str, statuses: &[&str]) -> bool {
        let root = dest_root(&dest.uri);
        self.work.pieces.values().any(|p| {
            p.tenant_id == dest.tenant_id
                && statuses.contains(&p.file_status.as_str())
                && layout::piece_dir(p.round_id, p.piece_id) == dir
                && dest_root(&p.backup_dest) == root
        })
    }

    /// A copy is being written into `dir` at `dest`: leftovers there wait.
    pub(super) fn copy_writing(&self, dest: &TenantDest, dir: &str) -> bool {
        self.set_at(dest, dir, &["COPYING"]) || self.piece_at(dest, dir, &["COPYING"])
    }

    /// A complete copy lives in `dir` at `dest`.
    pub(super) fn copy_complete(&self, dest: &TenantDest, dir: &str) -> bool {
        self.set_at(dest, dir, &["AVAILABLE"]) || self.piece_at(dest, dir, &["AVAILABLE"])
    }

    /// The cleaner: a job with one clean task per destination over the leftovers
    /// that are due. Proposed by the leader's scheduler; a no-op when nothing is due
    /// or a cleaner runs.
    pub(crate) fn start_cleaner(&mut self, now: u64) -> Outcome {
        if self
            .work
            .jobs
            .values()
            .any(|j| j.status.is_live() && matches!(j.kind, JobKind::Cleaner))
        {
            return Ok((Reply::Done, vec![]));
        }
        let due: Vec<u64> = self
            .work
            .leftovers
            .values()
            .filter(|l| self.leftover_due(l, now) && !self.copy_writing(&l.dest, &l.item.dir))
            .map(|l| l.id)
            .collect();
        if due.is_empty() {
            return Ok((Reply::Done, vec![]));
        }
        let job_id = self.new_job(TenantId::SYS, JobKind::Cleaner, now);
        if let Some(j) = self.work.jobs.get_mut(&job_id) {
            j.status = JobStatus::Cleaning;
        }
        let mut touched = vec![Touched::Job(job_id)];
        let mut by_dest: Vec<(TenantDest, Vec<CleanItem>)> = Vec::new();
        for id in due {
            let Some(l) = self.work.leftovers.get_mut(&id) else {
                continue;
            };
            l.claimed_by = Some(job_id);
            touched.push(Touched::Leftover(id));
            let (dest, item) = (l.dest.clone(), l.item.clone());
            // What a cancelled copy left may have been copied again, completely, since:
            // then only a scrub (keep what the manifest references), never a delete.
            let item = self.guard_clean_item(&dest, item);
            match by_dest.iter_mut().find(|(d, _)| *d == dest) {
                Some((_, items)) => items.push(item),
                None => by_dest.push((dest, vec![item])),
            }
        }
        for (dest, items) in by_dest {
            let t = dest.tenant_id;
            let id = self.new_task(job_id, t, TaskSpec::Clean { dest, items }, 0, now);
            touched.push(Touched::Task(id));
        }
        Ok((Reply::Job(job_id), touched))
    }

    /// A clean task's report: what it deleted is recorded, what it could not becomes
    /// a leftover for the cleaner (`cleaned`).
    pub(super) fn clean_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (TaskOutcome::Cleaned { failed, .. }, spec @ TaskSpec::Clean { .. }) =
            (outcome, &task.spec)
        else {
            return None;
        };
        self.mark_done(task.task_id, now);
        Some(self.cleaned(task.job_id, spec, failed, now))
    }
}

#[cfg(test)]
#[path = "clean_tests.rs"]
mod tests;
