//! Unit tests of `clean.rs`.

use backstop_common::Scn;
use backstop_common::task::{CleanItem, TaskOutcome, TaskSpec, TenantDest};
use backstop_common::{BackupSetId, CopyId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;

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
    assert_eq!(
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "COPYING"
    );
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
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
    ok(work(&mut s, WorkCommand::StartCleaner));
    let clean = s.assignable_tasks(WorkerId(2))[0];
    match &s.work.tasks[&clean].spec {
        TaskSpec::Clean { items, .. } => {
            assert_eq!(items[0].dir, "data/backup_set_1_full");
            assert!(items[0].keep_referenced, "a scrub, not a delete");
            assert_eq!(items[0].index, None, "the index entry stays");
        }
        other => panic!("{other:?}"),
    }
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
        backup_set_id: BackupSetId(1),
        copy_id: CopyId(1),
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
    s.work.sets.insert((T1, BackupSetId(1), CopyId(1)), set);
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
