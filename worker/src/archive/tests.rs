//! Unit tests of `archive`.

#[test]
fn a_piece_switches_on_its_interval_or_when_its_manifest_is_full() {
    assert!(
        !piece_full(0, u64::MAX, 10),
        "interval 0: one piece while it is small"
    );
    assert!(
        piece_full(0, 0, PIECE_MAX_ENTRIES),
        "but never an unbounded manifest"
    );
    assert!(piece_full(60_000, 60_000, 1));
    assert!(!piece_full(60_000, 59_999, 1));
}

use super::*;
use backstop_common::{PieceId, RoundId, TaskId, WorkerId};
use bytes::Bytes;
use std::collections::HashMap;

#[test]
fn checkpoint_times_come_from_the_leader_and_never_go_back() {
    // A worker whose clock is an hour behind the leader's: the leader's time.
    let hour = 3_600_000;
    let leader = 1_700_000_000_000;
    assert_eq!(checkpoint_stamp(0, Some(leader), leader - hour), leader);
    // An hour ahead: still the leader's time, not the worker's.
    assert_eq!(checkpoint_stamp(0, Some(leader), leader + hour), leader);
    // Unknown leader time (an older meta): this worker's clock.
    assert_eq!(checkpoint_stamp(0, None, 42), 42);
    // Monotonic within the round, whatever the clocks say.
    assert_eq!(
        checkpoint_stamp(leader + 5, Some(leader), leader),
        leader + 5
    );
    assert_eq!(checkpoint_stamp(leader + 5, None, 42), leader + 5);
}

/// Archive recovery adopts a manifest entry only if the stored object still has
/// its recorded size: a file cut short by a crash is read back and rejected.
#[tokio::test]
async fn recovery_rejects_an_adopted_object_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t1/log")).unwrap();
    let dest = TenantDest {
        uri: format!("file://{}/dest", dir.path().display()),
        cluster_name: "c".into(),
        cluster_id: 1,
        incarnation: 1,
        tenant_id: backstop_common::TenantId(1001),
        tenant_name: "t1".into(),
    };
    let spec = PieceSpec {
        piece_id: PieceId(1),
        start_scn: Scn(0),
        create_time_ms: 0,
    };
    let ctx = TaskCtx {
        client: crate::client::MetaClient::new(Vec::new()),
        worker_id: WorkerId(1),
        task_id: TaskId(1),
        attempt: 1,
        abort: tokio_util::sync::CancellationToken::new(),
        stop: tokio_util::sync::CancellationToken::new(),
        progress: Default::default(),
        copy_rate: 0,
        lease: std::sync::Arc::new(crate::ctx::AttemptLease::new(
            tokio::time::Instant::now(),
            Duration::from_secs(60),
        )),
        checkpoint_now: Default::default(),
        allow_hooks: false,
        allowed_paths: Default::default(),
    };
    let store = TenantStore::open(&dest).unwrap();
    let a = Archiver {
        ctx: &ctx,
        store: store.clone(),
        src: super::LogSource::Dir(
            DirSource::open(&format!("dir://{}/t1", dir.path().display())).unwrap(),
        ),
        piece: Piece::new(spec.clone(), RoundId(1)),
        journal: JournalWriter::new(&ctx, "clog/round_1/piece_1"),
        ckpt: 0,
        read_end: 0,
        buffer: Vec::new(),
        buffer_start: 0,
        tail: Vec::new(),
        last_stamp: 0,
        oldest_unarchived: None,
        input_since_report: 0,
        output_since_report: 0,
        last_commit: Instant::now(),
        args: ArchiveArgs {
            source: String::new(),
            dest,
            round_id: RoundId(1),
            checkpoint_scn: Scn(0),
            fresh: false,
            piece: spec,
            freezing: None,
            piece_switch_interval_ms: 0,
            checkpoint_interval_ms: 1000,
        },
    };
    let raw = vec![9u8; 100];
    let key = layout::log_object(&a.piece.dir, 0, 100);
    store
        .put(&key, Bytes::from(raw.clone()), &ctx.abort)
        .await
        .unwrap();
    let entry = LogObject {
        key: key.clone(),
        start: 0,
        end: 100,
        stored_len: 100,
        compressed: false,
        checksum: manifest::checksum(&raw),
        stored_checksum: manifest::checksum(&raw),
    };
    let known = HashMap::from([(key.clone(), entry.clone())]);
    let found = (0, 100, key.clone());
    assert_eq!(a.describe(&found, &known).await.unwrap(), entry);
    // The file on disk loses its second half.
    let mut file = None;
    for e in walkdir::WalkDir::new(dir.path().join("dest")) {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("log_") {
            file = Some(e.path().to_path_buf());
        }
    }
    let file = file.unwrap();
    std::fs::write(&file, &raw[..50]).unwrap();
    let err = a.describe(&found, &known).await.unwrap_err();
    assert!(matches!(err, WorkerError::Corrupt(_)), "{err}");
}

#[test]
fn the_tail_keeps_the_last_bytes_read() {
    let mut tail = Vec::new();
    remember_tail(&mut tail, b"abc");
    remember_tail(&mut tail, b"def");
    assert_eq!(tail, b"abcdef");
    let big = vec![7u8; TAIL_CHECK + 10];
    remember_tail(&mut tail, &big);
    assert_eq!(tail.len(), TAIL_CHECK);
    remember_tail(&mut tail, b"xy");
    assert_eq!(tail.len(), TAIL_CHECK);
    assert_eq!(&tail[TAIL_CHECK - 2..], b"xy");
}
