//! Data backup, in three task kinds (user-managed hot backup, `docs/OPERATIONS.md`):
//! prepare (log end → `start_replay_scn`, `begin_backup` hook, list datafiles), copy
//! (one part of the files: blocks checksummed, unchanged blocks of an incremental
//! referenced in the base set, the rest compressed into objects), finalize
//! (`end_backup` hook, log end → `min_restore_scn`, merge part manifests, remove
//! objects no manifest references, write the set manifest, then `.complete`, then the
//! index entry).

use backstop_common::BackupSetId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::time::Duration;

use backstop_common::Scn;
use backstop_common::layout;
use backstop_common::task::{BackupType, FileEntry, TaskOutcome, TenantDest};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::ctx::TaskCtx;
use crate::error::{Result, WorkerError};
use crate::manifest::{
    self, BlockEntry, FileManifest, Loc, OBJECT_TARGET, ObjectEntry, PartManifest,
    SET_FORMAT_VERSION, SetIndex, SetManifest, TenantInfo,
};
use crate::source::{DataFiles, DirSource};
use crate::storage::TenantStore;

/// How long a hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes read from a datafile per step (cancellation is checked between steps).
const READ_STEP: usize = 4 * 1024 * 1024;

/// Writes `info/tenant` once, so a destination names its tenants.
pub async fn write_tenant_info(
    store: &TenantStore,
    dest: &TenantDest,
    cancel: &CancellationToken,
) -> Result<()> {
    if store.exists(layout::TENANT_INFO).await? {
        return Ok(());
    }
    let info = TenantInfo {
        tenant_id: dest.tenant_id.0,
        tenant_name: dest.tenant_name.clone(),
        cluster_name: dest.cluster_name.clone(),
        cluster_id: dest.cluster_id,
        incarnation: dest.incarnation,
    };
    store
        .put(layout::TENANT_INFO, manifest::to_json(&info)?, cancel)
        .await
}

/// Prepare: `start_replay_scn`, then the hook, then the file list. For a PostgreSQL
/// tenant: `pg_backup_start` (its LSN is `start_replay_scn`; hooks do not apply),
/// then the data directory's listing.
pub async fn prepare(ctx: &TaskCtx, source: &str, begin_hook: Option<&str>) -> Result<TaskOutcome> {
    if backstop_common::source::is_postgresql(source) {
        let label = format!("backstop task {} attempt {}", ctx.task_id, ctx.attempt);
        let started = crate::pg::hot_backup::start_backup(source, &label).await?;
        if let Err(e) = ctx.check() {
            crate::pg::hot_backup::forget_backup(source).await;
            return Err(e);
        }
        info!(
            files = started.files.len(),
            start_lsn = %backstop_pg::Lsn(started.start_lsn),
            "PostgreSQL hot backup started"
        );
        return Ok(TaskOutcome::Prepared {
            start_replay_scn: Scn(started.start_lsn),
            files: started.files,
        });
    }
    let src = DirSource::open(source)?;
    let start_replay_scn = src.log_end()?;
    if let Some(hook) = begin_hook {
        src.run_hook("begin_backup", hook, HOOK_TIMEOUT, ctx.allow_hooks)
            .await?;
    }
    ctx.check()?;
    let files = src.list_datafiles()?;
    info!(
        files = files.len(),
        start_replay_scn = start_replay_scn.0,
        "backup prepared"
    );
    Ok(TaskOutcome::Prepared {
        start_replay_scn,
        files,
    })
}

/// Arguments of a copy task.
#[derive(Debug, Clone)]
pub struct CopyArgs {
    /// Source URI.
    pub source: String,
    /// Destination.
    pub dest: TenantDest,
    /// Set.
    pub backup_set_id: BackupSetId,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base set.
    pub base_set_id: Option<BackupSetId>,
    /// Part.
    pub part: u32,
    /// Files.
    pub files: Vec<FileEntry>,
    /// zstd level.
    pub compression_level: i32,
    /// An encrypted set's data key: every frame is sealed with it (None: in the clear).
    pub seal: Option<backstop_common::seal::DataKey>,
}

