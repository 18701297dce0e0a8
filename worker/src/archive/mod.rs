//! Log archive: follow a tenant's log and write it into pieces.
//!
//! Exactly-once per piece: a new attempt resumes at the last *committed* checkpoint,
//! deletes any log object beyond it (written by an attempt that never committed),
//! and rewrites the manifest from what remains, so a piece never has a gap or two
//! objects covering the same bytes. Order at each checkpoint: log objects, then the
//! piece manifest, then the fenced `ArchiveCheckpoint` commit.

use backstop_common::RoundId;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backstop_common::Scn;
use backstop_common::layout;
use backstop_common::task::{PieceSpec, TaskOutcome, TenantDest};
use tracing::{info, warn};

use crate::ctx::TaskCtx;
use crate::error::{Result, WorkerError};
use crate::manifest::{self, FORMAT_VERSION, LogObject, PieceManifest};
use crate::pg::PgLog;
use crate::piece_journal::JournalWriter;
use crate::source::{DirSource, TAIL_CHECK};
use crate::storage::TenantStore;

mod pieces;
mod recover;

/// Largest log object, bytes (the format's bound, [`crate::manifest::MAX_LOG_OBJECT_RAW`]).
pub const LOG_OBJECT_MAX: usize = crate::manifest::MAX_LOG_OBJECT_RAW;
/// Most manifest entries (log objects plus checkpoints) one piece holds before it is
/// switched, whatever `log_archive_piece_switch_interval` says (also 0, "one piece per
/// round"). A checkpoint writes only its new entries to the piece's journal
/// ([`crate::piece_journal`]), but the base is rewritten now and then and a reader
/// merges the whole piece, so this bounds both (about 200 bytes an entry, ≈ 400 KB).
pub const PIECE_MAX_ENTRIES: usize = 2048;

/// Whether the active piece switches at this checkpoint: its interval has passed
/// (`interval_ms` > 0), or it holds [`PIECE_MAX_ENTRIES`].
fn piece_full(interval_ms: u64, age_ms: u64, entries: usize) -> bool {
    (interval_ms > 0 && age_ms >= interval_ms) || entries >= PIECE_MAX_ENTRIES
}

/// How often an idle archive polls the source.
const POLL: Duration = Duration::from_millis(20);

