//! Work handed from the metadata service to workers, and what workers report back.
//!
//! The scheduler (meta leader) creates tasks; a worker acquires one with a lease and a
//! fencing token (`task_id`, `attempt`): every report carries both, and a report from a
//! stale attempt is refused. These types cross gRPC inside `bytes` fields, encoded
//! with the versioned codec of `backstop-meta` (one version byte, then bincode).

use crate::{BackupSetId, CopyId, PieceId, RoundId, TaskId};
use serde::{Deserialize, Serialize};

use crate::ids::{JobId, Scn, TenantId};

/// Where a task's objects go: the destination and the tenant's path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDest {
    /// Destination URI including secrets (never log it; see [`crate::BackupDest`]).
    pub uri: String,
    /// OceanBase `cluster_name`.
    pub cluster_name: String,
    /// OceanBase `cluster_id`.
    pub cluster_id: u64,
    /// Tenant incarnation.
    pub incarnation: u64,
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Tenant name, written to `info/tenant` so restore can find a tenant by name.
    pub tenant_name: String,
}

impl TenantDest {
    /// Key prefix of this tenant inside the destination:
    /// `CLUSTER_NAME/CLUSTER_ID/incarnation_N/TENANT_ID`.
    pub fn tenant_prefix(&self) -> String {
        format!(
            "{}/{}/incarnation_{}/{}",
            self.cluster_name, self.cluster_id, self.incarnation, self.tenant_id
        )
    }
}

/// Full or incremental (OceanBase `backup_type`: `D` full, `I` incremental).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupType {
    /// Every block of every datafile.
    Full,
    /// Only blocks whose checksum differs from the base set; the rest are referenced.
    /// PostgreSQL relation pages whose page LSN is below the base set's start LSN are
    /// referenced without comparing.
    Incremental,
}

impl BackupType {
    /// OceanBase's letter: `D` or `I`.
    pub fn letter(self) -> &'static str {
        match self {
            BackupType::Full => "D",
            BackupType::Incremental => "I",
        }
    }

    /// Directory suffix: `full` or `inc`.
    pub fn dir_suffix(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Incremental => "inc",
        }
    }
}

/// A datafile to copy: path relative to the source's `data/`, size at listing time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` separators.
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// The archive piece a worker writes into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceSpec {
    /// Piece id (0 when the round is not split into pieces).
    pub piece_id: PieceId,
    /// First SCN of the piece.
    pub start_scn: Scn,
    /// ms since the epoch when the piece became active.
    pub create_time_ms: u64,
}

/// What the leader tells a running attempt at its heartbeat (proto `TaskAction`).
///
/// The state machine decides `Checkpoint`, `Stop`, `Cancel` and `Suspend` from the job;
/// the leader adds `Abort` when the attempt's lease is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Go on.
    Continue,
    /// A finished data backup waits for its log: an archive task commits a checkpoint
    /// now. Never stops the task.
    Checkpoint,
    /// Finish gracefully: `NOARCHIVELOG`, or `STOP BACKUP ARCHIVELOG` for an archive copy.
    Stop,
    /// The job was cancelled: stop at once and report `Canceled`.
    Cancel,
    /// The job was suspended: stop at once and report `Suspended`.
    Suspend,
    /// The attempt's lease is gone or its job ended: stop at once, report nothing.
    Abort,
}