/// Reads the set manifest of `set_id` (via its index entry).
pub async fn read_set_manifest(
    store: &TenantStore,
    set_id: BackupSetId,
    cancel: &CancellationToken,
) -> Result<SetManifest> {
    let index_key = layout::set_index(set_id);
    let index: SetIndex = manifest::from_json(&store.get(&index_key, cancel).await?, &index_key)?;
    let key = layout::set_manifest(&index.set_dir);
    let data = store.get(&key, cancel).await?;
    if manifest::checksum(&data) != index.manifest_checksum {
        return Err(WorkerError::Corrupt(format!(
            "{key}: checksum does not match {index_key}"
        )));
    }
    let m: SetManifest = manifest::from_json(&data, &key)?;
    manifest::check_version(m.format_version, &key)?;
    Ok(m)
}

struct ObjectWriter<'a> {
    store: &'a TenantStore,
    set_dir: String,
    part: u32,
    attempt: u32,
    seq: u64,
    buf: Vec<u8>,
    objects: Vec<ObjectEntry>,
    output_bytes: u64,
    compressor: crate::codec::BlockCompressor,
    /// The raw bytes of the open frame, and its blocks: (file, block, offset in the
    /// frame), indexes into the part's files.
    frame: Vec<u8>,
    members: Vec<(usize, usize, u32)>,
    /// The set's data key when it is encrypted, and how many frames this attempt has
    /// sealed (each frame's nonce counter).
    seal: Option<backstop_common::seal::DataKey>,
    frames: u32,
}

impl ObjectWriter<'_> {
    fn current_key(&self) -> String {
        layout::data_object(&self.set_dir, self.part, self.attempt, self.seq)
    }

    /// Adds block `block` of file `file` (indexes into `files`) to the open frame;
    /// its location is filled in when the frame is written.
    fn add(
        &mut self,
        files: &mut [FileManifest],
        file: usize,
        block: usize,
        raw: &[u8],
    ) -> Result<()> {
        self.members.push((file, block, self.frame.len() as u32));
        self.frame.extend_from_slice(raw);
        if self.frame.len() >= manifest::FRAME_TARGET {
            self.write_frame(files)?;
        }
        Ok(())
    }

    /// Compresses the open frame into the current object and gives its blocks their
    /// locations; a frame of one block is stored as that block alone.
    fn write_frame(&mut self, files: &mut [FileManifest]) -> Result<()> {
        if self.members.is_empty() {
            return Ok(());
        }
        let (mut stored, compressed) = self.compressor.compress(&self.frame)?;
        let single = self.members.len() == 1;
        let frame_len = self.frame.len() as u32;
        let object = self.current_key();
        let offset = self.buf.len() as u64;
        if let Some(key) = &self.seal {
            let n = self.frames;
            self.frames = n.checked_add(1).ok_or_else(|| {
                WorkerError::Invalid("a part attempt sealed 2^32 frames; split the part".into())
            })?;
            stored = crate::codec::seal_frame(
                key,
                (self.part, self.attempt, n),
                &object,
                offset,
                &stored,
            )?;
        }
        let loc = Loc {
            object,
            offset,
            len: stored.len() as u64,
            compressed,
            frame_len: if single { 0 } else { frame_len },
            frame_offset: 0,
            sealed: self.seal.is_some(),
        };
        self.buf.extend_from_slice(&stored);
        for (file, block, offset) in self.members.drain(..) {
            if let Some(b) = files.get_mut(file).and_then(|f| f.blocks.get_mut(block)) {
                b.loc = Loc {
                    frame_offset: if single { 0 } else { offset },
                    ..loc.clone()
                };
            }
        }
        self.frame.clear();
        Ok(())
    }

    /// Writes the open frame, then uploads the current object when it has reached
    /// [`OBJECT_TARGET`] (`all`: whatever it holds).
    async fn flush(
        &mut self,
        files: &mut [FileManifest],
        all: bool,
        cancel: &CancellationToken,
    ) -> Result<()> {
        if all {
            self.write_frame(files)?;
        }
        if self.buf.is_empty() || (!all && self.buf.len() < OBJECT_TARGET) {
            return Ok(());
        }
        let key = self.current_key();
        let data = std::mem::take(&mut self.buf);
        self.objects.push(ObjectEntry {
            key: key.clone(),
            size: data.len() as u64,
            checksum: manifest::checksum(&data),
        });
        self.output_bytes += data.len() as u64;
        backstop_common::failpoint!("backup::before_upload", WorkerError::Storage);
        self.store.put(&key, Bytes::from(data), cancel).await?;
        backstop_common::failpoint!("backup::after_upload", WorkerError::Storage);
        self.seq += 1;
        Ok(())
    }
}

