//! Data-safety rules (issue 11): every test here failed on the code before its fix.
//! One destination root has one `copy_id`; no clean removes what a complete copy
//! references; an incremental is copied only onto its whole chain; a set is AVAILABLE
//! only with its log archived at its own destination; a delete is never swallowed by a
//! scrub; destinations are compared by their root, never by their credentials.

use backstop_common::params::Param;
use backstop_common::task::{CleanItem, TaskOutcome, TaskSpec, TenantDest};
use backstop_common::{Code, Scn};

use super::work_tests::{
    assign, checkpoint, copy_job, copy_part, copy_then_cancel, err, finalize, ok, report_canceled,
    req, run_next, set_copy, setup, start_and_prepare, start_archive, with_full_backup, work,
};
use super::*;
use crate::command::{Command, Reply, WorkCommand};

const T1: TenantId = TenantId(1001);

fn copied(s: &mut MetaState) {
    run_next(
        s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
}

/// Runs a whole data backup of t1 (archive task 1 on worker 1 must be running):
/// prepare at `start`, one part, finalize at `end`, then the archive checkpoints past
/// `end` so the set is AVAILABLE. Returns the set id.
fn backup(s: &mut MetaState, incremental: bool, start: u64, end: u64) -> u64 {
    start_and_prepare(s, incremental, start);
    copy_part(s);
    finalize(s, end);
    ok(checkpoint(s, 1, 1, 1, end + 10));
    let id = s.work.sets.keys().map(|(_, id, _)| *id).max().unwrap();
    assert_eq!(s.work.sets[&(T1, id, 0)].file_status, "AVAILABLE");
    id
}

/// `NOARCHIVELOG` for t1, and its archive task (attempt 1 on worker 1) stops at `scn`.
fn noarchivelog(s: &mut MetaState, archive: u64, scn: u64) {
    ok(work(
        s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: archive,
            attempt: 1,
            worker_id: 1,
            outcome: TaskOutcome::ArchiveStopped {
                checkpoint_scn: Scn(scn),
            },
        },
    ));
}

fn clean_items(s: &MetaState, task: u64) -> Vec<CleanItem> {
    match &s.work.tasks[&task].spec {
        TaskSpec::Clean { items, .. } => items.clone(),
        other => panic!("{other:?}"),
    }
}

fn delete_set(s: &mut MetaState, id: u64, copy: u64) -> Response {
    work(
        s,
        WorkCommand::DeleteBackupSet {
            tenants: vec![],
            backup_set_id: id,
            copy_id: copy,
        },
    )
}

