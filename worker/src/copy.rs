//! Backup-of-backup: copies of sets and pieces from `backup_dest` to a copy
//! destination at the same keys, the continuous archive copy, and the clean task
//! that removes what a cancelled or failed job left.
//!
//! Every object is read whole from the source, its xxh3 checksum recomputed and
//! compared with the manifest before it is written, so a copy never propagates a
//! corrupt object. Objects already at the destination are re-read and re-verified,
//! never trusted by name (`docs/OPERATIONS.md`, backup-of-backup). Manifests, markers and index entries are
//! written last, in that order, so a copy is either complete or invisible to restore.

use backstop_common::{BackupSetId, PieceId, RoundId};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use backstop_common::Scn;
use backstop_common::codec::encode;
use backstop_common::layout;
use backstop_common::task::{CleanItem, CopyProgress, TaskOutcome, TenantDest};
use backstop_proto::worker::ReportArchiveRequest;
use futures::StreamExt;
use tracing::{debug, info};

use crate::backup::write_tenant_info;
use crate::ctx::TaskCtx;
use crate::error::{Result, WorkerError};
use crate::manifest::{self, LogObject, PieceManifest, SetIndex, SetManifest};
use crate::piece_journal::{self, JournalWriter};
use crate::storage::TenantStore;

/// Objects copied at once by one task.
const PARALLEL_OBJECTS: usize = 8;
/// How often the continuous archive copy looks for new log.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Copies one object if the destination does not already hold a verified copy.
/// Returns (bytes read, bytes written, reused).
async fn copy_object(
    ctx: &TaskCtx,
    src: &TenantStore,
    dst: &TenantStore,
    key: &str,
    want: &str,
) -> Result<(u64, u64, bool)> {
    if dst.exists(key).await? {
        match dst.get(key, &ctx.abort).await {
            Ok(have) if manifest::checksum(&have) == want => {
                ctx.progress.add(have.len() as u64);
                return Ok((0, 0, true));
            }
            Ok(_) | Err(WorkerError::Corrupt(_)) => {
                debug!(
                    key,
                    "object at the copy destination fails its checksum; copying it again"
                );
            }
            Err(e) => return Err(e),
        }
    }
    let data = src.get(key, &ctx.abort).await?;
    if manifest::checksum(&data) != want {
        return Err(WorkerError::Corrupt(format!(
            "{key} at {}: checksum mismatch; the source object is corrupt, nothing was copied",
            src.shown()
        )));
    }
    let n = data.len() as u64;
    backstop_common::failpoint!("copy::before_upload", WorkerError::Storage);
    dst.put(key, data, &ctx.abort).await?;
    backstop_common::failpoint!("copy::after_upload", WorkerError::Storage);
    ctx.progress.add(n);
    Ok((n, n, false))
}