impl Control {
    /// Whether the attempt must stop (everything but `Continue` and `Checkpoint`).
    pub fn stops(self) -> bool {
        !matches!(self, Control::Continue | Control::Checkpoint)
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskSpec {
    /// Follow the tenant's log and archive it into pieces until cancelled.
    Archive {
        /// Tenant source URI (`dir:///…`).
        source: String,
        /// Destination.
        dest: TenantDest,
        /// Archive round.
        round_id: RoundId,
        /// Last committed checkpoint: archiving resumes exactly here.
        checkpoint_scn: Scn,
        /// Nothing committed yet: start at the source's current log end.
        fresh: bool,
        /// The piece being written (ACTIVE).
        piece: PieceSpec,
        /// A piece left FREEZING by an earlier attempt, to finish first.
        freezing: Option<(PieceSpec, Scn)>,
        /// Switch pieces this often (ms); 0 = never.
        piece_switch_interval_ms: u64,
        /// Commit the checkpoint at most this often (ms).
        checkpoint_interval_ms: u64,
    },
    /// Record `start_replay_scn`, run `begin_backup`, list the datafiles.
    BackupPrepare {
        /// Tenant source URI.
        source: String,
        /// Optional `begin_backup` hook (shell command).
        begin_hook: Option<String>,
    },
    /// Copy some datafiles into a backup set.
    BackupCopy {
        /// Tenant source URI.
        source: String,
        /// Destination.
        dest: TenantDest,
        /// Set being written.
        backup_set_id: BackupSetId,
        /// Full or incremental.
        backup_type: BackupType,
        /// Base set for incrementals (its manifest is read from `dest`).
        base_set_id: Option<BackupSetId>,
        /// Which part of the set (0-based).
        part: u32,
        /// Files of this part.
        files: Vec<FileEntry>,
        /// zstd level; 0 = no compression.
        compression_level: i32,
    },
    /// Run `end_backup`, record `min_restore_scn`, merge part manifests, write the
    /// set manifest, the `.complete` marker and the index entry.
    BackupFinalize {
        /// Tenant source URI.
        source: String,
        /// Destination.
        dest: TenantDest,
        /// Set being finished.
        backup_set_id: BackupSetId,
        /// Full or incremental.
        backup_type: BackupType,
        /// Base set.
        base_set_id: Option<BackupSetId>,
        /// Parts to merge: (part, attempt that completed it).
        parts: Vec<(u32, u32)>,
        /// From prepare.
        start_replay_scn: Scn,
        /// Optional `end_backup` hook.
        end_hook: Option<String>,
    },
    /// A restore as builds before 2026-12-06 recorded it (no [`RestoreOptions`]),
    /// kept in its place so the catalog and Raft logs they wrote still decode;
    /// nothing creates it now. A worker runs it as [`TaskSpec::Restore`] with the
    /// default options ([`TaskSpec::upgraded`]).
    RestoreV1 {
        /// Destination URI (with secrets).
        dest_uri: String,
        /// Tenant name or id at the destination.
        tenant: String,
        /// Empty or new directory.
        to: String,
        /// Target SCN (default: all archived log).
        until_scn: Option<u64>,
        /// Set to use (default: newest that reaches the target).
        backup_set: Option<BackupSetId>,
    },
    /// Re-read a backup set and check every checksum.
    ValidateSet {
        /// Destination.
        dest: TenantDest,
        /// Set to check.
        backup_set_id: BackupSetId,
    },
    /// Backup-of-backup of one set: copy the set's own objects from `src` to `dst`
    /// at the same keys, checking each object's checksum while copying, then the
    /// set manifest, the `.complete` marker and the index entry, last.
    CopySet {
        /// Where the set is (`backup_dest`, copy 0).
        src: TenantDest,
        /// The copy destination (same tenant prefix).
        dst: TenantDest,
        /// Set to copy.
        backup_set_id: BackupSetId,
        /// `copy_id` of the copy being made.
        copy_id: CopyId,
    },
    /// Backup-of-backup of one piece: a frozen piece whole, an active one up to the
    /// checkpoint its manifest holds when the copy starts (`WITH ACTIVE`).
    CopyPiece {
        /// Where the piece is.
        src: TenantDest,
        /// The copy destination.
        dst: TenantDest,
        /// Round.
        round_id: RoundId,
        /// Piece.
        piece_id: PieceId,
        /// `copy_id` of the copy being made.
        copy_id: CopyId,
    },
    /// Continuous archive copy (`START BACKUP ARCHIVELOG`): follow the primary
    /// archive's checkpoint and copy every piece to `dst` until stopped.
    ArchiveCopy {
        /// The tenant's primary archive destination.
        src: TenantDest,
        /// `backup_backup_dest`.
        dst: TenantDest,
        /// `copy_id` of the copy.
        copy_id: CopyId,
    },
    /// Delete what a cancelled or failed job left at a destination.
    Clean {
        /// Destination.
        dest: TenantDest,
        /// What to delete.
        items: Vec<CleanItem>,
    },
    /// Restore a tenant from a destination into a directory on the worker's host
    /// (`ctl restore`; the offline `backstop restore` does the same without a task).
    /// Last in the enum: bincode numbers variants by position.
    Restore {
        /// Destination URI (with secrets).
        dest_uri: String,
        /// Tenant name or id at the destination.
        tenant: String,
        /// Empty or new directory.
        to: String,
        /// Target SCN (default: all archived log).
        until_scn: Option<u64>,
        /// Set to use (default: newest that reaches the target).
        backup_set: Option<BackupSetId>,
        /// Time target, incarnation, owner, tablespaces.
        options: RestoreOptions,
    },
}

/// A restore's choices beyond its target SCN and its set, as `backstop restore` and
/// `ctl restore` take them (`--until-time`, `--incarnation`, `--owner`,
/// `--tablespace-map`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOptions {
    /// Up to the last archived checkpoint at or before this time (ms since the
    /// epoch); not used with a target SCN.
    pub until_time_ms: Option<u64>,
    /// Restore from this incarnation (default: the newest at the destination).
    pub incarnation: Option<u64>,
    /// PostgreSQL tenants: the user who gets the restored data directory (default:
    /// the restoring process's user).
    pub owner: Option<String>,
    /// PostgreSQL tenants: `(OLD, NEW)` pairs, OLD a tablespace's location when the
    /// backup was taken or its OID, NEW an absolute directory, empty or missing.
    pub tablespace_map: Vec<(String, String)>,
}

/// One thing a clean task removes, relative to the tenant prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanItem {
    /// Directory (`data/backup_set_…`, `clog/round_R/piece_P`).
    pub dir: String,
    /// Index entry that points into `dir`, deleted first so no index ever points at
    /// a half-deleted directory.
    pub index: Option<String>,
    /// Keep the manifest, the marker and every object the manifest at `dir`
    /// references (a piece copy that was AVAILABLE before this job); delete the rest.
    pub keep_referenced: bool,
}

