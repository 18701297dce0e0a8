//! Piece manifests whose write costs O(new entries) per checkpoint.
//!
//! An open piece's manifest is stored as a base, `clog/round_R/piece_P/manifest`, and a
//! journal, `clog/round_R/piece_P/manifest.d/EPOCH_SEQ`: one [`PieceDelta`] per
//! checkpoint since the base, holding only the log objects and checkpoints that
//! checkpoint added. A checkpoint writes one delta. The base is rewritten (compacted)
//! only when the journal holds as many entries as the base (at least
//! [`JOURNAL_MIN_ENTRIES`]) or [`JOURNAL_MAX_DELTAS`] deltas, so writing costs amortised
//! O(new entries) and a reader never fetches more than [`JOURNAL_MAX_DELTAS`] deltas.
//!
//! The base names the attempt that continues it (`journal`, `tTASK-aATTEMPT`) and the
//! first sequence number (`journal_seq`). Deltas of any other attempt, or out of
//! sequence, are ignored: a late delta of a zombie attempt never joins the piece, and
//! an attempt that takes a piece over starts by writing a base of its own. A frozen
//! manifest is whole, without a journal; sealing deletes the journal.
//!
//! A journaled base has format version [`JOURNAL_FORMAT_VERSION`], so a build that
//! knows only whole manifests refuses it instead of reading a piece cut short.

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use backstop_common::layout;

use crate::ctx::TaskCtx;
use crate::error::Result;
use crate::manifest::{self, FORMAT_VERSION, JOURNAL_FORMAT_VERSION, PieceDelta, PieceManifest};
use crate::storage::TenantStore;

/// Most deltas a journal holds before the base is rewritten.
pub const JOURNAL_MAX_DELTAS: u64 = 128;
/// A journal is compacted by size only once it holds at least this many entries (log
/// objects plus checkpoints), so a small base is not rewritten at every checkpoint.
pub const JOURNAL_MIN_ENTRIES: usize = 64;

/// A piece manifest as stored: the merged manifest and the base's raw bytes.
#[derive(Debug, Clone)]
pub struct StoredPiece {
    /// Base and journal merged: the whole piece as far as it is archived. Its
    /// `journal` is the base's (`None` when the stored manifest is whole).
    pub manifest: PieceManifest,
    /// The stored base, byte for byte (the whole manifest once frozen).
    pub base: Bytes,
}

/// Reads a piece's manifest under `piece_dir`, merging the journal into the base.
/// `None` if the piece has no manifest.
///
/// Errors: `Corrupt` for a manifest or delta that does not parse or whose version is
/// newer than this build's; `Storage` from the object store.
pub async fn read(
    store: &TenantStore,
    piece_dir: &str,
    cancel: &CancellationToken,
) -> Result<Option<StoredPiece>> {
    let key = layout::piece_manifest(piece_dir);
    if !store.exists(&key).await? {
        return Ok(None);
    }
    read_existing(store, piece_dir, cancel).await.map(Some)
}

