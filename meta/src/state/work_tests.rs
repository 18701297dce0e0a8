//! The work rules as pure functions: fencing, leases, bounded retries, preconditions.

use backstop_common::params::Param;
use backstop_common::task::{ArchiveProgress, FileEntry, TaskOutcome, TaskSpec};
use backstop_common::{Code, Scn};

use super::*;
use crate::command::{Command, Reply, Request, Response, WorkCommand};

pub(super) fn req(command: Command) -> Request {
    Request {
        time_ms: 1_000,
        command,
    }
}

pub(super) fn work(state: &mut MetaState, w: WorkCommand) -> Response {
    state.apply(&req(Command::Work(w))).0
}

pub(super) fn ok(r: Response) -> Reply {
    match r {
        Response::Ok(reply) => reply,
        Response::Err { code, message } => panic!("{code}: {message}"),
    }
}

pub(super) fn err(r: Response) -> Code {
    match r {
        Response::Err { code, .. } => code,
        Response::Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

/// A cluster with tenant t1, a backup_dest and two workers.
pub(super) fn setup() -> MetaState {
    let mut s = MetaState::default();
    let init = Command::InitCluster {
        cluster_name: "c".into(),
        cluster_id: 7,
        root_password: backstop_common::auth::PasswordHash::new(""),
    };
    ok(s.apply(&req(init)).0);
    ok(s.apply(&req(Command::CreateTenant {
        name: "t1".into(),
        source: "dir:///src/t1".into(),
        comment: String::new(),
        if_not_exists: false,
        root_password: backstop_common::auth::PasswordHash::new(""),
    }))
    .0);
    ok(s.apply(&req(Command::SetParameter {
        param: Param::BackupDest,
        tenant: None,
        value: "file:///dest".into(),
    }))
    .0);
    for worker_id in [1, 2] {
        ok(work(
            &mut s,
            WorkCommand::RegisterWorker {
                worker_id,
                addr: format!("w{worker_id}"),
                slots: 2,
                tenants: vec![],
            },
        ));
    }
    s
}

pub(super) fn assign(s: &mut MetaState, task_id: u64, worker_id: u64) -> u32 {
    match ok(work(s, WorkCommand::AssignTask { task_id, worker_id })) {
        Reply::Assigned(a) => a.attempt,
        other => panic!("{other:?}"),
    }
}

pub(super) fn checkpoint(
    s: &mut MetaState,
    task_id: u64,
    attempt: u32,
    worker_id: u64,
    scn: u64,
) -> Response {
    let progress = ArchiveProgress {
        round_id: 1,
        piece_id: 0,
        checkpoint_scn: Scn(scn),
        input_bytes: 0,
        output_bytes: 0,
        lag_ms: 0,
        switch_to: None,
        frozen_piece: None,
    };
    work(
        s,
        WorkCommand::ArchiveCheckpoint {
            task_id,
            attempt,
            worker_id,
            progress,
        },
    )
}

pub(super) fn start_archive(s: &mut MetaState) -> u64 {
    ok(work(
        s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(1)[0];
    let attempt = assign(s, task, 1);
    ok(checkpoint(s, task, attempt, 1, 100));
    task
}

#[test]
fn reports_from_stale_attempts_or_other_workers_are_refused() {
    let mut s = setup();
    let task = start_archive(&mut s);
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().status,
        RoundStatus::Doing
    );
    assert_eq!(
        err(checkpoint(&mut s, task, 1, 2, 200)),
        Code::TaskStale,
        "wrong worker"
    );
    // The lease of attempt 1 expires; attempt 2 goes to worker 2.
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: task,
            attempt: 1,
            reason: "silent".into(),
        },
    ));
    assert_eq!(assign(&mut s, task, 2), 2);
    // The zombie attempt 1 wakes up: everything it says is refused.
    assert_eq!(err(checkpoint(&mut s, task, 1, 1, 300)), Code::TaskStale);
    let outcome = TaskOutcome::ArchiveStopped {
        checkpoint_scn: Scn(300),
    };
    assert_eq!(
        err(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt: 1,
                worker_id: 1,
                outcome
            }
        )),
        Code::TaskStale
    );
    // Attempt 2 resumes from the committed checkpoint.
    ok(checkpoint(&mut s, task, 2, 2, 250));
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().checkpoint_scn,
        Scn(250)
    );
    // A checkpoint may never move back.
    assert_eq!(
        err(checkpoint(&mut s, task, 2, 2, 240)),
        Code::InvalidArgument
    );
}