/// Paces a copy task to `ctx.copy_rate` bytes per second (cancellable).
struct Pace {
    start: std::time::Instant,
    bytes: std::sync::atomic::AtomicU64,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            start: std::time::Instant::now(),
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn after(&self, ctx: &TaskCtx, n: u64) -> Result<()> {
        if ctx.copy_rate == 0 {
            return Ok(());
        }
        let total = self
            .bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            + n;
        let due = Duration::from_secs_f64(total as f64 / ctx.copy_rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            tokio::select! {
                _ = ctx.abort.cancelled() => return Err(WorkerError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }
}

/// Copies `(key, checksum)` objects, [`PARALLEL_OBJECTS`] at a time.
async fn copy_all(
    ctx: &TaskCtx,
    src: &TenantStore,
    dst: &TenantStore,
    wanted: Vec<(String, String)>,
) -> Vec<Result<(u64, u64, bool)>> {
    let pace = &Pace::new();
    futures::stream::iter(wanted.into_iter().map(|(key, sum)| async move {
        let r = copy_object(ctx, src, dst, &key, &sum).await?;
        pace.after(ctx, r.1).await?;
        Ok(r)
    }))
    .buffer_unordered(PARALLEL_OBJECTS)
    .collect()
    .await
}

/// `CopySet`: one backup set to the copy destination.
pub async fn copy_set(
    ctx: &TaskCtx,
    src: &TenantDest,
    dst: &TenantDest,
    backup_set_id: BackupSetId,
) -> Result<TaskOutcome> {
    let src_store = TenantStore::open(src)?;
    let dst_store = TenantStore::open(dst)?;
    let index_key = layout::set_index(backup_set_id);
    let index_bytes = src_store.get(&index_key, &ctx.abort).await?;
    let index: SetIndex = manifest::from_json(&index_bytes, &index_key)?;
    let manifest_key = layout::set_manifest(&index.set_dir);
    let manifest_bytes = src_store.get(&manifest_key, &ctx.abort).await?;
    if manifest::checksum(&manifest_bytes) != index.manifest_checksum {
        return Err(WorkerError::Corrupt(format!(
            "{manifest_key} at {}: checksum does not match {index_key}",
            src_store.shown()
        )));
    }
    let m: SetManifest = manifest::from_json(&manifest_bytes, &manifest_key)?;
    manifest::check_version(m.format_version, &manifest_key)?;
    let marker_key = layout::set_complete(&index.set_dir);
    let marker = src_store.get(&marker_key, &ctx.abort).await?;
    let total: u64 = m.objects.iter().map(|o| o.size).sum();
    ctx.progress
        .total
        .store(total, std::sync::atomic::Ordering::Relaxed);
    write_tenant_info(&dst_store, dst, &ctx.abort).await?;
    let wanted: Vec<(String, String)> = m
        .objects
        .iter()
        .map(|o| (o.key.clone(), o.checksum.clone()))
        .collect();
    let results = copy_all(ctx, &src_store, &dst_store, wanted).await;
    let (mut input, mut output, mut reused) = (0, 0, 0);
    for r in results {
        let (i, o, re) = r?;
        input += i;
        output += o;
        reused += u64::from(re);
    }
    ctx.check()?;
    ctx.put_shared(&dst_store, &manifest_key, manifest_bytes)
        .await?;
    backstop_common::failpoint!("copy::before_marker", WorkerError::Storage);
    ctx.put_shared(&dst_store, &marker_key, marker).await?;
    ctx.put_shared(&dst_store, &index_key, index_bytes).await?;
    info!(
        %backup_set_id,
        objects = m.objects.len(),
        reused,
        bytes = output,
        "backup set copied"
    );
    Ok(TaskOutcome::SetCopied {
        input_bytes: input,
        output_bytes: output,
        reused_objects: reused,
    })
}

/// `CopyPiece`: one piece, frozen whole or active up to its manifest's checkpoint.
pub async fn copy_piece(
    ctx: &TaskCtx,
    src: &TenantDest,
    dst: &TenantDest,
    round_id: RoundId,
    piece_id: PieceId,
) -> Result<TaskOutcome> {
    let src_store = TenantStore::open(src)?;
    let dst_store = TenantStore::open(dst)?;
    let dir = layout::piece_dir(round_id, piece_id);
    let key = layout::piece_manifest(&dir);
    let stored = piece_journal::read_existing(&src_store, &dir, &ctx.abort).await?;
    let m = stored.manifest;
    // A frozen manifest byte for byte; an open one whole, as far as it is archived.
    let bytes = if m.frozen {
        stored.base
    } else {
        manifest::to_json(&piece_journal::whole(&m))?
    };
    let total: u64 = m.objects.iter().map(|o| o.stored_len).sum();
    ctx.progress
        .total
        .store(total, std::sync::atomic::Ordering::Relaxed);
    write_tenant_info(&dst_store, dst, &ctx.abort).await?;
    let wanted: Vec<(String, String)> = m
        .objects
        .iter()
        .map(|o| (o.key.clone(), o.stored_checksum.clone()))
        .collect();
    let results = copy_all(ctx, &src_store, &dst_store, wanted).await;
    let mut copied = 0;
    for r in results {
        copied += r?.1;
    }
    ctx.check()?;
    ctx.put_shared(&dst_store, &key, bytes).await?;
    piece_journal::remove_journal(ctx, &dst_store, &dir, None).await?;
    if m.frozen {
        let marker_key = layout::piece_frozen(&dir);
        let marker = src_store.get(&marker_key, &ctx.abort).await?;
        backstop_common::failpoint!("copy::before_marker", WorkerError::Storage);
        ctx.put_shared(&dst_store, &marker_key, marker).await?;
        let index_key = layout::piece_index(round_id, piece_id);
        let index = src_store.get(&index_key, &ctx.abort).await?;
        ctx.put_shared(&dst_store, &index_key, index).await?;
    }
    info!(
        %round_id,
        %piece_id,
        checkpoint = m.checkpoint_scn,
        frozen = m.frozen,
        "backup piece copied"
    );
    Ok(TaskOutcome::PieceCopied {
        start_scn: Scn(m.start_scn),
        checkpoint_scn: Scn(m.checkpoint_scn),
        frozen: m.frozen,
        bytes: copied,
    })
}

/// What the continuous copy knows about one piece at the copy destination.
#[derive(Debug, Default)]
struct CopiedPiece {
    /// Objects in the copy's manifest, in SCN order.
    objects: Vec<LogObject>,
    /// The copy is complete (frozen manifest, marker and index written).
    done: bool,
    /// The checkpoint this attempt last wrote and reported for the piece.
    reported: Option<u64>,
    /// Writes the copy's manifest while the piece is open (created at the first write).
    journal: Option<JournalWriter>,
}

/// `ArchiveCopy`: follows the primary archive until stopped (`STOP BACKUP
/// ARCHIVELOG`), copying each piece's new objects in SCN order and then rewriting
/// the copy's manifest to cover exactly what is copied. Stops between objects, so
/// the copy always ends at a consistent checkpoint; resumes from the copy's own
/// manifests, so there is no gap and no duplicate.
pub async fn archive_copy(
    ctx: &TaskCtx,
    src: &TenantDest,
    dst: &TenantDest,
) -> Result<TaskOutcome> {
    let src_store = TenantStore::open(src)?;
    let dst_store = TenantStore::open(dst)?;
    write_tenant_info(&dst_store, dst, &ctx.abort).await?;
    let mut pieces: BTreeMap<(u64, u64), CopiedPiece> = BTreeMap::new();
    loop {
        ctx.check()?;
        if ctx.stop.is_cancelled() {
            info!("continuous archive copy paused");
            return Ok(TaskOutcome::ArchiveCopyStopped);
        }
        let mut found: Vec<(u64, u64)> = Vec::new();
        for key in src_store.list("clog").await? {
            if let Some(dir) = key.strip_suffix("/manifest")
                && let Some((round, piece)) = parse_piece_dir(dir)
            {
                found.push((round, piece));
            }
        }
        found.sort_unstable();
        for (round_id, piece_id) in found {
            if ctx.stop.is_cancelled() {
                break;
            }
            let state = match pieces.entry((round_id, piece_id)) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(
                    load_copied(ctx, &dst_store, RoundId(round_id), PieceId(piece_id)).await?,
                ),
            };
            if state.done {
                continue;
            }
            follow_piece(
                ctx,
                &src_store,
                &dst_store,
                RoundId(round_id),
                PieceId(piece_id),
                state,
            )
            .await?;
        }
        tokio::select! {
            _ = ctx.abort.cancelled() => return Err(WorkerError::Cancelled),
            _ = ctx.stop.cancelled() => {}
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

fn parse_piece_dir(dir: &str) -> Option<(u64, u64)> {
    let rest = dir.strip_prefix("clog/round_")?;
    let (round, piece) = rest.split_once("/piece_")?;
    Some((round.parse().ok()?, piece.parse().ok()?))
}

async fn load_copied(
    ctx: &TaskCtx,
    dst: &TenantStore,
    round_id: RoundId,
    piece_id: PieceId,
) -> Result<CopiedPiece> {
    let dir = layout::piece_dir(round_id, piece_id);
    let Some(stored) = piece_journal::read(dst, &dir, &ctx.abort).await? else {
        return Ok(CopiedPiece::default());
    };
    let m = stored.manifest;
    let done = m.frozen && dst.exists(&layout::piece_index(round_id, piece_id)).await?;
    Ok(CopiedPiece {
        objects: m.objects,
        done,
        reported: None,
        journal: None,
    })
}

/// Copies what the primary has beyond the copy's manifest, then reports.
async fn follow_piece(
    ctx: &TaskCtx,
    src: &TenantStore,
    dst: &TenantStore,
    round_id: RoundId,
    piece_id: PieceId,
    state: &mut CopiedPiece,
) -> Result<()> {
    let dir = layout::piece_dir(round_id, piece_id);
    let key = layout::piece_manifest(&dir);
    let stored = piece_journal::read_existing(src, &dir, &ctx.abort).await?;
    let (m, bytes) = (stored.manifest, stored.base);
    let have: HashSet<&str> = state.objects.iter().map(|o| o.key.as_str()).collect();
    let todo: Vec<LogObject> = m
        .objects
        .iter()
        .filter(|o| !have.contains(o.key.as_str()))
        .cloned()
        .collect();
    // A piece is sealed once its `.frozen` marker and index entry exist: the archiver
    // writes the frozen manifest first, so a manifest that says frozen may be read
    // before them (or the archiver died in between and its successor seals it). Until
    // then, follow it like an open piece.
    let marker_key = layout::piece_frozen(&dir);
    let index_key = layout::piece_index(round_id, piece_id);
    let sealed = m.frozen && src.exists(&marker_key).await? && src.exists(&index_key).await?;
    let complete_now = sealed && todo.is_empty();
    // Nothing new since this attempt's last report. The first pass over a piece
    // always writes and reports, so what the primary has already archived (an idle
    // tenant's piece whose next checkpoint may never come, or one without a single
    // log object yet) is copied and reported at once.
    let have_end = state.objects.last().map_or(m.start_scn, |o| o.end);
    if todo.is_empty() && !complete_now && state.reported == Some(have_end) {
        return Ok(());
    }
    let mut bytes_copied = 0;
    for o in todo {
        // Between objects only: the copy's manifest always ends at a whole object.
        if ctx.stop.is_cancelled() {
            break;
        }
        let (_, written, _) = copy_object(ctx, src, dst, &o.key, &o.stored_checksum).await?;
        Pace::new().after(ctx, written).await?;
        bytes_copied += written;
        state.objects.push(o);
    }
    let checkpoint = state.objects.last().map_or(m.start_scn, |o| o.end);
    let frozen = sealed && state.objects.len() == m.objects.len();
    let copy = PieceManifest {
        format_version: m.format_version,
        round_id,
        piece_id,
        start_scn: m.start_scn,
        checkpoint_scn: checkpoint,
        frozen,
        objects: state.objects.clone(),
        checkpoints: m
            .checkpoints
            .iter()
            .copied()
            .filter(|(scn, _)| *scn <= checkpoint)
            .collect(),
        journal: None,
        journal_seq: 0,
    };
    if frozen {
        // The primary's own manifest, byte for byte, once everything is here.
        ctx.put_shared(dst, &key, bytes).await?;
        piece_journal::remove_journal(ctx, dst, &dir, None).await?;
        let marker = src.get(&marker_key, &ctx.abort).await?;
        backstop_common::failpoint!("copy::before_marker", WorkerError::Storage);
        ctx.put_shared(dst, &marker_key, marker).await?;
        let index = src.get(&index_key, &ctx.abort).await?;
        ctx.put_shared(dst, &index_key, index).await?;
        state.done = true;
    } else {
        state
            .journal
            .get_or_insert_with(|| JournalWriter::new(ctx, &dir))
            .write(ctx, dst, &copy)
            .await?;
    }
    let primary_ms = m
        .checkpoints
        .iter()
        .filter(|(scn, _)| *scn >= checkpoint)
        .map(|(_, ms)| *ms)
        .next()
        .or_else(|| m.checkpoints.last().map(|(_, ms)| *ms))
        .unwrap_or_else(now_ms);
    let progress = CopyProgress {
        round_id,
        piece_id,
        start_scn: Scn(m.start_scn),
        checkpoint_scn: Scn(checkpoint),
        frozen,
        bytes: bytes_copied,
        // Checkpoint times are the leader's clock: measure the lag on it too.
        lag_ms: ctx
            .client
            .leader_clock
            .now_ms()
            .unwrap_or_else(now_ms)
            .saturating_sub(primary_ms),
    };
    report_copy(ctx, &progress).await?;
    state.reported = Some(checkpoint);
    debug!(
        %round_id,
        %piece_id,
        checkpoint,
        frozen,
        lag_ms = progress.lag_ms,
        "archive copy checkpoint"
    );
    info!(
        target: "backstop::copy_lag",
        lag_ms = progress.lag_ms,
        checkpoint,
        "archive copy checkpoint"
    );
    Ok(())
}

async fn report_copy(ctx: &TaskCtx, progress: &CopyProgress) -> Result<()> {
    let bytes = encode(progress).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let req = ReportArchiveRequest {
        task_id: ctx.task_id.0,
        attempt: ctx.attempt,
        worker_id: ctx.worker_id.0,
        progress: bytes,
    };
    ctx.client
        .worker(|mut c| {
            let r = req.clone();
            async move { c.report_copy(r).await }
        })
        .await
        .map_err(WorkerError::from)
        .map(|_| ())
}

/// `Clean`: deletes what a job left. The index entry goes first, so no index ever
/// points into a half-deleted directory. Items that fail are reported, not fatal.
pub async fn clean(ctx: &TaskCtx, dest: &TenantDest, items: &[CleanItem]) -> Result<TaskOutcome> {
    let store = TenantStore::open(dest)?;
    let mut deleted = 0;
    let mut failed = Vec::new();
    for item in items {
        match clean_item(ctx, &store, item).await {
            Ok(n) => deleted += n,
            Err(WorkerError::Cancelled) => return Err(WorkerError::Cancelled),
            Err(e) => failed.push(format!("{}: {e}", item.dir)),
        }
    }
    info!(
        deleted,
        failed = failed.len(),
        dest = store.shown(),
        "clean done"
    );
    Ok(TaskOutcome::Cleaned { deleted, failed })
}

async fn clean_item(ctx: &TaskCtx, store: &TenantStore, item: &CleanItem) -> Result<u64> {
    if let Some(index) = &item.index {
        ctx.check_fence()?;
        store.delete(index).await?;
    }
    backstop_common::failpoint!("clean::during_cleanup", WorkerError::Storage);
    let mut keep: HashSet<String> = HashSet::new();
    if item.keep_referenced {
        // A piece's or a set's manifest (both list `objects[].key`): keep it, its
        // marker and what it references; without a manifest keep nothing but refuse
        // to delete, since the directory may still be being written.
        let key = format!("{}/manifest", item.dir);
        if !store.exists(&key).await? {
            return Err(WorkerError::Invalid(format!(
                "{key} is missing: not scrubbing a directory without its manifest"
            )));
        }
        let m: serde_json::Value = manifest::from_json(&store.get(&key, &ctx.abort).await?, &key)?;
        keep.extend(
            m["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["key"].as_str().map(str::to_string)),
        );
        // An open piece's journal continues its manifest: keep it and what it
        // references too (it is deleted when the piece is sealed).
        if m["journal"].is_string() && m["frozen"] != serde_json::Value::Bool(true) {
            let stored = piece_journal::read_existing(store, &item.dir, &ctx.abort).await?;
            keep.extend(stored.manifest.objects.into_iter().map(|o| o.key));
            for k in store.list(&layout::piece_journal_dir(&item.dir)).await? {
                if piece_journal::is_journal_entry(&k) {
                    keep.insert(k);
                }
            }
        }
        keep.insert(key);
        keep.insert(layout::piece_frozen(&item.dir));
        keep.insert(layout::set_complete(&item.dir));
    }
    let mut n = 0;
    for key in store.list(&item.dir).await? {
        ctx.check_fence()?;
        if keep.contains(&key) {
            continue;
        }
        store.delete(&key).await?;
        n += 1;
    }
    // Nothing writes here any more (a finished, cancelled or deleted directory):
    // staging files of writers killed mid-upload go too.
    n += store.remove_staging(&item.dir).await?;
    Ok(n)
}
