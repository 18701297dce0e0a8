//! The non-exclusive hot backup of a PostgreSQL tenant, held in this process between
//! a data backup's prepare task and its finalize task: [`start_backup`] runs
//! `pg_backup_start` on a connection kept here (keyed by the source URI), copy tasks
//! [`touch`] it, [`finish_backup`] runs `pg_backup_stop` and reads what a restore
//! needs, and [`forget_backup`] or the idle sweeper ([`HELD_IDLE`]) ends one whose
//! backup went away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backstop_common::task::FileEntry;
use backstop_pg::Lsn;
use backstop_pg::session::{BackupSession, BackupStop};
use tracing::warn;

use super::{parse, read_history, worker_error};
use crate::error::{Result, WorkerError};
use crate::manifest::PgSetInfo;

/// A hot backup between prepare and finalize.
enum Held {
    Running(BackupSession),
    /// `pg_backup_stop` ran for the backup that started at this LSN; kept so a
    /// retried finalize gets the same answer.
    Stopped(u64, BackupStop),
}

/// One source's hot backup, locked while prepare or finalize works on it.
type HeldSlot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// A held hot backup that no task of its backup touched for this long is ended
/// (its backup was cancelled or failed between tasks, when no task of it ran here to
/// end it): the server then has no backup left in progress. A backup suspended for
/// longer must run again.
pub const HELD_IDLE: Duration = Duration::from_secs(15 * 60);

/// A source's held backup and when a task last used it.
#[derive(Default, Clone)]
struct Entry {
    held: HeldSlot,
    touched: Arc<Mutex<Option<std::time::Instant>>>,
}

fn sessions() -> &'static Mutex<HashMap<String, Entry>> {
    static S: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn slot_of(uri: &str) -> HeldSlot {
    touch(uri);
    lock(sessions())
        .entry(uri.to_string())
        .or_default()
        .held
        .clone()
}

/// Records that a task of the source's backup is working now (copy tasks call it
/// for every file).
pub fn touch(uri: &str) {
    let e = lock(sessions()).entry(uri.to_string()).or_default().clone();
    *lock(&e.touched) = Some(std::time::Instant::now());
}

/// Ends held backups idle for [`HELD_IDLE`]; runs once per process, every minute.
fn start_sweeper() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let entries: Vec<(String, Entry)> = lock(sessions())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (uri, e) in entries {
                let idle = lock(&e.touched).is_none_or(|t| t.elapsed() >= HELD_IDLE);
                if !idle {
                    continue;
                }
                let Ok(mut g) = e.held.try_lock() else {
                    continue;
                };
                if matches!(g.take(), Some(Held::Running(_))) {
                    warn!(
                        source = %backstop_common::source::redact_source(&uri),
                        "ended a hot backup no task used for {} minutes (its backup ended elsewhere)",
                        HELD_IDLE.as_secs() / 60
                    );
                }
            }
        }
    });
}

/// What a base backup's prepare found.
pub struct Started {
    /// `pg_backup_start`'s LSN: the backup checkpoint's redo point.
    pub start_lsn: u64,
    /// The files to copy (sizes at listing time).
    pub files: Vec<FileEntry>,
}

/// Starts a hot backup (`pg_backup_start(label, fast => true)` on a connection held
/// in this process) and lists the data directory. A backup this process still held
/// for the source (an earlier prepare attempt) is ended first by closing its
/// connection: the server then aborts it.
///
/// Errors: `Source` (cannot connect, no privilege for `pg_backup_start`, an
/// unreadable data directory).
pub async fn start_backup(uri: &str, label: &str) -> Result<Started> {
    let src = parse(uri)?;
    let held = slot_of(uri);
    let mut guard = held.lock().await;
    guard.take();
    let client = backstop_pg::connect(&src).await.map_err(worker_error)?;
    let session = BackupSession::start(client, label)
        .await
        .map_err(worker_error)?;
    let start_lsn = session.start_lsn.0;
    *guard = Some(Held::Running(session));
    drop(guard);
    start_sweeper();
    let root = PathBuf::from(&src.pgdata);
    let files = tokio::task::spawn_blocking(move || crate::pg_datadir::list_data_directory(&root))
        .await
        .map_err(|e| WorkerError::Source(e.to_string()))??;
    Ok(Started { start_lsn, files })
}