/// Reproduced end to end: a complete copy 1, then a tenant-level copy of the same set
/// to the same `backup_backup_dest` got copy 20001 and wrote into the same directory;
/// its cancel deleted copy 1's objects while copy 1 stayed AVAILABLE.
#[test]
fn a_tenant_level_copy_to_the_same_root_reuses_its_copy_id_and_is_a_no_op() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    copied(&mut s);
    assert_eq!(s.work.sets[&(T1, 1, 1)].file_status, "AVAILABLE");
    // Tenant level, the parameter's destination: the same root keeps copy_id 1, and the
    // set is already complete there, so the job ends at once with REACH_COPY_LIMIT.
    ok(set_copy(&mut s, None, None, &["t1"]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    // The same root named explicitly, by a cluster-level job: the same.
    ok(set_copy(&mut s, None, Some("file:///copy"), &[]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    assert_eq!(
        err(set_copy(&mut s, Some(1), None, &["t1"])),
        Code::BackupBackupCanNotStart,
        "set 1 already has its copy at this root"
    );
    assert!(
        s.work.sets.keys().all(|(_, _, c)| *c == 0 || *c == 1),
        "no second copy id at one root: {:?}",
        s.work.sets.keys().collect::<Vec<_>>()
    );
    assert!(
        s.work
            .tasks
            .values()
            .all(|t| !matches!(t.spec, TaskSpec::Clean { .. })),
        "nothing was cleaned"
    );
    assert_eq!(s.work.sets[&(T1, 1, 1)].file_status, "AVAILABLE");
}

/// Whatever a job's clean would delete, a complete copy living in that directory at
/// that place turns the delete into a scrub (manifest-referenced objects and the index
/// entry stay), also when the complete copy's URI carries other credentials.
#[test]
fn no_clean_deletes_a_directory_where_a_complete_copy_lives_even_after_a_key_rotation() {
    let mut s = setup();
    let place = |key: &str| TenantDest {
        uri: format!("s3://bucket/copy?host=http://127.0.0.1:9000&access_id=a&access_key={key}"),
        cluster_name: "c".into(),
        cluster_id: 7,
        incarnation: 1,
        tenant_id: T1,
        tenant_name: "t1".into(),
    };
    assert!(same_place(&place("old"), &place("new")));
    let mut other = place("old");
    other.tenant_id = TenantId(1002);
    assert!(
        !same_place(&place("old"), &other),
        "another tenant's directory"
    );
    let set = BackupSetRecord {
        tenant_id: T1,
        backup_set_id: 1,
        copy_id: 1,
        backup_type: backstop_common::task::BackupType::Full,
        base_set_id: None,
        job_id: JobId(1),
        status: SetStatus::Success,
        file_status: "AVAILABLE".into(),
        start_replay_scn: Scn(1),
        min_restore_scn: Scn(2),
        input_bytes: 0,
        output_bytes: 0,
        file_count: 0,
        parts: 0,
        start_time_ms: 0,
        end_time_ms: 0,
        dest: place("new"),
        manifest_checksum: String::new(),
        comment: String::new(),
    };
    s.work.sets.insert((T1, 1, 1), set);
    let delete = CleanItem {
        dir: "data/backup_set_1_full".into(),
        index: Some("info/backup_set_1".into()),
        keep_referenced: false,
    };
    let guarded = s.guard_clean_item(&place("old"), delete.clone());
    assert!(guarded.keep_referenced, "a scrub, not a delete");
    assert_eq!(guarded.index, None, "the index entry stays");
    // Another directory is deleted as asked.
    let mut elsewhere = delete;
    elsewhere.dir = "data/backup_set_2_full".into();
    assert!(!s.guard_clean_item(&place("old"), elsewhere).keep_referenced);
}

/// The base's copy was deleted: a later `BACKUP BACKUPSET ALL` copies the base again
/// before the incremental, instead of counting the deleted copy as copied.
#[test]
fn an_incremental_is_copied_only_after_its_base_is_complete_at_the_copy() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, Some(1), None, &[]));
    copied(&mut s);
    ok(delete_set(&mut s, 1, 1));
    ok(work(&mut s, WorkCommand::StartCleaner));
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 3,
            failed: vec![],
        },
    );
    assert_eq!(s.work.sets[&(T1, 1, 1)].file_status, "DELETED");
    let inc = backup(&mut s, true, 300, 320);
    assert_eq!(s.work.sets[&(T1, inc, 0)].base_set_id, Some(1));
    ok(set_copy(&mut s, None, None, &[]));
    let first = s.assignable_tasks(2)[0];
    assert!(
        matches!(
            s.work.tasks[&first].spec,
            TaskSpec::CopySet {
                backup_set_id: 1,
                ..
            }
        ),
        "the base is copied again first"
    );
    assert!(
        !s.work.sets.contains_key(&(T1, inc, 1)),
        "the incremental waits for its base"
    );
    copied(&mut s);
    assert_eq!(s.work.sets[&(T1, 1, 1)].file_status, "AVAILABLE");
    assert_eq!(s.work.sets[&(T1, inc, 1)].file_status, "COPYING");
    copied(&mut s);
    assert_eq!(s.work.sets[&(T1, inc, 1)].file_status, "AVAILABLE");
    assert_eq!(copy_job(&s).status, JobStatus::Finished);
}