/// Arguments of an archive task (from `TaskSpec::Archive`).
#[derive(Debug, Clone)]
pub struct ArchiveArgs {
    /// Source URI.
    pub source: String,
    /// Destination.
    pub dest: TenantDest,
    /// Round.
    pub round_id: RoundId,
    /// Committed checkpoint.
    pub checkpoint_scn: Scn,
    /// Start at the current log end.
    pub fresh: bool,
    /// Active piece.
    pub piece: PieceSpec,
    /// A piece left FREEZING, with its max SCN.
    pub freezing: Option<(PieceSpec, Scn)>,
    /// Piece switch interval, ms (0 = never).
    pub piece_switch_interval_ms: u64,
    /// Checkpoint interval, ms.
    pub checkpoint_interval_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Piece {
    spec: PieceSpec,
    dir: String,
    objects: Vec<LogObject>,
    checkpoints: Vec<(u64, u64)>,
}

impl Piece {
    fn new(spec: PieceSpec, round_id: RoundId) -> Piece {
        let dir = layout::piece_dir(round_id, spec.piece_id);
        Piece {
            spec,
            dir,
            objects: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    fn manifest(&self, round_id: RoundId, checkpoint: u64, frozen: bool) -> PieceManifest {
        PieceManifest {
            format_version: FORMAT_VERSION,
            round_id,
            piece_id: self.spec.piece_id,
            start_scn: self.spec.start_scn.0,
            checkpoint_scn: checkpoint,
            frozen,
            objects: self.objects.clone(),
            checkpoints: self.checkpoints.clone(),
            journal: None,
            journal_seq: 0,
        }
    }
}

/// Where an archive reads its log.
enum LogSource {
    /// `dir://`: segment files; an SCN is a byte offset in the log.
    Dir(DirSource),
    /// PostgreSQL: `pg_wal/` up to the flush LSN, held by the archive's slot; an SCN
    /// is an LSN.
    Pg(std::sync::Arc<PgLog>),
}

impl LogSource {
    async fn open(
        uri: &str,
        tenant_id: u64,
        fresh: bool,
        store: &TenantStore,
    ) -> Result<LogSource> {
        if backstop_common::source::is_postgresql(uri) {
            return Ok(LogSource::Pg(std::sync::Arc::new(
                PgLog::open(uri, tenant_id, fresh, store).await?,
            )));
        }
        Ok(LogSource::Dir(DirSource::open(uri)?))
    }

    /// The end of what may be read now.
    async fn log_end(&self) -> Result<Scn> {
        match self {
            LogSource::Dir(src) => {
                let src = src.clone();
                tokio::task::spawn_blocking(move || src.log_end())
                    .await
                    .map_err(|e| WorkerError::Source(format!("read log end: {e}")))?
            }
            LogSource::Pg(pg) => Ok(Scn(pg.flush().await?)),
        }
    }

    /// Where a fresh round starts: the log end, or for PostgreSQL the start of its
    /// segment (a restore needs the segment whole).
    async fn fresh_start(&self, store: &TenantStore) -> Result<Scn> {
        match self {
            LogSource::Dir(_) => self.log_end().await,
            LogSource::Pg(pg) => {
                let first = store.list("clog").await?.is_empty();
                Ok(Scn(pg.fresh_start(first).await?))
            }
        }
    }

    /// The source's own bytes `[from, from + n)`, for the tail check; PostgreSQL's
    /// WAL is never rewritten in place below the flush LSN, so there is none.
    async fn read_tail(&self, from: u64, n: usize) -> Result<Vec<u8>> {
        match self {
            LogSource::Dir(src) => {
                let src = src.clone();
                tokio::task::spawn_blocking(move || src.read_log(Scn(from), n))
                    .await
                    .map_err(|e| WorkerError::Source(format!("read log: {e}")))?
            }
            LogSource::Pg(_) => Ok(Vec::new()),
        }
    }

    async fn read_after(&self, from: u64, tail: &[u8], max: usize) -> Result<Vec<u8>> {
        match self {
            LogSource::Dir(src) => {
                let src = src.clone();
                let tail = tail.to_vec();
                tokio::task::spawn_blocking(move || src.read_log_after(Scn(from), &tail, max))
                    .await
                    .map_err(|e| WorkerError::Source(format!("read log: {e}")))?
            }
            LogSource::Pg(pg) => pg.read(from, max).await,
        }
    }

    /// Everything below `scn` is committed: PostgreSQL may recycle that WAL.
    async fn durable(&self, scn: u64) {
        if let LogSource::Pg(pg) = self
            && let Err(e) = pg.durable(scn).await
        {
            warn!(error = %e, "could not advance the replication slot");
        }
    }

    /// The round stopped (`NOARCHIVELOG`): PostgreSQL's slot goes.
    async fn stopped(&self) -> Result<()> {
        match self {
            LogSource::Dir(_) => Ok(()),
            LogSource::Pg(pg) => pg.drop_slot().await,
        }
    }
}

struct Archiver<'a> {
    ctx: &'a TaskCtx,
    args: ArchiveArgs,
    store: TenantStore,
    src: LogSource,
    piece: Piece,
    /// Writes the active piece's manifest: a base, then one journal entry per checkpoint.
    journal: JournalWriter,
    /// Committed checkpoint.
    ckpt: u64,
    /// Everything below is in `buffer` or in objects.
    read_end: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
    /// The last bytes read (up to [`TAIL_CHECK`]), ending at `read_end`: compared with
    /// the source before every read, so a log cut back or rewritten under the archive
    /// interrupts the round instead of splicing new bytes onto old ones.
    tail: Vec<u8>,
    /// The last checkpoint time stamped in this round (ms, leader clock): stamps
    /// never go back.
    last_stamp: u64,
    /// When the oldest byte not yet committed was first seen.
    oldest_unarchived: Option<Instant>,
    input_since_report: u64,
    output_since_report: u64,
    last_commit: Instant,
}

/// Runs an archive attempt until it is stopped, aborted, or the log is lost.
pub async fn run_archive(ctx: &TaskCtx, args: ArchiveArgs) -> Result<TaskOutcome> {
    let store = TenantStore::open(&args.dest)?;
    crate::backup::write_tenant_info(&store, &args.dest, &ctx.abort).await?;
    let src = match LogSource::open(&args.source, args.dest.tenant_id.0, args.fresh, &store).await {
        Ok(s) => s,
        Err(WorkerError::LogLost(reason)) => return Ok(TaskOutcome::Interrupted { reason }),
        Err(e) => return Err(e),
    };
    if let LogSource::Pg(pg) = &src {
        let found = crate::pg::PgTimeline {
            system_identifier: pg.system_identifier,
            timeline: pg.timeline,
            history: crate::pg::read_history(&pg.pgdata(), pg.timeline)?.unwrap_or_default(),
        };
        let (inc, name) = (args.dest.incarnation, &args.dest.tenant_name);
        if let Some(reason) =
            crate::pg::claim_timeline(&store, inc, name, &found, &ctx.abort).await?
        {
            return Ok(TaskOutcome::Interrupted { reason });
        }
    }
    let piece = Piece::new(args.piece.clone(), args.round_id);
    let journal = JournalWriter::new(ctx, &piece.dir);
    let ckpt = args.checkpoint_scn.0;
    let mut a = Archiver {
        ctx,
        store,
        src,
        piece,
        journal,
        ckpt,
        read_end: ckpt,
        buffer: Vec::new(),
        buffer_start: ckpt,
        tail: Vec::new(),
        last_stamp: 0,
        oldest_unarchived: None,
        input_since_report: 0,
        output_since_report: 0,
        last_commit: Instant::now(),
        args,
    };
    if let Some((spec, max)) = a.args.freezing.clone() {
        a.finish_freezing(spec, max.0).await?;
    }
    if a.args.fresh {
        let end = a.src.fresh_start(&a.store).await?.0;
        a.ckpt = end;
        a.read_end = end;
        a.buffer_start = end;
        a.piece.spec.start_scn = Scn(end);
        a.commit(None, None).await?;
        info!(
            round = %a.args.round_id,
            start_scn = end,
            "archive round started"
        );
    } else {
        a.recover_piece().await?;
    }
    a.init_tail().await?;
    a.run().await
}

/// A checkpoint's time (ms): the leader's clock when known, else this worker's,
/// never before `last`, the round's previous stamp.
fn checkpoint_stamp(last: u64, leader_now: Option<u64>, local_now: u64) -> u64 {
    last.max(leader_now.unwrap_or(local_now))
}

/// Keeps the last [`TAIL_CHECK`] bytes of `tail` followed by `data`.
fn remember_tail(tail: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= TAIL_CHECK {
        tail.clear();
        tail.extend_from_slice(&data[data.len() - TAIL_CHECK..]);
        return;
    }
    tail.extend_from_slice(data);
    let excess = tail.len().saturating_sub(TAIL_CHECK);
    tail.drain(..excess);
}

impl Archiver<'_> {
    async fn log_end(&self) -> Result<Scn> {
        self.src.log_end().await
    }

