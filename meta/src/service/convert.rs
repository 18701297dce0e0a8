//! Catalog records to protobuf messages. Destinations are shown without secrets.

use backstop_common::BackupDest;
use backstop_common::CopyId;
use backstop_proto::meta as pb;

use crate::state::{
    BackupSetRecord, JobKind, JobRecord, MetaState, PieceRecord, RoundRecord, TaskRecord,
    WorkerRecord,
};

/// A destination URI as users may see it.
pub fn shown_dest(uri: &str) -> String {
    BackupDest::parse(uri).map_or_else(|_| backstop_common::dest::redact(uri), |d| d.to_string())
}

/// Round to message.
pub fn round(r: &RoundRecord) -> pb::ArchiveRound {
    pb::ArchiveRound {
        tenant_id: r.tenant_id.0,
        round_id: r.round_id.0,
        status: r.status.as_str().to_string(),
        start_scn: r.start_scn.0,
        checkpoint_scn: r.checkpoint_scn.0,
        start_time_ms: r.start_time_ms,
        checkpoint_time_ms: r.checkpoint_time_ms,
        input_bytes: r.input_bytes,
        output_bytes: r.output_bytes,
        lag_ms: r.lag_ms,
        backup_dest: shown_dest(&r.dest.uri),
        comment: r.comment.clone(),
        job_id: r.job_id.0,
        incarnation: r.dest.incarnation,
    }
}

/// Piece to message; `incarnation` is its round's.
pub fn piece((p, incarnation): &(PieceRecord, u64)) -> pb::Piece {
    pb::Piece {
        tenant_id: p.tenant_id.0,
        round_id: p.round_id.0,
        backup_piece_id: p.piece_id.0,
        copy_id: p.copy_id.0,
        start_scn: p.start_scn.0,
        checkpoint_scn: p.checkpoint_scn.0,
        max_scn: p.max_scn.map(|s| s.0),
        status: p.status.as_str().to_string(),
        file_status: p.file_status.clone(),
        create_time_ms: p.create_time_ms,
        checkpoint_time_ms: p.checkpoint_time_ms,
        backup_dest: p.backup_dest.clone(),
        incarnation: *incarnation,
    }
}

/// Set to message.
pub fn set(s: &BackupSetRecord) -> pb::BackupSet {
    pb::BackupSet {
        tenant_id: s.tenant_id.0,
        backup_set_id: s.backup_set_id.0,
        copy_id: s.copy_id.0,
        backup_type: s.backup_type.letter().to_string(),
        base_set_id: s.base_set_id.map(|v| v.0),
        status: s.status.as_str().to_string(),
        file_status: s.file_status.clone(),
        start_replay_scn: s.start_replay_scn.0,
        min_restore_scn: s.min_restore_scn.0,
        input_bytes: s.input_bytes,
        output_bytes: s.output_bytes,
        file_count: s.file_count,
        start_time_ms: s.start_time_ms,
        end_time_ms: s.end_time_ms,
        backup_dest: shown_dest(&s.dest.uri),
        comment: s.comment.clone(),
        job_id: s.job_id.0,
        incarnation: s.dest.incarnation,
    }
}

/// Job to message, with progress summed over its tasks.
pub fn job(state: &MetaState, j: &JobRecord) -> pb::Job {
    let (done, total) = state
        .work
        .tasks
        .values()
        .filter(|t| t.job_id == j.job_id)
        .fold((0, 0), |(d, t), task| {
            (d + task.bytes_done, t + task.bytes_total)
        });
    let (job_type, backup_set_id, round_id) = match &j.kind {
        JobKind::Archive { round_id } => ("ARCHIVE", 0, round_id.0),
        JobKind::Backup { backup_set_id, .. } => ("BACKUP", backup_set_id.0, 0),
        JobKind::Validate { backup_set_id } => ("VALIDATE", backup_set_id.0, 0),
        JobKind::Restore { .. } => ("RESTORE", 0, 0),
        JobKind::SetCopy { backup_set_id, .. } => ("BACKUP_BACKUPSET", backup_set_id.0, 0),
        JobKind::PieceCopy { .. } => ("BACKUP_BACKUPPIECE", 0, 0),
        JobKind::ArchiveCopy { .. } => ("BACKUP_ARCHIVELOG", 0, 0),
        JobKind::Cleaner => ("CLEAN", 0, 0),
    };
    let times = |t: &Option<u64>| t.map_or(-1, |n| n as i64);
    let (copy_id, backup_dest, max_backup_times, copy_type, backup_piece_id) = match &j.kind {
        JobKind::SetCopy {
            copy_id,
            dest,
            max_backup_times,
            all,
            ..
        } => (
            *copy_id,
            shown_dest(dest),
            times(max_backup_times),
            if *all { "A" } else { "S" },
            0,
        ),
        JobKind::PieceCopy {
            copy_id,
            dest,
            max_backup_times,
            with_active,
            backup_piece_id,
            ..
        } => (
            *copy_id,
            shown_dest(dest),
            times(max_backup_times),
            if *with_active { "1" } else { "0" },
            *backup_piece_id,
        ),
        JobKind::ArchiveCopy { copy_id } => (*copy_id, String::new(), -1, "", 0),
        _ => (CopyId(0), String::new(), -1, "", 0),
    };
    let incarnation = match &j.kind {
        JobKind::Archive { round_id } => state
            .work
            .rounds
            .get(&(j.tenant_id, *round_id))
            .map(|r| r.dest.incarnation),
        JobKind::Backup { backup_set_id, .. }
        | JobKind::Validate { backup_set_id }
        | JobKind::SetCopy { backup_set_id, .. } => state
            .work
            .sets
            .get(&(j.tenant_id, *backup_set_id, CopyId(0)))
            .map(|s| s.dest.incarnation),
        _ => None,
    }
    .or_else(|| state.tenants.get(&j.tenant_id).map(|t| t.incarnation))
    .unwrap_or(1);
    pb::Job {
        incarnation,
        copy_id: copy_id.0,
        backup_dest,
        max_backup_times,
        copy_type: copy_type.to_string(),
        backup_piece_id,
        job_id: j.job_id.0,
        tenant_id: j.tenant_id.0,
        job_type: job_type.to_string(),
        status: j.status.as_str().to_string(),
        result: j.result.clone().unwrap_or_default(),
        comment: j.comment.clone(),
        start_time_ms: j.start_time_ms,
        end_time_ms: j.end_time_ms,
        backup_set_id,
        round_id,
        bytes_done: done,
        bytes_total: total,
    }
}