/// The set-copy queue skipped a base whose directory the cleaner held and then copied
/// the incremental anyway. Now the incremental is held back, with the reason in the job.
#[test]
fn an_incremental_whose_base_copy_is_skipped_is_held_back_with_the_reason() {
    let mut s = with_full_backup();
    let inc = backup(&mut s, true, 300, 320);
    // A cancelled copy of set 1 leaves its directory to the cleaner, which is at it.
    let (task, attempt, _) = copy_then_cancel(&mut s);
    report_canceled(&mut s, task, attempt);
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 0,
            failed: vec!["data/backup_set_1_full/manifest".into()],
        },
    );
    ok(work(&mut s, WorkCommand::StartCleaner));
    assert!(s.work.leftovers.values().all(|l| l.claimed_by.is_some()));
    ok(set_copy(&mut s, None, None, &[]));
    let job = copy_job(&s);
    assert_eq!(job.status, JobStatus::Finished, "nothing could be copied");
    assert!(
        job.comment
            .contains(&format!("set {inc} of tenant 1001 held back")),
        "{}",
        job.comment
    );
    assert!(!s.work.sets.contains_key(&(T1, inc, 1)));
}

/// `DELETE BACKUPSET n COPY k` was accepted while a cluster-level copy job (which
/// carries the sys tenant) had an incremental on `n` queued.
#[test]
fn delete_is_refused_while_a_cluster_level_copy_job_works_for_the_tenant() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, Some(1), None, &[]));
    copied(&mut s);
    let inc = backup(&mut s, true, 300, 320);
    let second = backup(&mut s, true, 400, 420);
    assert!(second > inc);
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(copy_job(&s).tenant_id, TenantId::SYS);
    assert_eq!(err(delete_set(&mut s, 1, 1)), Code::BackupInProgress);
    assert_eq!(err(delete_set(&mut s, 1, 0)), Code::BackupInProgress);
}

/// NOARCHIVELOG while a backup ran: the set's range was never archived, yet it used to
/// finish AVAILABLE.
#[test]
fn a_backup_whose_log_was_not_archived_fails_with_the_reason() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    noarchivelog(&mut s, archive, 110);
    copy_part(&mut s);
    finalize(&mut s, 150);
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(
        job.status,
        JobStatus::Cleaning,
        "the partial set is cleaned"
    );
    assert!(job.comment.contains("[100, 150]"), "{}", job.comment);
    assert!(job.comment.contains("STOP at SCN 110"), "{}", job.comment);
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 3,
            failed: vec![],
        },
    );
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(
        (job.status, job.result.as_deref()),
        (JobStatus::Failed, Some(LOG_COVERAGE_BROKEN))
    );
    let set = &s.work.sets[&(T1, 1, 0)];
    assert_eq!(set.file_status, "INCOMPLETE");
}

/// A round going INTERRUPTED while a set waits for its log fails the set too.
#[test]
fn a_round_interrupted_while_a_set_waits_for_its_log_fails_the_backup() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    copy_part(&mut s);
    finalize(&mut s, 150);
    let job = copy_or_backup_job(&s);
    assert_eq!(job.status, JobStatus::Doing);
    assert!(
        job.comment.contains("waiting for the archive"),
        "{}",
        job.comment
    );
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: archive,
            attempt: 1,
            worker_id: 1,
            outcome: TaskOutcome::Interrupted {
                reason: "segment 0.log was removed before it was archived".into(),
            },
        },
    ));
    let job = copy_or_backup_job(&s);
    assert_eq!(job.status, JobStatus::Cleaning);
    assert!(job.comment.contains("INTERRUPTED"), "{}", job.comment);
    assert!(job.comment.contains("removed before"), "{}", job.comment);
}

fn copy_or_backup_job(s: &MetaState) -> &JobRecord {
    s.work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap()
}