/// Ends the hot backup prepare started in this process (`pg_backup_stop`); a
/// retried finalize gets the answer of the first.
///
/// Only the backup that started at `start_lsn` (the set's `start_replay_scn`) is
/// ended: a backup this process holds from another set (its prepare ran here, its
/// finalize never did) is closed, so the server aborts it, and never answers for
/// this one.
///
/// Errors: `BackupAborted` when this process holds no live backup of this set for the
/// source (the worker restarted between prepare and finalize, the prepare ran on
/// another worker, or the server ended that connection: the server aborted the
/// backup, so it starts again from its prepare); `Source` when `pg_backup_stop`
/// fails.
pub async fn stop_backup(uri: &str, start_lsn: u64) -> Result<BackupStop> {
    let held = slot_of(uri);
    let mut guard = held.lock().await;
    let other = |held_from: u64| {
        WorkerError::BackupAborted(format!(
            "the hot backup this worker holds started at {}, this set's at {}: its prepare ran elsewhere, so the server has no backup of it here",
            Lsn(held_from),
            Lsn(start_lsn)
        ))
    };
    match guard.take() {
        Some(Held::Running(s)) => {
            if s.start_lsn.0 != start_lsn {
                // Dropping the session closes its connection: that backup ends.
                return Err(other(s.start_lsn.0));
            }
            if !s.is_alive() {
                return Err(WorkerError::BackupAborted(
                    "the connection holding pg_backup_start ended, so the server aborted that backup".into(),
                ));
            }
            let stop = s.stop().await.map_err(worker_error)?;
            *guard = Some(Held::Stopped(start_lsn, stop.clone()));
            Ok(stop)
        }
        Some(Held::Stopped(from, stop)) => {
            if from != start_lsn {
                return Err(other(from));
            }
            *guard = Some(Held::Stopped(from, stop.clone()));
            Ok(stop)
        }
        None => Err(WorkerError::BackupAborted(
            "no hot backup is held for this tenant on this worker (it restarted after the backup's prepare, so the server aborted that backup)".into(),
        )),
    }
}

/// Ends the hot backup ([`stop_backup`]) and reads what a restore of the set needs:
/// the stop LSN (the set's `min_restore_scn`) and [`PgSetInfo`].
///
/// Errors: as [`stop_backup`]; `Source` when the server or the data directory
/// cannot be read.
pub async fn finish_backup(uri: &str, start_lsn: u64) -> Result<(u64, PgSetInfo)> {
    let stop = stop_backup(uri, start_lsn).await?;
    let src = parse(uri)?;
    let client = backstop_pg::connect(&src).await.map_err(worker_error)?;
    let info = backstop_pg::server_info(&client, &src.to_uri(true))
        .await
        .map_err(worker_error)?;
    let root = PathBuf::from(&src.pgdata);
    let (_, dirs) =
        tokio::task::spawn_blocking(move || crate::pg_datadir::walk_data_directory(&root))
            .await
            .map_err(|e| WorkerError::Source(e.to_string()))??;
    let timeline = backup_label_timeline(&stop.backup_label).unwrap_or(info.timeline);
    let timeline_history = read_history(&src.pgdata, timeline)?;
    Ok((
        stop.stop_lsn.0,
        PgSetInfo {
            backup_label: stop.backup_label,
            tablespace_map: stop.tablespace_map,
            dirs,
            timeline,
            wal_segment_size: info.wal_segment_size,
            system_identifier: info.system_identifier,
            timeline_history,
        },
    ))
}

/// The `START TIMELINE:` line of a `backup_label`.
fn backup_label_timeline(label: &str) -> Option<u32> {
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE:"))
        .and_then(|t| t.trim().parse().ok())
}

/// Ends whatever hot backup this process holds for the source (a cancelled or
/// finished backup): closing the connection makes the server abort a running one.
pub async fn forget_backup(uri: &str) {
    let held = slot_of(uri);
    let mut guard = held.lock().await;
    if matches!(guard.take(), Some(Held::Running(_))) {
        warn!("hot backup ended without pg_backup_stop (cancelled); the server aborts it");
    }
}