/// Task to message.
pub fn task(state: &MetaState, t: &TaskRecord) -> pb::Task {
    use backstop_common::task::TaskSpec;
    let (backup_set_id, copy_id, round_id, backup_piece_id, backup_dest) = match &t.spec {
        TaskSpec::CopySet {
            backup_set_id,
            copy_id,
            dst,
            ..
        } => (backup_set_id.0, copy_id.0, 0, 0, shown_dest(&dst.uri)),
        TaskSpec::CopyPiece {
            round_id,
            piece_id,
            copy_id,
            dst,
            ..
        } => (0, copy_id.0, round_id.0, piece_id.0, shown_dest(&dst.uri)),
        TaskSpec::ArchiveCopy { copy_id, dst, .. } => (0, copy_id.0, 0, 0, shown_dest(&dst.uri)),
        TaskSpec::BackupCopy {
            backup_set_id,
            dest,
            ..
        }
        | TaskSpec::BackupFinalize {
            backup_set_id,
            dest,
            ..
        }
        | TaskSpec::ValidateSet {
            backup_set_id,
            dest,
        } => (backup_set_id.0, 0, 0, 0, shown_dest(&dest.uri)),
        TaskSpec::Archive { dest, round_id, .. } => (0, 0, round_id.0, 0, shown_dest(&dest.uri)),
        TaskSpec::Clean { dest, .. } => (0, 0, 0, 0, shown_dest(&dest.uri)),
        _ => (0, 0, 0, 0, String::new()),
    };
    pb::Task {
        task_id: t.task_id.0,
        job_id: t.job_id.0,
        tenant_id: t.tenant_id.0,
        task_type: t.spec.kind().to_string(),
        status: t.status.as_str().to_string(),
        attempt: t.attempt,
        worker_id: t.worker_id.map(|v| v.0),
        worker_addr: t
            .worker_id
            .and_then(|w| state.work.workers.get(&w))
            .map(|w| w.addr.clone())
            .unwrap_or_default(),
        bytes_done: t.bytes_done,
        bytes_total: t.bytes_total,
        last_error: t.last_error.clone(),
        backup_set_id,
        copy_id,
        round_id,
        backup_piece_id,
        backup_dest,
        start_time_ms: t.start_time_ms,
        update_time_ms: t.update_time_ms,
    }
}

/// Continuous archive copy to message.
pub fn archive_copy(c: &crate::state::ArchiveCopyRecord) -> pb::ArchiveCopy {
    pb::ArchiveCopy {
        tenant_id: c.tenant_id.0,
        copy_id: c.copy_id.0,
        status: c.status.as_str().to_string(),
        round_id: c.round_id.0,
        start_scn: c.start_scn.0,
        checkpoint_scn: c.checkpoint_scn.0,
        start_time_ms: c.start_time_ms,
        checkpoint_time_ms: c.checkpoint_time_ms,
        output_bytes: c.output_bytes,
        lag_ms: c.lag_ms,
        backup_dest: shown_dest(&c.dest.uri),
        comment: c.comment.clone(),
        job_id: c.job_id.0,
        incarnation: c.dest.incarnation,
    }
}

/// Leftover to message.
pub fn leftover(l: &crate::state::LeftoverRecord) -> pb::Leftover {
    pb::Leftover {
        id: l.id,
        backup_dest: shown_dest(&l.dest.uri),
        tenant_id: l.dest.tenant_id.0,
        dir: l.item.dir.clone(),
        not_before_ms: l.not_before_ms,
        reason: l.reason.clone(),
    }
}

/// Policy to message.
pub fn policy(state: &MetaState, p: &crate::state::PolicyRecord) -> pb::Policy {
    pb::Policy {
        tenant_name: if p.tenant_id == backstop_common::TenantId::SYS {
            String::new()
        } else {
            state
                .tenants
                .get(&p.tenant_id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        },
        tenant_id: p.tenant_id.0,
        full_interval_ms: p.full_interval_ms,
        incremental_interval_ms: p.incremental_interval_ms,
        secondary: p.secondary,
        update_time_ms: p.update_time_ms,
    }
}

/// Worker to message.
pub fn worker(state: &MetaState, w: &WorkerRecord) -> pb::Worker {
    pb::Worker {
        worker_id: w.worker_id.0,
        addr: w.addr.clone(),
        slots: w.slots,
        tenants: w.tenants.clone(),
        register_time_ms: w.register_time_ms,
        running_tasks: state
            .work
            .tasks
            .values()
            .filter(|t| {
                t.worker_id == Some(w.worker_id) && t.status == crate::state::TaskStatus::Running
            })
            .count() as u32,
    }
}
