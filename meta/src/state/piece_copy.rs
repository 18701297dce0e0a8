//! Backup-of-backup of archived log by piece (`ALTER SYSTEM BACKUP BACKUPPIECE …`): a job
//! copies the selected pieces, one task each, oldest first. A job that would overlap a
//! running one waits in `SCHEDULE` and is launched when that ends.
//!
//! ```text
//! job SCHEDULE --the running piece job ended--> DOING
//! job DOING: CopyPiece × n --last PieceCopied--> FINISHED
//! copy piece ACTIVE (WITH ACTIVE, while its source is open) --frozen copied--> FROZEN
//! ```
//!
//! Refused, with nothing changed: `WITH ACTIVE` with a piece id or `NOT BACKED UP`, a
//! destination a continuous archive copy follows, or one in round mode (`NotSupported`);
//! an unknown piece (`BackupBackupCanNotStart`).

use backstop_common::layout;
use backstop_common::task::{TaskOutcome, TaskSpec, TenantDest};
use backstop_common::{Code, JobId, Scn, TenantId};
use backstop_common::{CopyId, PieceId, RoundId};

use super::catalog::CopySelection;
use super::dest::dest_root;
use super::records::{CopyArchiveStatus, JobKind, JobStatus, PieceRecord, PieceStatus, TaskRecord};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// `ALTER SYSTEM BACKUP BACKUPPIECE …` (§1.6 b).
    pub(crate) fn start_piece_copy(
        &mut self,
        sel: &CopySelection,
        with_active: bool,
        now: u64,
    ) -> Outcome {
        if with_active && (sel.id.is_some() || sel.max_backup_times.is_some()) {
            return Err(refuse(
                Code::NotSupported,
                "WITH ACTIVE with a piece id or NOT BACKED UP n TIMES is not supported (use BACKUP BACKUPPIECE ALL WITH ACTIVE)",
            ));
        }
        let (uri, level) = self.copy_dest(sel)?;
        let root = dest_root(&uri);
        let copy_id = self.copy_id_for(level, &root)?;
        // Round mode and piece mode exclude each other per destination (Backstop
        // checks the destination; OceanBase refuses cluster-wide).
        if self
            .work
            .archive_copies
            .values()
            .any(|c| dest_root(&c.dest.uri) == root && c.status == CopyArchiveStatus::Doing)
        {
            return Err(refuse(
                Code::NotSupported,
                "backup backuppiece in auto mode is not supported (STOP BACKUP ARCHIVELOG first, or give another BACKUP_BACKUP_DEST)",
            ));
        }
        if self
            .work
            .archive_copies
            .values()
            .any(|c| dest_root(&c.dest.uri) == root)
        {
            return Err(refuse(
                Code::NotSupported,
                "backup backup piece in round mode directory is not supported (this destination holds a continuous archive copy)",
            ));
        }
        let tenants = self.user_tenants(&sel.tenants)?;
        let mut selected: Vec<(TenantId, RoundId, PieceId)> = Vec::new();
        for t in &tenants {
            for p in self
                .work
                .pieces
                .values()
                .filter(|p| p.tenant_id == *t && p.copy_id == CopyId(0))
            {
                let eligible = match p.status {
                    PieceStatus::Frozen => true,
                    PieceStatus::Active | PieceStatus::Freezing => with_active,
                };
                if !eligible || sel.id.is_some_and(|id| PieceId(id) != p.piece_id) {
                    continue;
                }
                if p.checkpoint_time_ms == 0 {
                    continue; // nothing archived in it yet
                }
                let existing =
                    self.work
                        .pieces
                        .get(&(p.tenant_id, p.round_id, p.piece_id, copy_id));
                let done = existing.is_some_and(|c| {
                    c.file_status == "AVAILABLE"
                        && (c.status == PieceStatus::Frozen || c.checkpoint_scn >= p.checkpoint_scn)
                });
                if done {
                    continue;
                }
                if let Some(n) = sel.max_backup_times {
                    let copies = self
                        .work
                        .pieces
                        .values()
                        .filter(|c| {
                            c.tenant_id == p.tenant_id
                                && c.round_id == p.round_id
                                && c.piece_id == p.piece_id
                                && c.copy_id > CopyId(0)
                                && c.file_status == "AVAILABLE"
                                && c.status == PieceStatus::Frozen
                        })
                        .count();
                    if copies >= n as usize {
                        continue;
                    }
                }
                selected.push((p.tenant_id, p.round_id, p.piece_id));
            }
        }
        if let Some(id) = sel.id
            && selected.is_empty()
            && !self.work.pieces.values().any(|p| {
                tenants.contains(&p.tenant_id)
                    && p.copy_id == CopyId(0)
                    && p.piece_id == PieceId(id)
            })
        {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                format!("backup piece {id} does not exist"),
            ));
        }
        let tenant_id = match sel.tenants.first() {
            Some(n) => self.tenant_id(n)?,
            None => TenantId::SYS,
        };
        let others_live = self
            .work
            .jobs
            .values()
            .any(|j| j.status.is_live() && matches!(j.kind, JobKind::PieceCopy { .. }));
        let job_id = self.new_job(
            tenant_id,
            JobKind::PieceCopy {
                backup_piece_id: sel.id.unwrap_or(0),
                with_active,
                max_backup_times: sel.max_backup_times,
                copy_id,
                dest: uri,
                pieces: selected.clone(),
            },
            now,
        );
        let mut touched = vec![Touched::Job(job_id)];
        if others_live {
            if let Some(j) = self.work.jobs.get_mut(&job_id) {
                j.status = JobStatus::Schedule;
            }
            return Ok((Reply::Job(job_id), touched));
        }
        touched.extend(self.launch_piece_job(job_id, now));
        Ok((Reply::Job(job_id), touched))
    }

    /// SCHEDULE → DOING: one copy task per selected piece.
    pub(super) fn launch_piece_job(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return vec![];
        };
        job.status = JobStatus::Doing;
        let JobKind::PieceCopy {
            copy_id,
            dest,
            pieces,
            ..
        } = job.kind.clone()
        else {
            return vec![];
        };
        let mut touched = vec![Touched::Job(job_id)];
        for (t, round_id, piece_id) in pieces {
            let Some(round) = self.work.rounds.get(&(t, round_id)) else {
                continue;
            };
            let Some(src_piece) = self
                .work
                .pieces
                .get(&(t, round_id, piece_id, CopyId(0)))
                .cloned()
            else {
                continue;
            };
            let src = round.dest.clone();
            let dst = self.copy_tenant_dest(&src, &dest);
            let spec = TaskSpec::CopyPiece {
                src,
                dst,
                round_id,
                piece_id,
                copy_id,
            };
            let id = self.new_task(job_id, t, spec, 0, now);
            touched.push(Touched::Task(id));
            let key = (t, round_id, piece_id, copy_id);
            match self.work.pieces.get_mut(&key) {
                // An earlier partial copy of an active piece stays usable up to its
                // checkpoint while this one runs.
                Some(p) if p.file_status == "AVAILABLE" => {}
                _ => {
                    self.work.pieces.insert(
                        key,
                        PieceRecord {
                            copy_id,
                            file_status: "COPYING".to_string(),
                            checkpoint_scn: src_piece.start_scn,
                            checkpoint_time_ms: 0,
                            create_time_ms: now,
                            backup_dest: dest_root(&dest),
                            ..src_piece
                        },
                    );
                    touched.push(Touched::Piece(t, round_id, piece_id, copy_id));
                }
            }
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// When a piece job ends: the smallest scheduled one starts (`docs/OPERATIONS.md`).
    pub(super) fn promote_piece_job(&mut self, now: u64) -> Vec<Touched> {
        if self.work.jobs.values().any(|j| {
            matches!(j.kind, JobKind::PieceCopy { .. })
                && j.status.is_live()
                && j.status != JobStatus::Schedule
        }) {
            return vec![];
        }
        let next = self
            .work
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Schedule)
            .filter_map(|j| match &j.kind {
                JobKind::PieceCopy { pieces, .. } => Some((pieces.len(), j.job_id)),
                _ => None,
            })
            .min();
        match next {
            Some((_, id)) => self.launch_piece_job(id, now),
            None => vec![],
        }
    }

    /// A piece copy task finished.
    pub(crate) fn piece_copied(
        &mut self,
        task_tenant: TenantId,
        spec: &TaskSpec,
        start_scn: Scn,
        checkpoint_scn: Scn,
        frozen: bool,
        now: u64,
    ) -> Vec<Touched> {
        let TaskSpec::CopyPiece {
            round_id,
            piece_id,
            copy_id,
            dst,
            ..
        } = spec
        else {
            return vec![];
        };
        self.upsert_piece_copy(
            task_tenant,
            *round_id,
            *piece_id,
            *copy_id,
            dst,
            start_scn,
            checkpoint_scn,
            frozen,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn upsert_piece_copy(
        &mut self,
        tenant: TenantId,
        round_id: RoundId,
        piece_id: PieceId,
        copy_id: CopyId,
        dst: &TenantDest,
        start_scn: Scn,
        checkpoint_scn: Scn,
        frozen: bool,
        now: u64,
    ) -> Vec<Touched> {
        let key = (tenant, round_id, piece_id, copy_id);
        let src = self
            .work
            .pieces
            .get(&(tenant, round_id, piece_id, CopyId(0)))
            .cloned();
        let record = self.work.pieces.entry(key).or_insert_with(|| PieceRecord {
            tenant_id: tenant,
            round_id,
            piece_id,
            copy_id,
            start_scn,
            checkpoint_scn,
            max_scn: None,
            status: PieceStatus::Active,
            file_status: "COPYING".to_string(),
            create_time_ms: src.as_ref().map_or(now, |p| p.create_time_ms),
            checkpoint_time_ms: now,
            backup_dest: dest_root(&dst.uri),
        });
        record.start_scn = start_scn;
        record.checkpoint_scn = record.checkpoint_scn.max(checkpoint_scn);
        record.checkpoint_time_ms = now;
        record.file_status = "AVAILABLE".to_string();
        if frozen {
            record.status = PieceStatus::Frozen;
            record.max_scn = Some(checkpoint_scn);
        } else {
            record.status = PieceStatus::Active;
        }
        vec![Touched::Piece(tenant, round_id, piece_id, copy_id)]
    }

    /// A piece copy task's report: the copy's range is recorded (`piece_copied`); an
    /// earlier attempt's leftovers go when the cleaner scrubs the finished copy.
    pub(super) fn piece_copy_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (
            TaskOutcome::PieceCopied {
                start_scn,
                checkpoint_scn,
                frozen,
                ..
            },
            spec @ TaskSpec::CopyPiece {
                dst,
                round_id,
                piece_id,
                ..
            },
        ) = (outcome, &task.spec)
        else {
            return None;
        };
        self.mark_done(task.task_id, now);
        let mut touched = self.piece_copied(
            task.tenant_id,
            spec,
            *start_scn,
            *checkpoint_scn,
            *frozen,
            now,
        );
        if task.attempt > 1 {
            touched.extend(self.scrub_later(
                dst.clone(),
                layout::piece_dir(*round_id, *piece_id),
                now,
            ));
        }
        Some(touched)
    }
}