#[test]
fn backup_preconditions_follow_oceanbase() {
    let mut s = setup();
    let start = |s: &mut MetaState, incremental| {
        work(
            s,
            WorkCommand::StartBackup {
                tenant: "t1".into(),
                incremental,
            },
        )
    };
    assert_eq!(
        err(start(&mut s, false)),
        Code::BackupCanNotStart,
        "archive not DOING"
    );
    start_archive(&mut s);
    assert_eq!(
        err(start(&mut s, true)),
        Code::BackupCanNotStart,
        "no base for an incremental"
    );
    ok(start(&mut s, false));
    assert_eq!(err(start(&mut s, false)), Code::BackupInProgress);
    assert_eq!(
        err(s
            .apply(&req(Command::DropTenant {
                name: "t1".into(),
                if_exists: false
            }))
            .0),
        Code::BackupInProgress,
        "a tenant with running jobs cannot be dropped"
    );
}

#[test]
fn a_backup_runs_prepare_copy_finalize_and_an_incremental_bases_on_it() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let run = |s: &mut MetaState, outcome: TaskOutcome| {
        let task = s.assignable_tasks(2)[0];
        let attempt = assign(s, task, 2);
        ok(work(
            s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 2,
                outcome,
            },
        ));
    };
    let files: Vec<FileEntry> = (0..40)
        .map(|i| FileEntry {
            path: format!("f{i}"),
            size: 20 << 20,
        })
        .collect();
    run(
        &mut s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(500),
            files,
        },
    );
    let copies = s.assignable_tasks(2);
    assert_eq!(copies.len(), 4, "800 MiB in 256 MiB parts");
    for _ in copies {
        run(
            &mut s,
            TaskOutcome::Copied {
                input_bytes: 10,
                output_bytes: 5,
            },
        );
    }
    run(
        &mut s,
        TaskOutcome::Finalized {
            min_restore_scn: Scn(900),
            input_bytes: 40,
            output_bytes: 20,
            file_count: 40,
            manifest_checksum: "abc".into(),
        },
    );
    // The archive is at 100: the set waits for its log up to 900.
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(set.status, SetStatus::Doing);
    assert_eq!(s.task_control(archive), Some("checkpoint"));
    ok(checkpoint(&mut s, archive, 1, 1, 900));
    assert_eq!(s.task_control(archive), None);
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(
        (set.status, set.file_status.as_str()),
        (SetStatus::Success, "AVAILABLE")
    );
    assert_eq!(
        (set.start_replay_scn, set.min_restore_scn),
        (Scn(500), Scn(900))
    );
    assert!(
        s.work
            .jobs
            .values()
            .any(|j| matches!(j.kind, JobKind::Backup { .. }) && j.status == JobStatus::Finished)
    );
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: true,
        },
    ));
    let inc = s.work.sets.values().find(|x| x.backup_set_id == 2).unwrap();
    assert_eq!(
        (inc.backup_type, inc.base_set_id),
        (backstop_common::task::BackupType::Incremental, Some(1))
    );
}