/// Copy: one part of the files.
pub async fn copy(ctx: &TaskCtx, a: CopyArgs) -> Result<TaskOutcome> {
    let store = TenantStore::open(&a.dest)?;
    write_tenant_info(&store, &a.dest, &ctx.abort).await?;
    let src = DataFiles::open(&a.source)?;
    let block_size = manifest::block_size_for(&a.source);
    let set_dir = layout::set_dir(a.backup_set_id, a.backup_type);
    let (base, base_start): (HashMap<String, FileManifest>, u64) =
        match (a.backup_type, a.base_set_id) {
            (BackupType::Incremental, Some(base_id)) => {
                let m = read_set_manifest(&store, base_id, &ctx.abort).await?;
                let files = m.files.into_iter().map(|f| (f.path.clone(), f)).collect();
                (files, m.start_replay_scn)
            }
            _ => (HashMap::new(), 0),
        };
    // PostgreSQL relation pages whose LSN is below the base set's start were not
    // changed by any WAL record since before the base was copied, so the base's copy
    // is the page (hint bits aside): they are referenced without comparing content.
    let by_page_lsn = matches!(src, DataFiles::Pg(_)) && base_start > 0;
    ctx.progress.total.store(
        a.files.iter().map(|f| f.size).sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut writer = ObjectWriter {
        store: &store,
        set_dir: set_dir.clone(),
        part: a.part,
        attempt: ctx.attempt,
        seq: 0,
        buf: Vec::new(),
        objects: Vec::new(),
        output_bytes: 0,
        compressor: crate::codec::BlockCompressor::new(a.compression_level)?,
        frame: Vec::new(),
        members: Vec::new(),
        seal: a.seal.clone(),
        frames: 0,
    };
    let mut files: Vec<FileManifest> = Vec::new();
    let mut input_bytes = 0u64;
    for entry in &a.files {
        if let DataFiles::Pg(_) = &src {
            crate::pg::hot_backup::touch(&a.source);
        }
        let mut file = match src.open_file(&entry.path) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                return Err(WorkerError::Invalid(format!(
                    "datafile {} vanished or became unreadable during backup: {e}",
                    entry.path
                )));
            }
        };
        let base_blocks = base
            .get(&entry.path)
            .map(|f| f.blocks.as_slice())
            .unwrap_or(&[]);
        let by_lsn = by_page_lsn && backstop_pg::layout::is_relation_main_fork(&entry.path);
        let fi = files.len();
        files.push(FileManifest {
            path: entry.path.clone(),
            size: 0,
            blocks: Vec::new(),
        });
        let mut size = 0u64;
        loop {
            ctx.check()?;
            let (f, chunk) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; READ_STEP];
                let mut got = 0;
                while got < READ_STEP {
                    match file.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return (file, Err(e)),
                    }
                }
                buf.truncate(got);
                (file, Ok(buf))
            })
            .await
            .map_err(|e| WorkerError::Source(e.to_string()))?;
            file = f;
            let chunk =
                chunk.map_err(|e| WorkerError::Source(format!("read {}: {e}", entry.path)))?;
            if chunk.is_empty() {
                break;
            }
            for raw in chunk.chunks(block_size) {
                let Some(blocks) = files.get_mut(fi).map(|f| &mut f.blocks) else {
                    break;
                };
                let index = blocks.len();
                if let Some(b) = base_blocks.get(index)
                    && by_lsn
                    && raw.len() == block_size
                    && b.raw_len as usize == block_size
                    && backstop_pg::layout::page_lsn(raw).is_some_and(|lsn| lsn < base_start)
                {
                    blocks.push(b.clone());
                    continue;
                }
                let sum = manifest::checksum(raw);
                if let Some(b) = base_blocks.get(index)
                    && b.checksum == sum
                    && b.raw_len as usize == raw.len()
                {
                    blocks.push(b.clone());
                    continue;
                }
                blocks.push(BlockEntry {
                    raw_len: raw.len() as u32,
                    checksum: sum,
                    loc: Loc::default(),
                });
                writer.add(&mut files, fi, index, raw)?;
                writer.flush(&mut files, false, &ctx.abort).await?;
            }
            size += chunk.len() as u64;
            input_bytes += chunk.len() as u64;
            ctx.progress.add(chunk.len() as u64);
            if chunk.len() < READ_STEP {
                break;
            }
        }
        if let Some(f) = files.get_mut(fi) {
            f.size = size;
        }
    }
    writer.flush(&mut files, true, &ctx.abort).await?;
    let part = PartManifest {
        format_version: SET_FORMAT_VERSION,
        backup_set_id: a.backup_set_id,
        part: a.part,
        attempt: ctx.attempt,
        files,
        objects: writer.objects,
        input_bytes,
        output_bytes: writer.output_bytes,
    };
    store
        .put(
            &layout::part_manifest(&set_dir, a.part, ctx.attempt),
            manifest::to_json_zstd(&part)?,
            &ctx.abort,
        )
        .await?;
    debug!(
        part = a.part,
        input_bytes,
        output_bytes = part.output_bytes,
        "part copied"
    );
    Ok(TaskOutcome::Copied {
        input_bytes,
        output_bytes: part.output_bytes,
    })
}

