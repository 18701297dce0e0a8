//! PostgreSQL tenants on the worker (`postgresql://…?pgdata=/abs/path`,
//! `docs/OPERATIONS.md`). The worker is placed next to the cluster and reads its data
//! directory itself:
//! - [`PgLog`]: the archive's view of the WAL. An SCN is an LSN. The archive streams
//!   the WAL over the replication protocol from the physical replication slot
//!   `backstop_<tenant_id>` (`backstop_pg::stream`), confirming to the server only
//!   what is durable at the destination, so the slot keeps everything else. Where the
//!   server refuses replication connections (no `replication` line in `pg_hba.conf`)
//!   it reads `pg_wal/` up to the flush LSN instead, and advances the slot itself. A
//!   source with `archive=push` has no slot: `backstop wal-push` (the cluster's
//!   `archive_command`) stores finished segments at the destination, and the archive
//!   takes them from there (`crate::wal_push`).
//! - [`hot_backup`]: the non-exclusive hot backup. The connection that ran
//!   `pg_backup_start` is held in this process from a backup's prepare task to its
//!   finalize task (both run here: the tenant's placement), keyed by the source URI.
//! - `crate::pg_datadir`: what a base backup copies (PostgreSQL's documented
//!   exclusion list, `backstop_pg::layout`), tablespaces included.
//! - [`claim_timeline`]: one incarnation holds one timeline of one system, so a
//!   cluster restored under the archive is never spliced onto the old history.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backstop_common::source::PgSource;
use backstop_pg::session;
use backstop_pg::stream::WalStream;
use backstop_pg::{Lsn, PgError, wal};
use tokio_postgres::Client;
use tracing::{info, warn};

pub mod hot_backup;

use crate::error::{Result, WorkerError};
use crate::manifest;
use crate::storage::TenantStore;

/// Parses a PostgreSQL source URI.
///
/// Errors: [`WorkerError::Invalid`] with the parser's message.
pub fn parse(uri: &str) -> Result<PgSource> {
    PgSource::parse(uri).map_err(|(_, m)| WorkerError::Invalid(m))
}

/// Maps a PostgreSQL failure: WAL gone before it was archived is
/// [`WorkerError::LogLost`] (the round goes `INTERRUPTED`), a server that cannot be
/// reached is retryable [`WorkerError::Source`], the rest is `Source` too.
pub fn worker_error(e: PgError) -> WorkerError {
    match e {
        PgError::WalLost(m) => WorkerError::LogLost(m),
        other => WorkerError::Source(other.to_string()),
    }
}

/// The archive's reader of one cluster's WAL.
pub struct PgLog {
    client: Client,
    pg_wal: PathBuf,
    /// The timeline the round follows (the server's when the attempt started).
    pub timeline: u32,
    /// `wal_segment_size`, bytes.
    pub seg_size: u64,
    /// `backstop_<tenant_id>`.
    pub slot: String,
    /// `pg_control_system().system_identifier`.
    pub system_identifier: u64,
    src: PgSource,
    stream: tokio::sync::Mutex<Option<WalStream>>,
    /// Cleared when the server refused streaming: read `pg_wal/` instead.
    streaming: AtomicBool,
    /// `archive=push`: the destination area `wal-push` writes, the segment last read
    /// from it (segment number, bytes), and the first segment not yet removed.
    push: Option<Pushed>,
}

struct Pushed {
    store: TenantStore,
    current: tokio::sync::Mutex<Option<(u64, Vec<u8>)>>,
    kept_from: std::sync::atomic::AtomicU64,
}