#[test]
fn a_task_that_keeps_failing_fails_its_job_after_bounded_attempts() {
    let mut s = setup();
    start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let task = s.assignable_tasks(1)[0];
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(assign(&mut s, task, 1), attempt);
        let outcome = TaskOutcome::Failed {
            reason: "storage: connection refused".into(),
            retryable: true,
        };
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 1,
                outcome,
            },
        ));
    }
    // The job cleans what it left (one clean task), then fails.
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(job.status, JobStatus::Cleaning);
    let clean = s.assignable_tasks(1);
    assert_eq!(clean.len(), 1);
    assert!(matches!(
        s.work.tasks[&clean[0]].spec,
        TaskSpec::Clean { .. }
    ));
    let attempt = assign(&mut s, clean[0], 1);
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: clean[0],
            attempt,
            worker_id: 1,
            outcome: TaskOutcome::Cleaned {
                deleted: 3,
                failed: vec![],
            },
        },
    ));
    assert!(s.assignable_tasks(1).is_empty());
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.comment.contains("connection refused"));
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(
        (set.status, set.file_status.as_str()),
        (SetStatus::Failed, "INCOMPLETE")
    );
}

#[test]
fn noarchivelog_stops_through_the_worker_and_freezes_pieces() {
    let mut s = setup();
    let task = start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().status,
        RoundStatus::Stopping
    );
    let outcome = TaskOutcome::ArchiveStopped {
        checkpoint_scn: Scn(400),
    };
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt: 1,
            worker_id: 1,
            outcome,
        },
    ));
    let round = s.current_round(TenantId(1001)).unwrap();
    assert_eq!(
        (round.status, round.checkpoint_scn),
        (RoundStatus::Stop, Scn(400))
    );
    assert!(
        s.work
            .pieces
            .values()
            .all(|p| p.status == PieceStatus::Frozen)
    );
    // A new round can start afterwards.
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    assert_eq!(s.current_round(TenantId(1001)).unwrap().round_id, 2);
}

/// Runs the next assignable task on worker 2 with `outcome`.
pub(super) fn run_next(s: &mut MetaState, outcome: TaskOutcome) -> u64 {
    let task = s.assignable_tasks(2)[0];
    let attempt = assign(s, task, 2);
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: 2,
            outcome,
        },
    ));
    task
}

/// Starts a data backup of t1 and runs its prepare on worker 2 at `start_replay_scn`
/// (one 10-byte file, one part).
pub(super) fn start_and_prepare(s: &mut MetaState, incremental: bool, start_replay_scn: u64) {
    ok(work(
        s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental,
        },
    ));
    run_next(
        s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(start_replay_scn),
            files: vec![FileEntry {
                path: "f".into(),
                size: 10,
            }],
        },
    );
}

/// Runs the backup's one copy part on worker 2.
pub(super) fn copy_part(s: &mut MetaState) {
    run_next(
        s,
        TaskOutcome::Copied {
            input_bytes: 10,
            output_bytes: 5,
        },
    );
}

/// Runs the backup's finalize on worker 2 with `min_restore_scn`.
pub(super) fn finalize(s: &mut MetaState, min_restore_scn: u64) {
    run_next(
        s,
        TaskOutcome::Finalized {
            min_restore_scn: Scn(min_restore_scn),
            input_bytes: 10,
            output_bytes: 5,
            file_count: 1,
            manifest_checksum: "abc".into(),
        },
    );
}

/// Archive running and one successful full backup (set 1).
pub(super) fn with_full_backup() -> MetaState {
    let mut s = setup();
    let archive = start_archive(&mut s);
    // The archive covers the set's log [100, 120].
    ok(checkpoint(&mut s, archive, 1, 1, 200));
    start_and_prepare(&mut s, false, 100);
    copy_part(&mut s);
    finalize(&mut s, 120);
    ok(s.apply(&req(Command::SetParameter {
        param: Param::BackupBackupDest,
        tenant: None,
        value: "file:///copy".into(),
    }))
    .0);
    s
}

pub(super) fn set_copy(
    s: &mut MetaState,
    id: Option<u64>,
    dest: Option<&str>,
    tenants: &[&str],
) -> Response {
    work(
        s,
        WorkCommand::StartSetCopy {
            selection: CopySelection {
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
                id,
                max_backup_times: None,
                dest: dest.map(str::to_string),
            },
        },
    )
}