/// Changing `backup_dest` while archiving let new sets land at the new destination
/// while their log kept going to the old one.
#[test]
fn backup_dest_cannot_move_while_a_tenant_archives_to_it() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    let set_dest = |s: &mut MetaState, v: &str| {
        s.apply(&req(Command::SetParameter {
            param: Param::BackupDest,
            tenant: None,
            value: v.into(),
        }))
        .0
    };
    assert_eq!(
        err(set_dest(&mut s, "file:///elsewhere")),
        Code::BackupInProgress
    );
    // The same root (an S3 key rotation would be this) is not a move.
    ok(set_dest(&mut s, "file:///dest"));
    noarchivelog(&mut s, archive, 110);
    ok(set_dest(&mut s, "file:///elsewhere"));
}

/// Right after a failed-over set finalized it had a scrub pending; a `DELETE
/// BACKUPSET` in that window was swallowed by the scrub and the set stayed at the
/// destination, unaccounted for.
#[test]
fn a_delete_is_never_swallowed_by_a_pending_scrub() {
    let mut s = with_full_backup();
    let dest = s.work.sets[&(T1, 1, 0)].dest.clone();
    s.scrub_later(dest, "data/backup_set_1_full".into(), 1_000);
    ok(delete_set(&mut s, 1, 0));
    assert_eq!(s.work.leftovers.len(), 1);
    let l = s.work.leftovers.values().next().unwrap();
    assert!(!l.item.keep_referenced, "the scrub became the delete");
    assert_eq!(l.item.index.as_deref(), Some("info/backup_set_1"));
    ok(work(&mut s, WorkCommand::StartCleaner));
    let clean = s.assignable_tasks(2)[0];
    let items = clean_items(&s, clean);
    assert!(!items[0].keep_referenced);
    assert_eq!(items[0].index.as_deref(), Some("info/backup_set_1"));
    let attempt = assign(&mut s, clean, 2);
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: clean,
            attempt,
            worker_id: 2,
            outcome: TaskOutcome::Cleaned {
                deleted: 3,
                failed: vec![],
            },
        },
    ));
    assert_eq!(s.work.sets[&(T1, 1, 0)].file_status, "DELETED");
    assert!(s.work.leftovers.is_empty());
    let _ = Reply::Done;
}

/// A `dir://` tenant whose log segments are not named by their start SCN retried its
/// archive task every second, forever, with the round at BEGINNING and no reason. A
/// permanent error now gets bounded attempts, then the round is INTERRUPTED with it.
#[test]
fn a_permanent_archive_error_interrupts_the_round_after_bounded_attempts() {
    let mut s = setup();
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(1)[0];
    let reason = "log segments 1.log and 2.log are not contiguous";
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(assign(&mut s, task, 1), attempt);
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 1,
                outcome: TaskOutcome::Failed {
                    reason: reason.into(),
                    retryable: false,
                },
            },
        ));
        let round = s.current_round(T1).unwrap();
        if attempt < MAX_ATTEMPTS {
            assert_eq!(round.status, RoundStatus::Beginning);
            assert!(round.comment.contains(reason), "{}", round.comment);
        }
    }
    let round = s.current_round(T1).unwrap();
    assert_eq!(round.status, RoundStatus::Interrupted);
    assert!(round.comment.contains(reason), "{}", round.comment);
    assert!(s.assignable_tasks(1).is_empty(), "no more retries");
    // A transient error still retries without end.
    ok(work(
        &mut s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(1)[0];
    for attempt in 1..=MAX_ATTEMPTS + 2 {
        assert_eq!(assign(&mut s, task, 1), attempt);
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 1,
                outcome: TaskOutcome::Failed {
                    reason: "storage: 503".into(),
                    retryable: true,
                },
            },
        ));
    }
    assert_eq!(s.current_round(T1).unwrap().status, RoundStatus::Beginning);
}