impl PgLog {
    /// Connects, reads the server's timeline and segment size, and makes sure the
    /// slot exists (created reserving WAL from now). A `fresh` round replaces a slot
    /// an earlier round left invalidated.
    ///
    /// Errors: `Source` (cannot connect, not the recorded data directory);
    /// `LogLost` when a resumed round's slot was invalidated.
    pub async fn open(
        uri: &str,
        tenant_id: u64,
        fresh: bool,
        store: &TenantStore,
    ) -> Result<PgLog> {
        let src = parse(uri)?;
        let client = backstop_pg::connect(&src).await.map_err(worker_error)?;
        let target = src.to_uri(true);
        let info = backstop_pg::server_info(&client, &target)
            .await
            .map_err(worker_error)?;
        let slot = session::slot_name(tenant_id);
        let push = src.archive_push.then(|| Pushed {
            store: store.clone(),
            current: tokio::sync::Mutex::new(None),
            kept_from: std::sync::atomic::AtomicU64::new(0),
        });
        // With archive=push, archive_command keeps every segment until wal-push
        // stored it: there is no slot.
        if push.is_none() {
            match session::ensure_slot(&client, &slot).await {
                Err(PgError::WalLost(reason)) if fresh => {
                    warn!(%slot, %reason, "replacing the invalidated slot for the new round");
                    session::drop_slot(&client, &slot)
                        .await
                        .map_err(worker_error)?;
                    session::ensure_slot(&client, &slot)
                        .await
                        .map_err(worker_error)?;
                }
                other => {
                    other.map_err(worker_error)?;
                }
            }
        }
        Ok(PgLog {
            client,
            pg_wal: Path::new(&src.pgdata).join("pg_wal"),
            timeline: info.timeline,
            seg_size: info.wal_segment_size,
            slot,
            system_identifier: info.system_identifier,
            src,
            stream: tokio::sync::Mutex::new(None),
            streaming: AtomicBool::new(true),
            push,
        })
    }

    /// The cluster's data directory (the source's `pgdata`).
    pub fn pgdata(&self) -> String {
        self.src.pgdata.clone()
    }

    /// The server's flush LSN: the end of the WAL that may be read.
    ///
    /// Errors: `LogLost` when the server moved to another timeline (it was promoted
    /// or restored under the archive: the round's history ends here).
    pub async fn flush(&self) -> Result<u64> {
        let (lsn, tli) = session::flush_position(&self.client)
            .await
            .map_err(worker_error)?;
        if tli != self.timeline {
            return Err(WorkerError::LogLost(format!(
                "the server switched from timeline {} to timeline {tli} (WAL now at {lsn}): this round's history ends",
                self.timeline
            )));
        }
        Ok(lsn.0)
    }

    /// Where a fresh round starts: the start of the segment holding the flush LSN,
    /// so the first archived segment is whole (recovery reads a segment's first page).
    ///
    /// The first round of an incarnation on a timeline above 1 (a restored, promoted
    /// cluster protected again) starts instead at the segment where the timeline
    /// began (its history file's switchpoint) when `pg_wal/` still holds that
    /// segment: with the WAL from the fork on, a set of the incarnation before
    /// restores to points of this one taken before its own first set.
    pub async fn fresh_start(&self, first_in_incarnation: bool) -> Result<u64> {
        let now = wal::segment_start(self.flush().await?, self.seg_size);
        if !first_in_incarnation || self.push.is_some() {
            return Ok(now);
        }
        let Some((_, fork)) = read_history(&self.src.pgdata, self.timeline)?
            .as_deref()
            .and_then(wal::fork_point)
        else {
            return Ok(now);
        };
        let start = wal::segment_start(fork, self.seg_size);
        let file = self.pg_wal.join(wal::file_name(
            self.timeline,
            wal::segno(start, self.seg_size),
            self.seg_size,
        ));
        if start < now && file.exists() {
            info!(fork = %backstop_pg::Lsn(fork), start = %backstop_pg::Lsn(start), "the incarnation's first round starts where its timeline began");
            return Ok(start);
        }
        Ok(now)
    }