pub(super) fn copy_job(s: &MetaState) -> &JobRecord {
    s.work
        .jobs
        .values()
        .rfind(|j| matches!(j.kind, JobKind::SetCopy { .. }))
        .unwrap()
}

#[test]
fn a_backupset_copy_runs_once_at_a_time_and_records_its_copy() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(
        err(set_copy(&mut s, None, None, &[])),
        Code::Eagain,
        "one backupset copy job at a time"
    );
    let row = &s.work.sets[&(TenantId(1001), 1, 1)];
    assert_eq!((row.file_status.as_str(), row.copy_id), ("COPYING", 1));
    run_next(
        &mut s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
    assert_eq!(copy_job(&s).status, JobStatus::Finished);
    assert_eq!(
        s.work.sets[&(TenantId(1001), 1, 1)].file_status,
        "AVAILABLE"
    );
    // Nothing left to copy: the job ends at once with REACH_COPY_LIMIT.
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    assert_eq!(
        err(set_copy(&mut s, Some(1), None, &[])),
        Code::BackupBackupCanNotStart,
        "set 1 already has this copy"
    );
    assert_eq!(
        err(set_copy(&mut s, Some(9), None, &["t1"])),
        Code::BackupBackupCanNotStart
    );
    // Copy id levels: an explicit destination, then a tenant-level job.
    ok(set_copy(&mut s, None, Some("file:///other"), &[]));
    assert!(s.work.sets.contains_key(&(TenantId(1001), 1, 10_001)));
    run_next(
        &mut s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
    ok(set_copy(&mut s, None, Some("file:///third"), &["t1"]));
    assert!(s.work.sets.contains_key(&(TenantId(1001), 1, 30_001)));
}

/// Starts a set copy, leases its task to worker 2 and cancels the copy job; returns the
/// task, its attempt and the cancel command.
pub(super) fn copy_then_cancel(s: &mut MetaState) -> (u64, u32, WorkCommand) {
    ok(set_copy(s, None, None, &[]));
    let task = s.assignable_tasks(2)[0];
    let attempt = assign(s, task, 2);
    let cancel = WorkCommand::CancelJobs {
        target: crate::command::CancelTarget::SetCopy,
        tenants: vec![],
    };
    ok(work(s, cancel.clone()));
    (task, attempt, cancel)
}

/// Worker 2 reports that the cancelled `task` stopped.
pub(super) fn report_canceled(s: &mut MetaState, task: u64, attempt: u32) {
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: 2,
            outcome: TaskOutcome::Canceled,
        },
    ));
}

#[test]
fn cancel_stops_running_copies_cleans_and_moves_the_job_to_history() {
    let mut s = with_full_backup();
    let (task, attempt, cancel) = copy_then_cancel(&mut s);
    assert_eq!(copy_job(&s).status, JobStatus::Canceling);
    assert_eq!(s.task_control(task), Some("cancel"));
    // A second cancel while the first is under way changes nothing.
    ok(work(&mut s, cancel.clone()));
    report_canceled(&mut s, task, attempt);
    assert_eq!(copy_job(&s).status, JobStatus::Cleaning);
    let clean = s.assignable_tasks(2)[0];
    match &s.work.tasks[&clean].spec {
        TaskSpec::Clean { dest, items } => {
            assert_eq!(dest.uri, "file:///copy");
            assert_eq!(items[0].dir, "data/backup_set_1_full");
            assert_eq!(items[0].index.as_deref(), Some("info/backup_set_1"));
        }
        other => panic!("{other:?}"),
    }
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 4,
            failed: vec![],
        },
    );
    let job = copy_job(&s);
    assert_eq!(
        (job.status, job.result.as_deref()),
        (JobStatus::Canceled, Some("OB_CANCELED"))
    );
    assert_eq!(
        s.work.sets[&(TenantId(1001), 1, 1)].file_status,
        "INCOMPLETE"
    );
    // Nothing live: cancelling again is a no-op, and a new copy starts over.
    assert_eq!(ok(work(&mut s, cancel)), Reply::Jobs(vec![]));
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(s.work.sets[&(TenantId(1001), 1, 1)].file_status, "COPYING");
}