impl TaskSpec {
    /// Short name for views and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskSpec::Archive { .. } => "ARCHIVE",
            TaskSpec::BackupPrepare { .. } => "BACKUP_PREPARE",
            TaskSpec::BackupCopy { .. } => "BACKUP_COPY",
            TaskSpec::BackupFinalize { .. } => "BACKUP_FINALIZE",
            TaskSpec::ValidateSet { .. } => "VALIDATE",
            TaskSpec::Restore { .. } | TaskSpec::RestoreV1 { .. } => "RESTORE",
            TaskSpec::CopySet { .. } => "BACKUP_BACKUPSET",
            TaskSpec::CopyPiece { .. } => "BACKUP_BACKUPPIECE",
            TaskSpec::ArchiveCopy { .. } => "BACKUP_ARCHIVELOG",
            TaskSpec::Clean { .. } => "CLEAN",
        }
    }

    /// The spec in today's shape: a [`TaskSpec::RestoreV1`] becomes a
    /// [`TaskSpec::Restore`] with the default options; anything else is unchanged.
    pub fn upgraded(self) -> TaskSpec {
        match self {
            TaskSpec::RestoreV1 {
                dest_uri,
                tenant,
                to,
                until_scn,
                backup_set,
            } => TaskSpec::Restore {
                dest_uri,
                tenant,
                to,
                until_scn,
                backup_set,
                options: RestoreOptions::default(),
            },
            other => other,
        }
    }
}

/// A task as handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Task id.
    pub task_id: TaskId,
    /// Fencing token: the attempt this worker runs.
    pub attempt: u32,
    /// Job the task belongs to.
    pub job_id: JobId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// What to do.
    pub spec: TaskSpec,
}

/// What a finished task reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Prepare done.
    Prepared {
        /// Log end before the datafile copy.
        start_replay_scn: Scn,
        /// Datafiles to copy.
        files: Vec<FileEntry>,
    },
    /// A part copied; its part manifest is at the destination.
    Copied {
        /// Bytes read from the source.
        input_bytes: u64,
        /// Bytes written to the destination.
        output_bytes: u64,
    },
    /// The set is complete at the destination.
    Finalized {
        /// Log end after the datafile copy.
        min_restore_scn: Scn,
        /// Total source bytes.
        input_bytes: u64,
        /// Total stored bytes (this set's own objects).
        output_bytes: u64,
        /// Number of datafiles.
        file_count: u64,
        /// Checksum of the set manifest (hex).
        manifest_checksum: String,
    },
    /// The archive stopped cleanly (after NOARCHIVELOG) at this checkpoint.
    ArchiveStopped {
        /// Final checkpoint.
        checkpoint_scn: Scn,
    },
    /// A restore finished.
    Restored {
        /// Set used.
        backup_set_id: BackupSetId,
        /// The restored log ends here.
        until_scn: Scn,
        /// Datafile bytes written.
        data_bytes: u64,
    },
    /// Validation finished.
    Validated {
        /// Objects read.
        objects: u64,
        /// Bad objects, by key, with what was wrong.
        bad: Vec<String>,
    },
    /// The task failed; `retryable` failures are tried again on another attempt.
    Failed {
        /// Why, for the job row.
        reason: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// The source lost log before it was archived: the round is `INTERRUPTED`.
    Interrupted {
        /// What was lost.
        reason: String,
    },
    /// A backup set copy is complete at the copy destination.
    SetCopied {
        /// Bytes read from the source destination.
        input_bytes: u64,
        /// Bytes written to the copy destination (objects already there and
        /// re-verified are not counted).
        output_bytes: u64,
        /// Objects already at the copy destination whose checksum matched.
        reused_objects: u64,
    },
    /// A piece copy is complete up to `checkpoint_scn`.
    PieceCopied {
        /// First SCN of the piece.
        start_scn: Scn,
        /// The copy covers `[start_scn, checkpoint_scn)`.
        checkpoint_scn: Scn,
        /// The piece was frozen (its `.frozen` marker and index entry are copied).
        frozen: bool,
        /// Bytes copied.
        bytes: u64,
    },
    /// The continuous archive copy stopped at a consistent checkpoint
    /// (`STOP BACKUP ARCHIVELOG`).
    ArchiveCopyStopped,
    /// The task stopped because its job was cancelled.
    Canceled,
    /// The task stopped because its job was suspended; it runs again on resume.
    Suspended,
    /// A clean task ended.
    Cleaned {
        /// Objects deleted.
        deleted: u64,
        /// Items that could not be removed (`dir: why`), kept for the cleaner.
        failed: Vec<String>,
    },
    /// A data backup must start again from its prepare: the hot backup it copied under
    /// was aborted on the server (PostgreSQL: the worker holding the `pg_backup_start`
    /// connection restarted), so what was copied cannot be finished.
    Restart {
        /// Why, for the set's comment.
        reason: String,
    },
}

