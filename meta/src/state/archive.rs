//! The log archive (`ALTER SYSTEM ARCHIVELOG` / `NOARCHIVELOG`): one archive job per
//! round, whose single task follows the tenant's log into pieces and commits
//! checkpoints.
//!
//! ```text
//! round:  BEGINNING --first checkpoint--> DOING --NOARCHIVELOG--> STOPPING
//!         STOPPING --task reports ArchiveStopped--> STOP
//!         any --the source broke (Interrupted)--> INTERRUPTED
//! piece:  ACTIVE --checkpoint past its end--> FREEZING --checkpoint--> FROZEN
//!         (the next piece starts ACTIVE when its predecessor freezes; STOP freezes all)
//! ```
//!
//! Refused, with nothing changed: archiving sys (`NotSupported`), a round already
//! running (`BackupInProgress`), `NOARCHIVELOG` for a tenant that never archived
//! (`NotSupported`); a checkpoint for another round, a piece that is not active, a new
//! piece that exists, an unknown round (`EntryNotExist`) or one behind the committed
//! checkpoint (`InvalidArgument`).

use backstop_common::option::DEFAULT_CHECKPOINT_INTERVAL;
use backstop_common::task::{ArchiveProgress, PieceSpec, TaskOutcome, TaskSpec};
use backstop_common::{Code, Scn, TenantId};
use backstop_common::{CopyId, PieceId, RoundId, TaskId, WorkerId};