    /// Receives up to about `max` bytes of WAL from `from` (waiting up to 20 ms for
    /// it): streamed, or read from `pg_wal/` where the server refuses streaming.
    ///
    /// Errors: `LogLost` when the WAL at `from` is gone, the slot was invalidated or
    /// the timeline ended; `Source` for other failures.
    pub async fn read(&self, from: u64, max: usize) -> Result<Vec<u8>> {
        if let Some(push) = &self.push {
            return self.read_pushed(push, from, max).await;
        }
        if !self.streaming.load(Ordering::Relaxed) {
            return self.read_files(from, max).await;
        }
        let mut guard = self.stream.lock().await;
        if guard.as_ref().is_none_or(|s| s.next != from || s.ended()) {
            *guard = None;
            let password = self
                .src
                .password
                .clone()
                .or_else(|| backstop_pg::pgpass_lookup(&self.src));
            match WalStream::start(&self.src, password, &self.slot, Lsn(from), self.timeline).await
            {
                Ok(s) => {
                    info!(slot = %self.slot, from = %Lsn(from), "streaming WAL");
                    *guard = Some(s);
                }
                Err(PgError::WalLost(m)) => return Err(self.lost(from, m).await),
                // The slot is still held by a walsender of an attempt that just died:
                // the server lets it go within moments.
                Err(PgError::Query(m)) if m.contains("is active for PID") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(Vec::new());
                }
                Err(e) => {
                    warn!(error = %e, "streaming replication is not available; reading pg_wal/ instead");
                    self.streaming.store(false, Ordering::Relaxed);
                    drop(guard);
                    return self.read_files(from, max).await;
                }
            }
        }
        let Some(s) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        match s.recv_wal(max, Duration::from_millis(20)).await {
            Ok(d) => Ok(d),
            Err(PgError::WalLost(m)) => Err(self.lost(from, m).await),
            Err(e) => {
                // Reconnect on the next read.
                warn!(error = %e, "WAL stream broke; reconnecting");
                *guard = None;
                Ok(Vec::new())
            }
        }
    }

    /// The error for WAL that is gone at `from`, with the slot's state when it says
    /// why.
    async fn lost(&self, from: u64, reason: String) -> WorkerError {
        if let Ok(Some(s)) = session::slot_state(&self.client, &self.slot).await
            && s.wal_status == "lost"
        {
            return WorkerError::LogLost(format!(
                "replication slot {} was invalidated (max_slot_wal_keep_size): WAL from {} on was removed before it was archived ({reason})",
                self.slot,
                Lsn(from)
            ));
        }
        WorkerError::LogLost(reason)
    }

    /// Reads up to `max` bytes of WAL from `from` out of `pg_wal/`, never past the
    /// flush LSN.
    async fn read_files(&self, from: u64, max: usize) -> Result<Vec<u8>> {
        let until = self.flush().await?;
        if until <= from {
            return Ok(Vec::new());
        }
        let (dir, tli, seg) = (self.pg_wal.clone(), self.timeline, self.seg_size);
        let got = tokio::task::spawn_blocking(move || wal::read(&dir, tli, seg, from, until, max))
            .await
            .map_err(|e| WorkerError::Source(format!("read WAL: {e}")))?;
        match got {
            Ok(bytes) => Ok(bytes),
            Err(PgError::WalLost(m)) => Err(self.lost(from, m).await),
            Err(e) => Err(worker_error(e)),
        }
    }

    /// Up to `max` bytes from `from` out of the segment `wal-push` stored for it
    /// (waiting 200 ms when it is not there yet: the server archives a segment once it
    /// is full or switched).
    ///
    /// Errors: `Corrupt` for a stored segment that is not one; `Storage`.
    async fn read_pushed(&self, push: &Pushed, from: u64, max: usize) -> Result<Vec<u8>> {
        let segno = wal::segno(from, self.seg_size);
        let mut current = push.current.lock().await;
        if current.as_ref().is_none_or(|(n, _)| *n != segno) {
            let name = wal::file_name(self.timeline, segno, self.seg_size);
            let key = backstop_common::layout::wal_push(&name);
            if !push.store.exists(&key).await? {
                drop(current);
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(Vec::new());
            }
            let stored = push
                .store
                .get(&key, &tokio_util::sync::CancellationToken::new())
                .await?;
            let raw = decode_pushed(&stored, &key)?;
            if raw.len() as u64 != self.seg_size {
                return Err(WorkerError::Corrupt(format!(
                    "{key} holds {} bytes, not a {}-byte WAL segment",
                    raw.len(),
                    self.seg_size
                )));
            }
            *current = Some((segno, raw));
        }
        let Some((_, raw)) = current.as_ref() else {
            return Ok(Vec::new());
        };
        let at = (from - segno * self.seg_size) as usize;
        let end = at.saturating_add(max).min(raw.len());
        Ok(raw.get(at..end).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// `archive=push`: removes the pushed segments of this timeline that end at or
    /// below `upto` (committed into pieces).
    async fn remove_pushed(&self, push: &Pushed, upto: u64) -> Result<()> {
        let below = wal::segno(upto, self.seg_size);
        if push.kept_from.load(Ordering::Relaxed) >= below {
            return Ok(());
        }
        for key in push
            .store
            .list(backstop_common::layout::WAL_PUSH_DIR)
            .await?
        {
            let name = key.rsplit('/').next().unwrap_or("");
            if let Some((tli, segno)) = wal::parse_file_name(name, self.seg_size)
                && tli == self.timeline
                && segno < below
            {
                push.store.delete(&key).await?;
            }
        }
        push.kept_from.store(below, Ordering::Relaxed);
        Ok(())
    }

    /// Everything below `upto` is durable at the destination: the server may
    /// recycle it. Never moves the slot back.
    pub async fn durable(&self, upto: u64) -> Result<()> {
        if let Some(push) = &self.push {
            return self.remove_pushed(push, upto).await;
        }
        if let Some(s) = self.stream.lock().await.as_mut() {
            return s.status(upto).await.map_err(worker_error);
        }
        let keep = wal::segment_start(upto, self.seg_size);
        session::advance_slot(&self.client, &self.slot, Lsn(keep))
            .await
            .map_err(worker_error)
    }

    /// Ends the stream and drops the slot (`NOARCHIVELOG`: the round stopped).
    pub async fn drop_slot(&self) -> Result<()> {
        if self.push.is_some() {
            return Ok(());
        }
        self.stream.lock().await.take();
        // The walsender lets the slot go moments after the stream closes.
        let mut tries = 0;
        loop {
            match session::drop_slot(&self.client, &self.slot).await {
                Ok(()) => break,
                Err(e) if tries < 50 && e.to_string().contains("is active") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(worker_error(e)),
            }
        }
        info!(slot = %self.slot, "replication slot dropped");
        Ok(())
    }
}

/// `pg_wal/TTTTTTTT.history` of `timeline` in the data directory: `None` on timeline
/// 1 (it has no history) or when the server has removed the file.
///
/// Errors: `Source` when the file exists but cannot be read.
pub fn read_history(pgdata: &str, timeline: u32) -> Result<Option<String>> {
    if timeline <= 1 {
        return Ok(None);
    }
    let path = Path::new(pgdata)
        .join("pg_wal")
        .join(wal::history_file_name(timeline));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WorkerError::Source(format!("read {}: {e}", path.display()))),
    }
}