/// Arguments of a finalize task.
#[derive(Debug, Clone)]
pub struct FinalizeArgs {
    /// Source URI.
    pub source: String,
    /// Destination.
    pub dest: TenantDest,
    /// Set.
    pub backup_set_id: BackupSetId,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base set.
    pub base_set_id: Option<BackupSetId>,
    /// (part, attempt) to merge.
    pub parts: Vec<(u32, u32)>,
    /// From prepare.
    pub start_replay_scn: Scn,
    /// Hook.
    pub end_hook: Option<String>,
    /// An encrypted set's wrapped keys, for its manifest (None: in the clear).
    pub encryption: Option<manifest::SetEncryption>,
}

async fn already_complete(
    store: &TenantStore,
    set_id: BackupSetId,
    set_dir: &str,
    ctx: &TaskCtx,
) -> Result<Option<TaskOutcome>> {
    let marker = layout::set_complete(set_dir);
    if !store.exists(&marker).await? {
        return Ok(None);
    }
    let want = store.get(&marker, &ctx.abort).await?;
    let key = layout::set_manifest(set_dir);
    let data = store.get(&key, &ctx.abort).await?;
    let checksum = manifest::checksum(&data);
    if want.as_ref() != checksum.as_bytes() {
        return Ok(None);
    }
    let m: SetManifest = manifest::from_json(&data, &key)?;
    if m.backup_set_id != set_id {
        return Ok(None);
    }
    // The index entry is written after the marker: make sure it is there.
    let index = SetIndex {
        backup_set_id: set_id,
        backup_type: m.backup_type,
        base_set_id: m.base_set_id,
        start_replay_scn: m.start_replay_scn,
        min_restore_scn: m.min_restore_scn,
        set_dir: set_dir.to_string(),
        manifest_checksum: checksum.clone(),
    };
    ctx.put_shared(
        store,
        &layout::set_index(set_id),
        manifest::to_json(&index)?,
    )
    .await?;
    info!(backup_set_id = %set_id, "backup set was already complete");
    Ok(Some(TaskOutcome::Finalized {
        min_restore_scn: Scn(m.min_restore_scn),
        input_bytes: m.input_bytes,
        output_bytes: m.output_bytes,
        file_count: m.files.len() as u64,
        manifest_checksum: checksum,
    }))
}