use super::records::{
    JobKind, PieceRecord, PieceStatus, RoundRecord, RoundStatus, TaskRecord, TaskStatus,
};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// The current (latest) round of a tenant.
    pub fn current_round(&self, tenant: TenantId) -> Option<&RoundRecord> {
        self.work
            .rounds
            .range((tenant, RoundId::MIN)..=(tenant, RoundId::MAX))
            .next_back()
            .map(|(_, r)| r)
    }

    pub(super) fn start_archive(&mut self, tenant: &str, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        if tenant_id == TenantId::SYS {
            return Err(refuse(
                Code::NotSupported,
                "archiving the sys tenant (it has no source)",
            ));
        }
        if let Some(r) = self.current_round(tenant_id)
            && matches!(
                r.status,
                RoundStatus::Beginning | RoundStatus::Doing | RoundStatus::Stopping
            )
        {
            return Err(refuse(
                Code::BackupInProgress,
                format!(
                    "log archive of tenant '{tenant}' is already {}",
                    r.status.as_str()
                ),
            ));
        }
        let (dest, option) = self.tenant_dest(tenant_id)?;
        let source = self
            .tenants
            .get(&tenant_id)
            .map(|t| t.source.clone())
            .unwrap_or_default();
        let round_id = self
            .current_round(tenant_id)
            .map_or(RoundId(1), |r| r.round_id.next());
        let job_id = self.new_job(tenant_id, JobKind::Archive { round_id }, now);
        let switch_ms = option.log_archive_piece_switch_interval.as_millis() as u64;
        let checkpoint_ms = option
            .log_archive_checkpoint_interval
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL)
            .as_millis() as u64;
        let piece_id = if switch_ms == 0 { 0 } else { 1 };
        let piece = PieceSpec {
            piece_id: PieceId(piece_id),
            start_scn: Scn(0),
            create_time_ms: now,
        };
        let spec = TaskSpec::Archive {
            source,
            dest: dest.clone(),
            round_id,
            checkpoint_scn: Scn(0),
            fresh: true,
            piece: piece.clone(),
            freezing: None,
            piece_switch_interval_ms: switch_ms,
            checkpoint_interval_ms: checkpoint_ms,
        };
        let task_id = self.new_task(job_id, tenant_id, spec, 0, now);
        let root = backstop_common::BackupDest::parse(&dest.uri)
            .map(|d| d.root_path())
            .unwrap_or_default();
        self.work.rounds.insert(
            (tenant_id, round_id),
            RoundRecord {
                tenant_id,
                round_id,
                status: RoundStatus::Beginning,
                job_id,
                start_scn: Scn(0),
                checkpoint_scn: Scn(0),
                start_time_ms: now,
                checkpoint_time_ms: 0,
                dest,
                piece_switch_interval_ms: switch_ms,
                checkpoint_interval_ms: checkpoint_ms,
                input_bytes: 0,
                output_bytes: 0,
                lag_ms: 0,
                comment: String::new(),
            },
        );
        self.work.pieces.insert(
            (tenant_id, round_id, PieceId(piece_id), CopyId(0)),
            PieceRecord {
                tenant_id,
                round_id,
                piece_id: PieceId(piece_id),
                copy_id: CopyId(0),
                start_scn: Scn(0),
                checkpoint_scn: Scn(0),
                max_scn: None,
                status: PieceStatus::Active,
                file_status: "AVAILABLE".to_string(),
                create_time_ms: now,
                checkpoint_time_ms: 0,
                backup_dest: root,
            },
        );
        Ok((
            Reply::Job(job_id),
            vec![
                Touched::Job(job_id),
                Touched::Task(task_id),
                Touched::Round(tenant_id, round_id),
                Touched::Piece(tenant_id, round_id, PieceId(piece_id), CopyId(0)),
            ],
        ))
    }

    pub(super) fn stop_archive(&mut self, tenant: &str, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let Some(round) = self.current_round(tenant_id).cloned() else {
            return Err(refuse(
                Code::NotSupported,
                format!("tenant '{tenant}' has never archived"),
            ));
        };
        match round.status {
            RoundStatus::Stop => return Ok((Reply::Done, vec![])),
            RoundStatus::Stopping => return Ok((Reply::Job(round.job_id), vec![])),
            RoundStatus::Interrupted => {
                // Nothing runs; close the round.
                let mut touched = vec![self.finish_job(round.job_id, now)];
                touched.extend(self.close_round(tenant_id, round.round_id, now));
                return Ok((Reply::Job(round.job_id), touched));
            }
            RoundStatus::Beginning | RoundStatus::Doing => {}
        }
        let still_pending = self
            .work
            .tasks
            .values()
            .any(|t| t.job_id == round.job_id && t.status == TaskStatus::Pending);
        let mut touched = vec![Touched::Round(tenant_id, round.round_id)];
        if still_pending {
            // No worker ever ran it (or none runs it now): stop at the last checkpoint.
            for t in self
                .work
                .tasks
                .values_mut()
                .filter(|t| t.job_id == round.job_id && t.status == TaskStatus::Pending)
            {
                t.status = TaskStatus::Canceled;
                touched.push(Touched::Task(t.task_id));
            }
            touched.push(self.finish_job(round.job_id, now));
            touched.extend(self.close_round(tenant_id, round.round_id, now));
        } else if let Some(r) = self.work.rounds.get_mut(&(tenant_id, round.round_id)) {
            r.status = RoundStatus::Stopping;
        }
        Ok((Reply::Job(round.job_id), touched))
    }

    /// Round to STOP; its pieces that are still active become FROZEN at the checkpoint
    /// (their manifest was rewritten at that checkpoint).
    pub(super) fn close_round(
        &mut self,
        tenant_id: TenantId,
        round_id: RoundId,
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = vec![Touched::Round(tenant_id, round_id)];
        if let Some(r) = self.work.rounds.get_mut(&(tenant_id, round_id))
            && r.status != RoundStatus::Interrupted
        {
            r.status = RoundStatus::Stop;
        }
        // Pieces an earlier attempt wrote into were scheduled for a scrub when the later
        // attempt was assigned (`assign`); freezing them here makes the scrub due.
        for p in self
            .work
            .pieces
            .range_mut(
                (tenant_id, round_id, PieceId::MIN, CopyId::MIN)
                    ..=(tenant_id, round_id, PieceId::MAX, CopyId::MAX),
            )
            .map(|(_, p)| p)
            .filter(|p| p.copy_id == CopyId(0) && p.status != PieceStatus::Frozen)
        {
            p.status = PieceStatus::Frozen;
            p.max_scn = Some(p.checkpoint_scn);
            touched.push(Touched::Piece(tenant_id, round_id, p.piece_id, CopyId(0)));
        }
        // A backup waiting for log this round will now never archive fails.
        touched.extend(self.settle_waiting_backups(tenant_id, now));
        touched
    }

    pub(super) fn archive_checkpoint(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        worker_id: WorkerId,
        p: &ArchiveProgress,
        now: u64,
    ) -> Outcome {
        let task = self.current_task(task_id, attempt, worker_id)?;
        let tenant_id = task.tenant_id;
        if !matches!(task.spec, TaskSpec::Archive { round_id, .. } if round_id == p.round_id) {
            return Err(refuse(
                Code::InvalidArgument,
                format!("task {task_id} does not archive round {}", p.round_id),
            ));
        }
        let active = self
            .work
            .pieces
            .get(&(tenant_id, p.round_id, p.piece_id, CopyId(0)))
            .map(|x| x.status);
        if active != Some(PieceStatus::Active) {
            return Err(refuse(
                Code::InvalidArgument,
                format!("piece {} of round {} is not active", p.piece_id, p.round_id),
            ));
        }
        if let Some(next) = &p.switch_to
            && self
                .work
                .pieces
                .contains_key(&(tenant_id, p.round_id, next.piece_id, CopyId(0)))
        {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "piece {} of round {} already exists",
                    next.piece_id, p.round_id
                ),
            ));
        }
        let Some(round) = self.work.rounds.get_mut(&(tenant_id, p.round_id)) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("round {} does not exist", p.round_id),
            ));
        };
        let first = round.checkpoint_time_ms == 0;
        if p.checkpoint_scn < round.checkpoint_scn && !first {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "checkpoint {} is behind the committed {}",
                    p.checkpoint_scn, round.checkpoint_scn
                ),
            ));
        }
        let mut touched = vec![Touched::Round(tenant_id, p.round_id)];
        if first {
            round.start_scn = p.checkpoint_scn;
        }
        if round.status == RoundStatus::Beginning {
            round.status = RoundStatus::Doing;
        }
        round.checkpoint_scn = p.checkpoint_scn;
        round.checkpoint_time_ms = now;
        round.comment.clear();
        round.input_bytes += p.input_bytes;
        round.output_bytes += p.output_bytes;
        round.lag_ms = p.lag_ms;
        let round_start = round.start_scn;
        let round_id = p.round_id;
        let pkey = (tenant_id, round_id, p.piece_id, CopyId(0));
        if let Some(piece) = self.work.pieces.get_mut(&pkey) {
            if first {
                piece.start_scn = round_start;
            }
            piece.checkpoint_scn = p.checkpoint_scn;
            piece.checkpoint_time_ms = now;
            touched.push(Touched::Piece(tenant_id, round_id, p.piece_id, CopyId(0)));
        }
        if let Some(next) = &p.switch_to {
            if let Some(piece) = self.work.pieces.get_mut(&pkey) {
                piece.status = PieceStatus::Freezing;
                piece.max_scn = Some(p.checkpoint_scn);
            }
            let root = self
                .work
                .pieces
                .get(&pkey)
                .map(|x| x.backup_dest.clone())
                .unwrap_or_default();
            self.work.pieces.insert(
                (tenant_id, round_id, next.piece_id, CopyId(0)),
                PieceRecord {
                    tenant_id,
                    round_id,
                    piece_id: next.piece_id,
                    copy_id: CopyId(0),
                    start_scn: p.checkpoint_scn,
                    checkpoint_scn: p.checkpoint_scn,
                    max_scn: None,
                    status: PieceStatus::Active,
                    file_status: "AVAILABLE".to_string(),
                    create_time_ms: now,
                    checkpoint_time_ms: now,
                    backup_dest: root,
                },
            );
            touched.push(Touched::Piece(
                tenant_id,
                round_id,
                next.piece_id,
                CopyId(0),
            ));
        }
        if let Some(frozen) = p.frozen_piece
            && let Some(piece) = self
                .work
                .pieces
                .get_mut(&(tenant_id, round_id, frozen, CopyId(0)))
            && piece.status == PieceStatus::Freezing
        {
            piece.status = PieceStatus::Frozen;
            touched.push(Touched::Piece(tenant_id, round_id, frozen, CopyId(0)));
        }
        if let Some(t) = self.work.tasks.get_mut(&task_id) {
            t.bytes_done += p.input_bytes;
            t.update_time_ms = now;
            touched.push(Touched::Task(task_id));
        }
        touched.extend(self.settle_waiting_backups(tenant_id, now));
        Ok((Reply::Done, touched))
    }

    /// An archive task's report: `ArchiveStopped` after `NOARCHIVELOG` (or a stop)
    /// closes the round at the reported checkpoint.
    pub(super) fn archive_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (TaskOutcome::ArchiveStopped { checkpoint_scn }, TaskSpec::Archive { round_id, .. }) =
            (outcome, &task.spec)
        else {
            return None;
        };
        let tenant_id = task.tenant_id;
        self.mark_done(task.task_id, now);
        if let Some(r) = self.work.rounds.get_mut(&(tenant_id, *round_id)) {
            r.checkpoint_scn = (*checkpoint_scn).max(r.checkpoint_scn);
        }
        let mut touched = vec![self.finish_job(task.job_id, now)];
        touched.extend(self.close_round(tenant_id, *round_id, now));
        Some(touched)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