#[test]
fn a_copy_that_completes_while_being_cancelled_stays_available() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(2)[0];
    let attempt = assign(&mut s, task, 2);
    ok(work(
        &mut s,
        WorkCommand::CancelJobs {
            target: crate::command::CancelTarget::SetCopy,
            tenants: vec![],
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: 2,
            outcome: TaskOutcome::SetCopied {
                input_bytes: 5,
                output_bytes: 5,
                reused_objects: 0,
            },
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Canceled);
    assert_eq!(
        s.work.sets[&(TenantId(1001), 1, 1)].file_status,
        "AVAILABLE"
    );
    assert!(s.assignable_tasks(2).is_empty(), "nothing to clean");
}

#[test]
fn a_lost_worker_during_cancel_ends_the_job_through_its_lease() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(2)[0];
    let attempt = assign(&mut s, task, 2);
    ok(work(
        &mut s,
        WorkCommand::CancelJobs {
            target: crate::command::CancelTarget::SetCopy,
            tenants: vec![],
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: task,
            attempt,
            reason: "gone".into(),
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Cleaning);
}

#[test]
fn stop_backup_archivelog_pauses_and_start_resumes_one_follower_at_a_time() {
    let mut s = with_full_backup();
    let start = WorkCommand::SetArchiveCopy {
        enable: true,
        tenants: vec![],
    };
    ok(work(&mut s, start.clone()));
    let c = &s.work.archive_copies[&(TenantId(1001), 1)];
    assert_eq!(c.status, CopyArchiveStatus::Doing);
    let task = s.assignable_tasks(2)[0];
    let attempt = assign(&mut s, task, 2);
    let progress = backstop_common::task::CopyProgress {
        round_id: 1,
        piece_id: 0,
        start_scn: Scn(100),
        checkpoint_scn: Scn(150),
        frozen: false,
        bytes: 50,
        lag_ms: 7,
    };
    ok(work(
        &mut s,
        WorkCommand::CopyCheckpoint {
            task_id: task,
            attempt,
            worker_id: 2,
            progress,
        },
    ));
    assert_eq!(
        s.work.pieces[&(TenantId(1001), 1, 0, 1)].checkpoint_scn,
        Scn(150)
    );
    ok(work(
        &mut s,
        WorkCommand::SetArchiveCopy {
            enable: false,
            tenants: vec![],
        },
    ));
    assert_eq!(
        s.work.archive_copies[&(TenantId(1001), 1)].status,
        CopyArchiveStatus::Paused
    );
    assert_eq!(s.task_control(task), Some("stop"));
    // START while the old follower is still finishing: the new one waits for it.
    ok(work(&mut s, start));
    assert!(s.assignable_tasks(2).is_empty());
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: 2,
            outcome: TaskOutcome::ArchiveCopyStopped,
        },
    ));
    assert_eq!(s.assignable_tasks(2).len(), 1);
    // Piece copies and the continuous copy exclude each other.
    assert_eq!(
        err(work(
            &mut s,
            WorkCommand::StartPieceCopy {
                selection: CopySelection {
                    tenants: vec![],
                    id: None,
                    max_backup_times: None,
                    dest: None,
                },
                with_active: false,
            },
        )),
        Code::NotSupported
    );
}