/// Finalize: hook, `min_restore_scn`, merge, clean, manifest, marker, index.
pub async fn finalize(ctx: &TaskCtx, a: FinalizeArgs) -> Result<TaskOutcome> {
    let is_pg = backstop_common::source::is_postgresql(&a.source);
    let src = if is_pg {
        None
    } else {
        Some(DirSource::open(&a.source)?)
    };
    if let (Some(src), Some(hook)) = (&src, &a.end_hook) {
        src.run_hook("end_backup", hook, HOOK_TIMEOUT, ctx.allow_hooks)
            .await?;
    }
    let store = TenantStore::open(&a.dest)?;
    let set_dir = layout::set_dir(a.backup_set_id, a.backup_type);
    // An earlier attempt may have finished the set before its report got through:
    // a matching `.complete` means the set is done; answer what it recorded.
    if let Some(done) = already_complete(&store, a.backup_set_id, &set_dir, ctx).await? {
        return Ok(done);
    }
    ctx.check()?;
    let (min_restore_scn, pg) = match &src {
        Some(src) => (src.log_end()?, None),
        None => {
            let (stop, info) =
                crate::pg::hot_backup::finish_backup(&a.source, a.start_replay_scn.0).await?;
            let found = crate::pg::PgTimeline {
                system_identifier: info.system_identifier,
                timeline: info.timeline,
                history: info.timeline_history.clone().unwrap_or_default(),
            };
            let (inc, name) = (a.dest.incarnation, &a.dest.tenant_name);
            if let Some(reason) =
                crate::pg::claim_timeline(&store, inc, name, &found, &ctx.abort).await?
            {
                return Err(WorkerError::Invalid(reason));
            }
            (Scn(stop), Some(info))
        }
    };
    let mut files = BTreeMap::new();
    let mut objects = Vec::new();
    let (mut input_bytes, mut output_bytes) = (0, 0);
    let mut keep: HashSet<String> = HashSet::new();
    for (part, attempt) in &a.parts {
        let key = layout::part_manifest(&set_dir, *part, *attempt);
        let m: PartManifest = manifest::from_json(&store.get(&key, &ctx.abort).await?, &key)?;
        manifest::check_version(m.format_version, &key)?;
        input_bytes += m.input_bytes;
        output_bytes += m.output_bytes;
        keep.insert(key);
        for o in &m.objects {
            keep.insert(o.key.clone());
        }
        objects.extend(m.objects);
        for f in m.files {
            files.insert(f.path.clone(), f);
        }
    }
    // Objects of attempts that never reported (crashed, lease lost) are unreferenced.
    // Only part objects and part manifests are candidates: never the set's own
    // manifest or marker.
    let part_prefix = format!("{set_dir}/part_");
    for key in store.list(&set_dir).await? {
        if key.starts_with(&part_prefix) && !keep.contains(&key) {
            ctx.check_fence()?;
            debug!(%key, "removing unreferenced object");
            store.delete(&key).await?;
        }
    }
    ctx.check()?;
    let file_count = files.len() as u64;
    let m = SetManifest {
        format_version: if a.encryption.is_some() {
            manifest::SEALED_FORMAT_VERSION
        } else {
            SET_FORMAT_VERSION
        },
        tenant_id: a.dest.tenant_id.0,
        backup_set_id: a.backup_set_id,
        backup_type: a.backup_type,
        base_set_id: a.base_set_id,
        start_replay_scn: a.start_replay_scn.0,
        min_restore_scn: min_restore_scn.0,
        block_size: manifest::block_size_for(&a.source) as u64,
        files: files.into_values().collect(),
        objects,
        input_bytes,
        output_bytes,
        pg,
        encryption: a.encryption.clone(),
    };
    let data = manifest::to_json_zstd(&m)?;
    let manifest_checksum = manifest::checksum(&data);
    ctx.put_shared(&store, &layout::set_manifest(&set_dir), data)
        .await?;
    backstop_common::failpoint!("backup::before_marker", WorkerError::Storage);
    ctx.put_shared(
        &store,
        &layout::set_complete(&set_dir),
        Bytes::from(manifest_checksum.clone()),
    )
    .await?;
    let index = SetIndex {
        backup_set_id: a.backup_set_id,
        backup_type: a.backup_type,
        base_set_id: a.base_set_id,
        start_replay_scn: a.start_replay_scn.0,
        min_restore_scn: min_restore_scn.0,
        set_dir: set_dir.clone(),
        manifest_checksum: manifest_checksum.clone(),
    };
    ctx.put_shared(
        &store,
        &layout::set_index(a.backup_set_id),
        manifest::to_json(&index)?,
    )
    .await?;
    if is_pg {
        crate::pg::hot_backup::forget_backup(&a.source).await;
    }
    info!(
        backup_set_id = %a.backup_set_id,
        min_restore_scn = min_restore_scn.0,
        files = file_count,
        "backup set complete"
    );
    Ok(TaskOutcome::Finalized {
        min_restore_scn,
        input_bytes,
        output_bytes,
        file_count,
        manifest_checksum,
    })
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
