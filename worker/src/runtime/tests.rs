//! Unit tests of the worker runtime (`runtime/`).

use backstop_common::{TaskId, WorkerId};
use std::sync::atomic::Ordering;

use backstop_proto::worker::{TaskAction, TaskControl};

use super::heartbeat::{EndedBy, apply_controls};
use super::*;

const MS: Duration = Duration::from_millis(1);

fn running_one(lease: Arc<AttemptLease>) -> (RunningMap, Arc<Running>) {
    let r = Running {
        attempt: 1,
        follower: true,
        abort: CancellationToken::new(),
        stop: CancellationToken::new(),
        ended_by: Arc::new(EndedByCell::default()),
        progress: Arc::new(Progress::default()),
        lease,
        checkpoint_now: Arc::new(AtomicBool::new(false)),
    };
    let shared = Arc::new(Running {
        attempt: r.attempt,
        follower: r.follower,
        abort: r.abort.clone(),
        stop: r.stop.clone(),
        ended_by: r.ended_by.clone(),
        progress: r.progress.clone(),
        lease: r.lease.clone(),
        checkpoint_now: r.checkpoint_now.clone(),
    });
    let map: RunningMap = Arc::new(Mutex::new(HashMap::from([(TaskId(5), r)])));
    (map, shared)
}

#[test]
fn the_fence_counts_from_the_last_renewal_sent_and_never_moves_back() {
    let t0 = Instant::now();
    let l = AttemptLease::new(t0, 300 * MS);
    assert!(l.held_at(t0 + 299 * MS));
    assert!(!l.held_at(t0 + 300 * MS));
    l.renew(t0 + 200 * MS);
    assert!(l.held_at(t0 + 499 * MS));
    assert!(!l.held_at(t0 + 500 * MS));
    l.renew(t0 + 100 * MS);
    assert_eq!(l.deadline(), t0 + 500 * MS);
    assert_eq!(fence_after(Duration::from_millis(2000)), 1500 * MS);
    assert_eq!(fence_after(Duration::from_millis(100)), 50 * MS);
}

/// A meta that accepts the connection and never answers: the heartbeat call stays
/// outstanding. The attempt must be aborted when the fence time is up, not when
/// the call finally fails (the old loop aborted ~560 ms in, at the second failed
/// call, after the leader's 400 ms lease had run out).
#[tokio::test]
async fn an_outstanding_heartbeat_does_not_delay_the_fence() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = MetaClient::new(vec![listener.local_addr().unwrap().to_string()]);
    let lease = Duration::from_millis(400);
    let start = Instant::now();
    let (running, r) = running_one(Arc::new(AttemptLease::new(start, fence_after(lease))));
    let shutdown = CancellationToken::new();
    let beats = tokio::spawn(heartbeat_loop(
        client,
        WorkerId(7),
        running.clone(),
        Arc::new(Notify::new()),
        lease,
        80 * MS,
        shutdown.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(3), r.abort.cancelled())
        .await
        .expect("the attempt was never fenced");
    let took = start.elapsed();
    shutdown.cancel();
    beats.await.unwrap();
    assert!(took >= 300 * MS, "fenced too early: {took:?}");
    assert!(took < 380 * MS, "fenced late: {took:?}");
    assert!(!r.stop.is_cancelled());
    drop(listener);
}

#[test]
fn checkpoint_asks_for_a_commit_and_never_stops_the_task() {
    let (running, r) = running_one(Arc::new(AttemptLease::new(Instant::now(), 300 * MS)));
    let control = |attempt, action: TaskAction| TaskControl {
        task_id: 5,
        attempt,
        action: action.into(),
        reason: String::new(),
    };
    apply_controls(&running, vec![control(2, TaskAction::Checkpoint)]);
    assert!(
        !r.checkpoint_now.load(Ordering::SeqCst),
        "another attempt's"
    );
    apply_controls(&running, vec![control(1, TaskAction::Checkpoint)]);
    assert!(r.checkpoint_now.load(Ordering::SeqCst));
    assert!(!r.abort.is_cancelled());
    assert!(!r.stop.is_cancelled());
    assert_eq!(r.ended_by.get(), EndedBy::Nothing);
}