    /// The bytes the first read compares with the source: the end of the last log
    /// object of the piece as archived (so a log rewritten between attempts is caught
    /// too), or, without one, the source's own bytes before `read_end`.
    async fn init_tail(&mut self) -> Result<()> {
        if let Some(o) = self.piece.objects.last().cloned() {
            let stored = self.store.get(&o.key, &self.ctx.abort).await?;
            let len = (o.end - o.start) as usize;
            let raw = if o.compressed {
                zstd::bulk::decompress(&stored, len).ok()
            } else {
                Some(stored.to_vec())
            };
            if let Some(raw) = raw.filter(|r| r.len() == len && manifest::checksum(r) == o.checksum)
                && o.end == self.read_end
            {
                remember_tail(&mut self.tail, &raw);
                return Ok(());
            }
        }
        let n = self.read_end.min(TAIL_CHECK as u64);
        let from = self.read_end - n;
        match self.src.read_tail(from, n as usize).await {
            Ok(bytes) if bytes.len() as u64 == n => remember_tail(&mut self.tail, &bytes),
            // Rotated away or already shorter: the first read reports a cut-back.
            Ok(_) | Err(WorkerError::LogLost(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Reads from `from`, first checking that the source still holds the last bytes
    /// read (see [`DirSource::read_log_after`]).
    async fn read(&self, from: u64, max: usize) -> Result<Vec<u8>> {
        self.src.read_after(from, &self.tail, max).await
    }

    async fn run(&mut self) -> Result<TaskOutcome> {
        let interval = Duration::from_millis(self.args.checkpoint_interval_ms.max(100));
        let mut stop_target: Option<u64> = None;
        loop {
            self.ctx.check()?;
            if stop_target.is_none() && self.ctx.stop.is_cancelled() {
                let end = self.log_end().await?.0;
                info!(
                    round = %self.args.round_id,
                    stop_at = end,
                    "stopping archive"
                );
                stop_target = Some(end);
            }
            let data = match self
                .read(
                    self.read_end,
                    LOG_OBJECT_MAX - self.buffer.len().min(LOG_OBJECT_MAX - 1),
                )
                .await
            {
                Ok(d) => d,
                Err(WorkerError::LogLost(reason)) => {
                    return Ok(TaskOutcome::Interrupted { reason });
                }
                Err(e @ WorkerError::LogRewritten(_)) => {
                    warn!(error = %e, "the source log changed under the archive");
                    return Ok(TaskOutcome::Interrupted {
                        reason: e.to_string(),
                    });
                }
                Err(e) => return Err(e),
            };
            let got = data.len();
            if got > 0 {
                if self.oldest_unarchived.is_none() {
                    self.oldest_unarchived = Some(Instant::now());
                }
                self.buffer.extend_from_slice(&data);
                self.read_end += got as u64;
                remember_tail(&mut self.tail, &data);
                self.ctx.progress.add(got as u64);
                self.input_since_report += got as u64;
            }
            if self.buffer.len() >= LOG_OBJECT_MAX {
                self.flush().await?;
            }
            let due = self.last_commit.elapsed() >= interval;
            // The leader asked for a checkpoint (a finished backup waits for the
            // archive to cover it): commit what is read now; the request stays set
            // until something new is committed.
            let asked = self.ctx.checkpoint_now.load(Ordering::SeqCst);
            let draining_done = stop_target.is_some_and(|t| self.read_end >= t);
            // Pieces switch on schedule even when nothing was written: an idle
            // tenant's piece freezes too (its copy, its scrubs and its retention need
            // frozen pieces), with a checkpoint at the same SCN.
            let idle_switch = due
                && stop_target.is_none()
                && self.read_end == self.ckpt
                && self.switch_due().is_some();
            if ((due || asked || draining_done) && self.read_end > self.ckpt) || idle_switch {
                self.ctx.checkpoint_now.store(false, Ordering::SeqCst);
                self.flush().await?;
                let switch = self.switch_due();
                self.commit(switch.clone(), None).await?;
                if let Some(next) = switch {
                    self.switch_piece(next).await?;
                }
            }
            if draining_done && self.read_end == self.ckpt {
                self.freeze_current().await?;
                self.src.stopped().await?;
                return Ok(TaskOutcome::ArchiveStopped {
                    checkpoint_scn: Scn(self.ckpt),
                });
            }
            if got == 0 {
                tokio::select! {
                    _ = self.ctx.abort.cancelled() => return Err(WorkerError::Cancelled),
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