#[test]
fn cancel_all_force_ends_everything_at_once_and_leaves_the_rest_to_the_cleaner() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(2)[0];
    assign(&mut s, task, 2);
    ok(work(
        &mut s,
        WorkCommand::CancelAllForce {
            clean_after_ms: 10_000,
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Canceled);
    assert_eq!(s.work.tasks[&task].status, TaskStatus::Canceled);
    assert_eq!(s.work.leftovers.len(), 1);
    // Not due yet (the fenced attempt may hold its lease until then).
    assert!(crate::policy::due_commands(&s, 1_000).is_empty());
    assert_eq!(crate::policy::due_commands(&s, 11_000).len(), 1);
    ok(work(&mut s, WorkCommand::StartCleaner));
    // The leader clock in these tests is 1 000 ms: not due, no cleaner job.
    assert!(s.assignable_tasks(2).is_empty());
}

#[test]
fn suspend_stops_running_parts_and_resume_continues_with_the_finished_ones_kept() {
    let mut s = setup();
    start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let files: Vec<FileEntry> = (0..20)
        .map(|i| FileEntry {
            path: format!("f{i}"),
            size: 30 << 20,
        })
        .collect();
    run_next(
        &mut s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(10),
            files,
        },
    );
    let parts = s.assignable_tasks(2);
    assert!(parts.len() >= 2);
    // One part done, one running when SUSPEND comes.
    run_next(
        &mut s,
        TaskOutcome::Copied {
            input_bytes: 1,
            output_bytes: 1,
        },
    );
    let running = s.assignable_tasks(2)[0];
    let attempt = assign(&mut s, running, 2);
    ok(work(
        &mut s,
        WorkCommand::SuspendBackup {
            suspend: true,
            tenants: vec![],
        },
    ));
    assert_eq!(s.task_control(running), Some("suspend"));
    assert!(
        s.assignable_tasks(2).is_empty(),
        "nothing runs while suspended"
    );
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: running,
            attempt,
            worker_id: 2,
            outcome: TaskOutcome::Suspended,
        },
    ));
    assert_eq!(s.work.tasks[&running].status, TaskStatus::Pending);
    ok(work(
        &mut s,
        WorkCommand::SuspendBackup {
            suspend: false,
            tenants: vec![],
        },
    ));
    let again = s.assignable_tasks(2);
    assert!(again.contains(&running), "the stopped part runs again");
    let done = s
        .work
        .tasks
        .values()
        .filter(|t| matches!(t.spec, TaskSpec::BackupCopy { .. }) && t.status == TaskStatus::Done)
        .count();
    assert_eq!(done, 1, "the finished part is kept");
}

/// Found by the 30-minute chaos soak: a cancelled copy's clean failed (S3 503), its set
/// directory became a leftover, the set was copied again completely, and then the
/// cleaner deleted the new copy. A leftover where a complete copy lives now is only
/// scrubbed (what the manifest references stays); while a copy writes there, it waits.
#[test]
fn a_leftover_of_a_cancelled_copy_never_deletes_a_later_complete_copy() {
    let mut s = with_full_backup();
    let (task, attempt, _) = copy_then_cancel(&mut s);
    report_canceled(&mut s, task, attempt);
    // The clean fails: the set directory at the copy destination is a leftover.
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 0,
            failed: vec!["data/backup_set_1_full/manifest".into()],
        },
    );
    assert_eq!(s.work.leftovers.len(), 1);
    // A new copy is writing there: the cleaner leaves the leftover alone.
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(s.work.sets[&(TenantId(1001), 1, 1)].file_status, "COPYING");
    ok(work(&mut s, WorkCommand::StartCleaner));
    assert!(
        !s.work
            .jobs
            .values()
            .any(|j| matches!(j.kind, JobKind::Cleaner)),
        "no cleaner while the copy writes"
    );
    // The copy completes; the cleaner now only scrubs the directory.
    run_next(
        &mut s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
    assert_eq!(
        s.work.sets[&(TenantId(1001), 1, 1)].file_status,
        "AVAILABLE"
    );
    ok(work(&mut s, WorkCommand::StartCleaner));
    let clean = s.assignable_tasks(2)[0];
    match &s.work.tasks[&clean].spec {
        TaskSpec::Clean { items, .. } => {
            assert_eq!(items[0].dir, "data/backup_set_1_full");
            assert!(items[0].keep_referenced, "a scrub, not a delete");
            assert_eq!(items[0].index, None, "the index entry stays");
        }
        other => panic!("{other:?}"),
    }
}