/// The bytes of an object `backstop wal-push` stored (`crate::wal_push`).
///
/// Errors: `Corrupt` when it is not a zstd frame.
pub fn decode_pushed(stored: &[u8], key: &str) -> Result<Vec<u8>> {
    zstd::decode_all(stored).map_err(|e| WorkerError::Corrupt(format!("{key}: not zstd: {e}")))
}

/// What `info/pg_timeline` records: the one PostgreSQL system and timeline whose
/// history an incarnation's directory holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgTimeline {
    /// `pg_control_system().system_identifier`.
    pub system_identifier: u64,
    /// The timeline every set and piece of the incarnation is on.
    pub timeline: u32,
    /// `pg_wal/TTTTTTTT.history` of that timeline (empty on timeline 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub history: String,
}

/// Records `found` as the incarnation's system and timeline when nothing is recorded
/// yet; otherwise checks that it is the recorded one. Returns why not: the server
/// was restored or promoted under the archive (another timeline), or it is another
/// cluster (another system), and its WAL must not be added to this history.
///
/// Errors: `Storage` or `Corrupt` when `info/pg_timeline` cannot be read or written.
pub async fn claim_timeline(
    store: &TenantStore,
    incarnation: u64,
    tenant_name: &str,
    found: &PgTimeline,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<String>> {
    let key = backstop_common::layout::PG_TIMELINE;
    if !store.exists(key).await? {
        store.put(key, manifest::to_json(found)?, cancel).await?;
        return Ok(None);
    }
    let had: PgTimeline = manifest::from_json(&store.get(key, cancel).await?, key)?;
    if had.system_identifier != found.system_identifier {
        return Ok(Some(format!(
            "the server is PostgreSQL system {}, but incarnation {incarnation} of tenant {tenant_name} holds system {}: it is another database",
            found.system_identifier, had.system_identifier
        )));
    }
    if had.timeline != found.timeline {
        return Ok(Some(format!(
            "the server is on timeline {}, but incarnation {incarnation} of tenant {tenant_name} holds timeline {} (the cluster was restored or promoted): run ALTER TENANT {tenant_name} SOURCE = '…' to open incarnation {} for it",
            found.timeline,
            had.timeline,
            incarnation + 1
        )));
    }
    Ok(None)
}