/// A checkpoint of the continuous archive copy: one piece copied up to a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    /// Round.
    pub round_id: RoundId,
    /// Piece.
    pub piece_id: PieceId,
    /// First SCN of the piece.
    pub start_scn: Scn,
    /// The copy's manifest covers `[start_scn, checkpoint_scn)`.
    pub checkpoint_scn: Scn,
    /// The source piece is frozen and the copy is complete (marker and index written).
    pub frozen: bool,
    /// Bytes copied since the last report.
    pub bytes: u64,
    /// ms between the primary committing `checkpoint_scn` and this copy of it.
    pub lag_ms: u64,
}

/// An archive checkpoint a worker commits while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveProgress {
    /// Round.
    pub round_id: RoundId,
    /// Piece the checkpoint is in.
    pub piece_id: PieceId,
    /// Everything below this SCN is archived and listed in the piece manifest.
    pub checkpoint_scn: Scn,
    /// Bytes of source log archived in this attempt so far.
    pub input_bytes: u64,
    /// Bytes stored in this attempt so far.
    pub output_bytes: u64,
    /// Milliseconds between the source writing the newest covered byte (as seen by
    /// the worker) and this checkpoint.
    pub lag_ms: u64,
    /// Piece switch: the active piece becomes FREEZING at `checkpoint_scn` and a new
    /// ACTIVE piece with this id starts there.
    pub switch_to: Option<PieceSpec>,
    /// A FREEZING piece whose manifest and `.frozen` marker are now written.
    pub frozen_piece: Option<PieceId>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_restore_task_written_before_restore_options_still_decodes() {
        // What builds before 2026-12-06 stored for
        // Restore { "file:///d", "t1", "/r", Some(5), None }: the codec version, the
        // variant's position (4), then the fields (bincode 2, standard config).
        let mut old = vec![1u8, 4, 9];
        old.extend_from_slice(b"file:///d");
        old.extend_from_slice(&[2, b't', b'1', 2, b'/', b'r', 1, 5, 0]);
        let spec: TaskSpec = crate::codec::decode(&old).unwrap();
        assert_eq!(
            spec,
            TaskSpec::RestoreV1 {
                dest_uri: "file:///d".into(),
                tenant: "t1".into(),
                to: "/r".into(),
                until_scn: Some(5),
                backup_set: None,
            }
        );
        assert_eq!(spec.kind(), "RESTORE");
        let TaskSpec::Restore { options, to, .. } = spec.upgraded() else {
            panic!("upgraded to Restore");
        };
        assert_eq!((options, to.as_str()), (RestoreOptions::default(), "/r"));
        // Today's shape round-trips with its options.
        let new = TaskSpec::Restore {
            dest_uri: "file:///d".into(),
            tenant: "t1".into(),
            to: "/r".into(),
            until_scn: None,
            backup_set: Some(BackupSetId(2)),
            options: RestoreOptions {
                until_time_ms: Some(7),
                incarnation: Some(1),
                owner: Some("postgres".into()),
                tablespace_map: vec![("/old".into(), "/new".into())],
            },
        };
        let back: TaskSpec = crate::codec::decode(&crate::codec::encode(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }
}