/// [`read`] for a piece whose manifest must exist: a missing one is a `Storage`
/// (not found) error.
pub async fn read_existing(
    store: &TenantStore,
    piece_dir: &str,
    cancel: &CancellationToken,
) -> Result<StoredPiece> {
    let key = layout::piece_manifest(piece_dir);
    let mut tries = 0;
    loop {
        let base = store.get(&key, cancel).await?;
        match merge(store, piece_dir, &key, base.clone(), cancel).await {
            Ok(manifest) => return Ok(StoredPiece { manifest, base }),
            // The writer compacted its journal while it was read (a new base, the old
            // entries deleted): read again, a bounded number of times.
            Err(e) if tries < 3 && store.get(&key, cancel).await? != base => {
                debug!(dir = piece_dir, error = %e, "piece manifest rewritten while read; reading again");
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn merge(
    store: &TenantStore,
    piece_dir: &str,
    key: &str,
    base: Bytes,
    cancel: &CancellationToken,
) -> Result<PieceManifest> {
    let mut m: PieceManifest = manifest::from_json(&base, key)?;
    manifest::check_version(m.format_version, key)?;
    let Some(epoch) = m.journal.clone().filter(|_| !m.frozen) else {
        return Ok(m);
    };
    let mut entries: Vec<(u64, String)> = store
        .list(&layout::piece_journal_dir(piece_dir))
        .await?
        .into_iter()
        .filter_map(|k| {
            let (e, seq) = layout::parse_piece_journal_entry(&k)?;
            (e == epoch && seq >= m.journal_seq).then_some((seq, k.clone()))
        })
        .collect();
    entries.sort();
    let first = m.journal_seq;
    for (next, (seq, k)) in (first..).zip(entries) {
        if seq != next {
            warn!(key = %k, expected = next, "journal entry out of sequence; the piece ends before it");
            break;
        }
        let d: PieceDelta = manifest::from_json(&store.get(&k, cancel).await?, &k)?;
        manifest::check_version(d.format_version, &k)?;
        if !apply(&mut m, d) {
            warn!(key = %k, checkpoint = m.checkpoint_scn, "journal entry does not continue the piece; it ends before it");
            break;
        }
    }
    Ok(m)
}

/// Applies a delta if it continues the manifest exactly (from its checkpoint, objects
/// contiguous up to the delta's checkpoint); returns whether it did.
fn apply(m: &mut PieceManifest, d: PieceDelta) -> bool {
    if d.from_scn != m.checkpoint_scn || d.checkpoint_scn < d.from_scn {
        return false;
    }
    let mut pos = m.objects.last().map_or(m.start_scn, |o| o.end);
    for o in &d.objects {
        if o.start != pos || o.end <= o.start {
            return false;
        }
        pos = o.end;
    }
    if pos != d.checkpoint_scn && !(d.objects.is_empty() && pos <= d.checkpoint_scn) {
        return false;
    }
    m.objects.extend(d.objects);
    m.checkpoints.extend(d.checkpoints);
    m.checkpoint_scn = d.checkpoint_scn;
    true
}

/// The manifest of `m` as a whole object (no journal), format version 1: what a
/// one-shot copy writes and what sealing writes.
pub fn whole(m: &PieceManifest) -> PieceManifest {
    PieceManifest {
        format_version: FORMAT_VERSION,
        journal: None,
        journal_seq: 0,
        ..m.clone()
    }
}

/// Writes one open piece's manifest for one attempt: the first write is a base naming
/// this attempt, later ones are deltas, and the base is rewritten when the journal is
/// as big as it (see the module docs). Every write is fenced
/// ([`TaskCtx::put_shared`]).
#[derive(Debug)]
pub struct JournalWriter {
    piece_dir: String,
    epoch: String,
    /// `None` until this attempt wrote a base.
    state: Option<Written>,
    /// Manifest bytes this writer stored (bases and deltas).
    bytes_written: u64,
}

#[derive(Debug)]
struct Written {
    /// Entries (objects, checkpoints) stored so far, base and journal.
    objects: usize,
    checkpoints: usize,
    /// Entries in the base.
    base_entries: usize,
    /// Entries and deltas in the journal since the base.
    journal_entries: usize,
    deltas: u64,
    /// Next sequence number, and the checkpoint the last write ended at.
    next_seq: u64,
    checkpoint_scn: u64,
}

impl JournalWriter {
    /// A writer for the piece under `piece_dir`, for the attempt of `ctx`.
    pub fn new(ctx: &TaskCtx, piece_dir: &str) -> JournalWriter {
        JournalWriter {
            piece_dir: piece_dir.to_string(),
            epoch: format!("t{}-a{}", ctx.task_id, ctx.attempt),
            state: None,
            bytes_written: 0,
        }
    }

    /// Manifest bytes this writer has stored, bases and deltas (bytes).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Stores `m`, the whole open piece so far, which must extend what this writer
    /// stored before (the same objects and checkpoints, then new ones). Writes a
    /// delta of the new entries, or a base when none is written yet, when the
    /// journal is due for compaction, or when `m` does not extend what was stored.
    ///
    /// Errors: `Cancelled` or `Stale` from the fence, `Storage` from the put.
    pub async fn write(
        &mut self,
        ctx: &TaskCtx,
        store: &TenantStore,
        m: &PieceManifest,
    ) -> Result<()> {
        let delta = match &self.state {
            Some(w)
                if w.deltas < JOURNAL_MAX_DELTAS
                    && w.journal_entries < w.base_entries.max(JOURNAL_MIN_ENTRIES)
                    && m.objects.len() >= w.objects
                    && m.checkpoints.len() >= w.checkpoints
                    && m.checkpoint_scn >= w.checkpoint_scn =>
            {
                Some((
                    w.next_seq,
                    PieceDelta {
                        format_version: FORMAT_VERSION,
                        from_scn: w.checkpoint_scn,
                        checkpoint_scn: m.checkpoint_scn,
                        objects: m.objects[w.objects..].to_vec(),
                        checkpoints: m.checkpoints[w.checkpoints..].to_vec(),
                    },
                ))
            }
            _ => None,
        };
        let Some((seq, d)) = delta else {
            return self.write_base(ctx, store, m).await;
        };
        let entries = d.objects.len() + d.checkpoints.len();
        let key = layout::piece_journal_entry(&self.piece_dir, &self.epoch, seq);
        let data = manifest::to_json(&d)?;
        self.bytes_written += data.len() as u64;
        ctx.put_shared(store, &key, data).await?;
        if let Some(w) = &mut self.state {
            w.objects = m.objects.len();
            w.checkpoints = m.checkpoints.len();
            w.journal_entries += entries;
            w.deltas += 1;
            w.next_seq = seq + 1;
            w.checkpoint_scn = m.checkpoint_scn;
        }
        Ok(())
    }

    async fn write_base(
        &mut self,
        ctx: &TaskCtx,
        store: &TenantStore,
        m: &PieceManifest,
    ) -> Result<()> {
        let next_seq = self.state.as_ref().map_or(0, |w| w.next_seq);
        let base = PieceManifest {
            format_version: JOURNAL_FORMAT_VERSION,
            frozen: false,
            journal: Some(self.epoch.clone()),
            journal_seq: next_seq,
            ..m.clone()
        };
        let data = manifest::to_json(&base)?;
        self.bytes_written += data.len() as u64;
        ctx.put_shared(store, &layout::piece_manifest(&self.piece_dir), data)
            .await?;
        self.state = Some(Written {
            objects: m.objects.len(),
            checkpoints: m.checkpoints.len(),
            base_entries: m.objects.len() + m.checkpoints.len(),
            journal_entries: 0,
            deltas: 0,
            next_seq,
            checkpoint_scn: m.checkpoint_scn,
        });
        // The entries this base replaces, and any of other attempts, are no longer
        // read: remove them (a failure here only leaves unread entries behind).
        if let Err(e) =
            remove_journal(ctx, store, &self.piece_dir, Some((&self.epoch, next_seq))).await
        {
            debug!(dir = %self.piece_dir, error = %e, "journal entries left behind");
        }
        Ok(())
    }
}

/// Deletes the journal of the piece under `piece_dir`, but the entries of `keep`
/// (`(epoch, from seq)`). Fenced before every delete.
///
/// Errors: `Cancelled` or `Stale` from the fence, `Storage` from the store.
pub async fn remove_journal(
    ctx: &TaskCtx,
    store: &TenantStore,
    piece_dir: &str,
    keep: Option<(&str, u64)>,
) -> Result<u64> {
    let mut n = 0;
    for k in store.list(&layout::piece_journal_dir(piece_dir)).await? {
        let kept = match (layout::parse_piece_journal_entry(&k), keep) {
            (Some((e, seq)), Some((epoch, from))) => e == epoch && seq >= from,
            _ => false,
        };
        if !kept {
            ctx.check_fence()?;
            store.delete(&k).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Whether `key` is a journal entry (for scrubs that keep what a manifest references).
pub fn is_journal_entry(key: &str) -> bool {
    layout::parse_piece_journal_entry(key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::LogObject;
    use backstop_common::{PieceId, RoundId, TaskId, WorkerId};

    fn obj(start: u64, end: u64) -> LogObject {
        LogObject {
            key: layout::log_object("clog/round_1/piece_1", start, end),
            start,
            end,
            stored_len: end - start,
            compressed: false,
            checksum: String::new(),
            stored_checksum: String::new(),
        }
    }

    fn base(objects: Vec<LogObject>) -> PieceManifest {
        let checkpoint_scn = objects.last().map_or(10, |o| o.end);
        PieceManifest {
            format_version: JOURNAL_FORMAT_VERSION,
            round_id: RoundId(1),
            piece_id: PieceId(1),
            start_scn: 10,
            checkpoint_scn,
            frozen: false,
            objects,
            checkpoints: vec![(checkpoint_scn, 1)],
            journal: Some("t1-a1".into()),
            journal_seq: 0,
        }
    }

    fn delta(from: u64, objects: Vec<LogObject>, checkpoint: u64) -> PieceDelta {
        PieceDelta {
            format_version: FORMAT_VERSION,
            from_scn: from,
            checkpoint_scn: checkpoint,
            objects,
            checkpoints: vec![(checkpoint, 2)],
        }
    }

    #[test]
    fn a_delta_applies_only_where_it_continues_the_piece() {
        let mut m = base(vec![obj(10, 20)]);
        assert!(apply(&mut m, delta(20, vec![obj(20, 30)], 30)));
        assert_eq!(m.checkpoint_scn, 30);
        assert_eq!(m.objects.len(), 2);
        // An idle checkpoint: no object, same SCN, a new time stamp.
        assert!(apply(&mut m, delta(30, vec![], 30)));
        assert_eq!(m.checkpoints.len(), 3);
        // A zombie's delta from an older checkpoint, or one that skips log.
        assert!(!apply(&mut m, delta(20, vec![obj(20, 40)], 40)));
        assert!(!apply(&mut m, delta(30, vec![obj(35, 40)], 40)));
        assert!(!apply(&mut m, delta(30, vec![obj(30, 40)], 50)));
        assert_eq!(m.checkpoint_scn, 30);
        assert_eq!(m.objects.len(), 2);
    }

    fn ctx(task_id: TaskId, attempt: u32) -> TaskCtx {
        TaskCtx {
            client: crate::client::MetaClient::new(Vec::new()),
            worker_id: WorkerId(1),
            task_id,
            attempt,
            abort: CancellationToken::new(),
            stop: CancellationToken::new(),
            progress: Default::default(),
            copy_rate: 0,
            lease: std::sync::Arc::new(crate::ctx::AttemptLease::new(
                tokio::time::Instant::now(),
                std::time::Duration::from_secs(600),
            )),
            checkpoint_now: Default::default(),
            allow_hooks: false,
            allowed_paths: Default::default(),
        }
    }

    fn store(dir: &std::path::Path) -> TenantStore {
        TenantStore::open(&backstop_common::task::TenantDest {
            uri: format!("file://{}", dir.display()),
            cluster_name: "c".into(),
            cluster_id: 1,
            incarnation: 1,
            tenant_id: backstop_common::TenantId(1001),
            tenant_name: "t1".into(),
        })
        .unwrap()
    }

    /// Issue 11.10: a piece that stays open for a whole piece's worth of checkpoints
    /// (2,048 entries, about 34 minutes at 1 s checkpoints with log at every one).
    /// Rewriting the manifest at every checkpoint stores ~N/2 times the final
    /// manifest's size; the journal stores a small multiple of it, and a reader sees
    /// exactly the piece after every checkpoint.
    #[tokio::test]
    async fn a_checkpoint_writes_its_new_entries_not_the_whole_piece() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let ctx = ctx(TaskId(7), 1);
        let piece_dir = "clog/round_1/piece_1";
        let mut w = JournalWriter::new(&ctx, piece_dir);
        let mut m = base(vec![]);
        m.format_version = FORMAT_VERSION;
        m.journal = None;
        let mut full_rewrites = 0u64;
        let mut deltas_seen = 0;
        let steps = crate::archive::PIECE_MAX_ENTRIES / 2;
        for i in 0..steps as u64 {
            let start = m.checkpoint_scn;
            m.objects.push(obj(start, start + 100));
            m.checkpoint_scn = start + 100;
            m.checkpoints.push((m.checkpoint_scn, 1_000 + i));
            w.write(&ctx, &store, &m).await.unwrap();
            full_rewrites += manifest::to_json(&whole(&m)).unwrap().len() as u64;
            if i % 97 == 0 || i + 1 == steps as u64 {
                let got = read(&store, piece_dir, &ctx.abort)
                    .await
                    .unwrap()
                    .unwrap()
                    .manifest;
                assert_eq!(got.objects, m.objects, "after checkpoint {i}");
                assert_eq!(got.checkpoints, m.checkpoints, "after checkpoint {i}");
                assert_eq!(got.checkpoint_scn, m.checkpoint_scn);
                let n = store
                    .list(&layout::piece_journal_dir(piece_dir))
                    .await
                    .unwrap()
                    .len();
                assert!(
                    n as u64 <= JOURNAL_MAX_DELTAS,
                    "{n} journal entries to read"
                );
                deltas_seen = deltas_seen.max(n);
            }
        }
        let final_size = manifest::to_json(&whole(&m)).unwrap().len() as u64;
        let written = w.bytes_written();
        assert!(deltas_seen > 0, "checkpoints were written as deltas");
        assert!(
            written <= 20 * final_size,
            "{written} manifest bytes written for a final manifest of {final_size}"
        );
        assert!(
            full_rewrites >= 400 * final_size,
            "rewriting in full would have written {full_rewrites}"
        );
    }

    /// A successor attempt writes a base of its own; a late delta of the attempt
    /// before (a zombie past its fence) is never read into the piece.
    #[tokio::test]
    async fn a_zombies_late_delta_never_joins_the_successors_piece() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let piece_dir = "clog/round_1/piece_1";
        let (old, new) = (ctx(TaskId(7), 1), ctx(TaskId(7), 2));
        let mut m = base(vec![obj(10, 20)]);
        let mut w1 = JournalWriter::new(&old, piece_dir);
        w1.write(&old, &store, &m).await.unwrap();
        // The successor takes over with the same piece so far.
        let mut w2 = JournalWriter::new(&new, piece_dir);
        w2.write(&new, &store, &m).await.unwrap();
        // The zombie writes a delta with log the successor never archived.
        let mut zm = m.clone();
        zm.objects.push(obj(20, 999));
        zm.checkpoint_scn = 999;
        w1.write(&old, &store, &zm).await.unwrap();
        // The successor goes on.
        m.objects.push(obj(20, 30));
        m.checkpoint_scn = 30;
        m.checkpoints.push((30, 5));
        w2.write(&new, &store, &m).await.unwrap();
        let got = read(&store, piece_dir, &new.abort)
            .await
            .unwrap()
            .unwrap()
            .manifest;
        assert_eq!(got.objects, m.objects);
        assert_eq!(got.checkpoint_scn, 30);
        assert_eq!(got.journal.as_deref(), Some("t7-a2"));
    }

    #[test]
    fn a_whole_manifest_has_no_journal_and_version_1() {
        let w = whole(&base(vec![obj(10, 20)]));
        assert_eq!(w.journal, None);
        assert_eq!(w.format_version, FORMAT_VERSION);
        let json = String::from_utf8_lossy(&manifest::to_json(&w).unwrap_or_default()).into_owned();
        assert!(!json.contains("journal"), "{json}");
    }
}
