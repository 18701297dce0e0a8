//! Restore from a destination alone (no metadata service): find the tenant, pick
//! the newest complete set whose `min_restore_scn` ≤ the target, write its datafiles
//! (following the incremental chain through block references), then write the
//! archived log from `start_replay_scn` up to the target as one segment, verifying
//! every checksum. A gap, a missing object or a bad checksum stops the restore with
//! an error naming it; the target directory then still carries
//! `.backstop_restore_in_progress` and no `backstop_restore.json`, so it never looks
//! complete.

use backstop_common::BackupSetId;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use backstop_common::layout;
use backstop_common::task::TenantDest;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::archived_log::write_log;
use crate::backup::read_set_manifest;
use crate::dest_catalog::{complete_sets, find_tenant, piece_manifests};
use crate::error::{Result, WorkerError};
use crate::manifest::PieceManifest;
use crate::restore_plan::{self, Candidate, Target};
use crate::storage::TenantStore;

/// Marker present while a restore is under way (and after one failed).
pub const IN_PROGRESS: &str = ".backstop_restore_in_progress";
/// Written last by a successful restore.
pub const RESTORE_INFO: &str = "backstop_restore.json";

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    /// Destination URI (backup_dest or a backup_backup_dest copy).
    pub dest: String,
    /// Tenant name or id.
    pub tenant: String,
    /// Empty or missing directory to restore into.
    pub to: PathBuf,
    /// Restore up to this SCN (exclusive end of the log written).
    pub until_scn: Option<u64>,
    /// Or up to the last checkpoint at or before this time (ms since the epoch).
    pub until_time_ms: Option<u64>,
    /// Use this set.
    pub backup_set: Option<BackupSetId>,
    /// Restore from this incarnation (default: the newest at the destination). A
    /// PostgreSQL point past a fork is on the old incarnation's timeline.
    pub incarnation: Option<u64>,
    /// PostgreSQL tenants: give the restored data directory to this user (the one
    /// who runs `postgres -D DIR`); default: whoever runs the restore.
    pub owner: Option<String>,
    /// PostgreSQL tenants: where tablespaces go, as `(OLD, NEW)` pairs (OLD is a
    /// tablespace's location when the backup was taken, or its OID; NEW an absolute
    /// directory that is empty or missing), as `pg_basebackup --tablespace-mapping`.
    /// A tablespace not named goes back to its old location, which must then be
    /// empty or missing.
    pub tablespace_map: Vec<(String, String)>,
    /// A worker's roots (`--allow-path`): every tablespace directory the restore
    /// writes, mapped or back at its old location, must be under one. `None`: the
    /// offline `backstop restore`, which writes wherever its user may.
    pub allowed_paths: Option<std::sync::Arc<crate::paths::AllowedPaths>>,
    /// Passwords and master keys for encrypted sets (`--decryption-password-file`).
    pub keys: backstop_common::seal::Keyring,
}

impl RestoreArgs {
    /// A restore of `tenant` from `dest` into `to`, up to `until_scn` (or the
    /// options' time), from `backup_set` when given.
    pub fn new(
        dest: String,
        tenant: String,
        to: PathBuf,
        until_scn: Option<u64>,
        backup_set: Option<BackupSetId>,
        options: backstop_common::task::RestoreOptions,
    ) -> RestoreArgs {
        RestoreArgs {
            dest,
            tenant,
            to,
            until_scn,
            until_time_ms: options.until_time_ms,
            backup_set,
            incarnation: options.incarnation,
            owner: options.owner,
            tablespace_map: options.tablespace_map,
            allowed_paths: None,
            keys: backstop_common::seal::Keyring::default(),
        }
    }
}

/// What a restore did; also written to `backstop_restore.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreInfo {
    /// Tenant id.
    pub tenant_id: u64,
    /// Tenant name.
    pub tenant_name: String,
    /// Incarnation restored (the history the restored cluster has).
    #[serde(default)]
    pub incarnation: u64,
    /// PostgreSQL tenants: when the set is of the incarnation before (a point of
    /// `incarnation` taken before its first set, reached through the fork), that
    /// incarnation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_incarnation: Option<u64>,
    /// Set used.
    pub backup_set_id: BackupSetId,
    /// First SCN of the restored log (the log segment is named after it).
    pub start_replay_scn: u64,
    /// The set's earliest restorable SCN.
    pub min_restore_scn: u64,
    /// The restored log ends here.
    pub until_scn: u64,
    /// Datafiles written.
    pub files: u64,
    /// Datafile bytes written.
    pub data_bytes: u64,
    /// Log bytes written (for PostgreSQL: WAL staged in `pg_wal/`, whole segments).
    pub log_bytes: u64,
    /// What was asked and what that meant: "the latest restorable point", "SCN n",
    /// "time t (ms) → SCN n".
    #[serde(default)]
    pub target: String,
    /// Sets that could not be restored before this one, each with its error.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// PostgreSQL tenants: `until_scn` as an LSN in PostgreSQL's `X/Y` form (the
    /// cluster replays every WAL record that starts before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_lsn: Option<String>,
    /// PostgreSQL tenants: each tablespace restored, with the directory its
    /// `pg_tblspc/OID` link now points at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tablespaces: Vec<crate::pg_restore::RestoredTablespace>,
}

fn prepare_dir(to: &Path) -> Result<()> {
    // A directory left by a failed restore (it still has the marker) is ours to redo.
    if to.join(IN_PROGRESS).exists() {
        crate::pg_restore::clear_tablespaces(to)?;
        std::fs::remove_dir_all(to)
            .map_err(|e| WorkerError::Invalid(format!("clear {}: {e}", to.display())))?;
    }
    if to.exists() {
        let mut entries = std::fs::read_dir(to)
            .map_err(|e| WorkerError::Invalid(format!("{}: {e}", to.display())))?;
        if entries.next().is_some() {
            return Err(WorkerError::Invalid(format!(
                "restore target {} is not empty; restore into an empty or new directory",
                to.display()
            )));
        }
    }
    std::fs::create_dir_all(to.join("data"))
        .map_err(|e| WorkerError::Invalid(format!("{}: {e}", to.display())))?;
    std::fs::create_dir_all(to.join("log"))
        .map_err(|e| WorkerError::Invalid(format!("{}: {e}", to.display())))?;
    std::fs::write(to.join(IN_PROGRESS), b"restore under way or failed\n")
        .map_err(|e| WorkerError::Invalid(format!("{}: {e}", to.display())))
}

/// A small cache of whole objects (restores read blocks mostly in object order).
struct ObjectCache<'a> {
    store: &'a TenantStore,
    cached: VecDeque<(String, Bytes)>,
}

impl ObjectCache<'_> {
    async fn get(&mut self, key: &str, cancel: &CancellationToken) -> Result<Bytes> {
        if let Some((_, b)) = self.cached.iter().find(|(k, _)| k == key) {
            return Ok(b.clone());
        }
        let b = self.store.get(key, cancel).await?;
        if self.cached.len() >= 4 {
            self.cached.pop_front();
        }
        self.cached.push_back((key.to_string(), b.clone()));
        Ok(b)
    }
}

/// Runs a restore: plans the candidates (`restore_plan`), fails before anything is
/// written when none fits, and restores the best one, falling back to the next when a
/// set turns out to be broken (a missing or corrupt object); the result says which
/// set and point it took, and what it fell back from.
pub async fn restore(args: &RestoreArgs, cancel: &CancellationToken) -> Result<RestoreInfo> {
    let dest = find_tenant(&args.dest, &args.tenant, args.incarnation).await?;
    let store = TenantStore::open(&dest)?;
    let pieces = piece_manifests(&store, cancel).await?;
    let sets = complete_sets(&store, cancel).await?;
    let target = match (args.until_scn, args.until_time_ms) {
        (Some(scn), _) => Target::Scn(scn),
        (None, Some(t)) => Target::Time(t),
        (None, None) => Target::Latest,
    };
    let planned = restore_plan::plan(&sets, &pieces, target, args.backup_set);
    // No set of this incarnation reaches the target: a set of the one before may,
    // through the fork (PostgreSQL).
    let across = match &planned {
        Ok(_) => None,
        Err(_) => {
            crate::restore_fork::across_fork(
                &dest,
                &store,
                &pieces,
                target,
                args.backup_set,
                cancel,
            )
            .await?
        }
    };
    let (set_dest, set_store, set_pieces, candidates) = match (planned, &across) {
        (_, Some(a)) => (&a.dest, &a.store, a.pieces.as_slice(), a.candidates.clone()),
        (Ok(c), None) => (&dest, &store, pieces.as_slice(), c),
        (Err(e), None) => {
            return Err(WorkerError::Invalid(format!(
                "tenant {}: {e}",
                dest.tenant_name
            )));
        }
    };
    let fork = across.as_ref().map(|a| crate::pg_restore::Fork {
        tli: a.timeline.timeline,
        history: &a.timeline.history,
        at: a.at,
        store: &store,
        pieces: &pieces,
    });
    let mut fallbacks: Vec<String> = Vec::new();
    for c in &candidates {
        prepare_dir(&args.to)?;
        let restored = restore_candidate(
            set_store,
            set_dest,
            set_pieces,
            c,
            args,
            fork.as_ref(),
            cancel,
        )
        .await
        .map(|mut info| {
            if across.is_some() {
                info.set_incarnation = Some(info.incarnation);
                info.incarnation = dest.incarnation;
            }
            info
        });
        match restored {
            Ok(info) if args.owner.is_some() => {
                // Ownership last, so nothing written after it stays root's.
                let user = args.owner.as_deref().unwrap_or_default();
                give_to(&args.to, user)?;
                for t in &info.tablespaces {
                    give_to(Path::new(&t.location), user)?;
                }
                return finish(args, info, target, fallbacks);
            }
            Ok(info) => return finish(args, info, target, fallbacks),
            Err(e @ (WorkerError::Corrupt(_) | WorkerError::Storage(_))) => {
                warn!(backup_set_id = %c.set.backup_set_id, error = %e, "backup set could not be restored; falling back to the next one");
                fallbacks.push(format!("backup set {}: {e}", c.set.backup_set_id));
            }
            Err(e) => return Err(e),
        }
    }
    Err(WorkerError::Corrupt(format!(
        "no backup set of tenant {} could be restored: {}",
        dest.tenant_name,
        fallbacks.join("; ")
    )))
}

/// Records what was restored (`backstop_restore.json`), makes it durable, then
/// removes the in-progress marker.
fn finish(
    args: &RestoreArgs,
    mut info: RestoreInfo,
    target: Target,
    fallbacks: Vec<String>,
) -> Result<RestoreInfo> {
    info.target = match target {
        Target::Latest => format!("the latest restorable point (SCN {})", info.until_scn),
        Target::Scn(t) => format!("SCN {t}"),
        Target::Time(t) => format!("time {t} ms -> SCN {}", info.until_scn),
    };
    info.fallbacks = fallbacks;
    let json = serde_json::to_vec_pretty(&info).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    std::fs::write(args.to.join(RESTORE_INFO), json)
        .map_err(|e| WorkerError::Invalid(e.to_string()))?;
    // Durable before it looks complete: a crash after the marker is gone must not
    // leave files the page cache never wrote.
    sync_tree(&args.to)?;
    for t in &info.tablespaces {
        sync_tree(Path::new(&t.location))?;
    }
    std::fs::remove_file(args.to.join(IN_PROGRESS))
        .map_err(|e| WorkerError::Invalid(e.to_string()))?;
    sync_dir(&args.to)?;
    Ok(info)
}

/// Gives the restored tree to `user` (uid and gid from the user database).
///
/// Errors: `Invalid` for an unknown user or a chown that fails (restoring for
/// another user needs root).
fn give_to(root: &Path, user: &str) -> Result<()> {
    let u = nix::unistd::User::from_name(user)
        .map_err(|e| WorkerError::Invalid(format!("look up user {user}: {e}")))?
        .ok_or_else(|| WorkerError::Invalid(format!("--owner: no user named '{user}'")))?;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| WorkerError::Invalid(format!("{}: {e}", root.display())))?;
        std::os::unix::fs::lchown(entry.path(), Some(u.uid.as_raw()), Some(u.gid.as_raw()))
            .map_err(|e| {
                WorkerError::Invalid(format!(
                    "chown {} to {user}: {e} (restoring for another user needs root)",
                    entry.path().display()
                ))
            })?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WorkerError::Invalid(format!("fsync {}: {e}", dir.display())))
}

/// fsyncs every file and directory a restore wrote under `root` (its own tree: the
/// datafiles of one set and one log segment, so bounded by the set's manifest).
fn sync_tree(root: &Path) -> Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| WorkerError::Invalid(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| WorkerError::Invalid(format!("{}: {e}", dir.display())))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| WorkerError::Invalid(format!("{}: {e}", path.display())))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| WorkerError::Invalid(format!("fsync {}: {e}", path.display())))?;
            }
        }
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Restores one candidate into `to` (prepared, marker in place).
async fn restore_candidate(
    store: &TenantStore,
    dest: &TenantDest,
    pieces: &[PieceManifest],
    c: &Candidate,
    args: &RestoreArgs,
    fork: Option<&crate::pg_restore::Fork<'_>>,
    cancel: &CancellationToken,
) -> Result<RestoreInfo> {
    let to = args.to.as_path();
    let m = read_set_manifest(store, c.set.backup_set_id, cancel).await?;
    // An encrypted set's keys first: a missing or wrong password fails here, before
    // a file is written (the in-progress marker is already in place).
    let keys = crate::codec::set_keys(
        m.encryption.as_ref(),
        &layout::set_dir(m.backup_set_id, m.backup_type),
        &args.keys,
    )?;
    info!(tenant = %dest.tenant_name, backup_set_id = %c.set.backup_set_id, target = c.until_scn, "restoring");
    let mut cache = ObjectCache {
        store,
        cached: VecDeque::new(),
    };
    // A PostgreSQL set restores as a data directory: its files at the top.
    let files_root = match &m.pg {
        Some(_) => {
            for empty in ["data", "log"] {
                std::fs::remove_dir(to.join(empty))
                    .map_err(|e| WorkerError::Invalid(format!("{}: {e}", to.display())))?;
            }
            to.to_path_buf()
        }
        None => to.join("data"),
    };
    // Tablespace links before the files, which are written through them.
    let tablespaces = match &m.pg {
        Some(pg) => crate::pg_restore::link_tablespaces(
            pg,
            &args.tablespace_map,
            to,
            args.allowed_paths.as_deref(),
        )?,
        None => Vec::new(),
    };
    let mut data_bytes = 0u64;
    let mut blocks = crate::codec::BlockReader::with_keys(keys);
    for f in &m.files {
        if !layout::is_inside(&f.path) {
            return Err(WorkerError::Corrupt(format!(
                "manifest names an unsafe path '{}'",
                f.path
            )));
        }
        let path = files_root.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WorkerError::Invalid(format!("{}: {e}", parent.display())))?;
        }
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .map_err(|e| WorkerError::Invalid(format!("{}: {e}", path.display())))?,
        );
        for b in &f.blocks {
            let obj = cache.get(&b.loc.object, cancel).await?;
            let raw = blocks.block(&obj, b)?;
            out.write_all(&raw)
                .map_err(|e| WorkerError::Invalid(format!("write {}: {e}", path.display())))?;
            data_bytes += raw.len() as u64;
        }
        out.flush()
            .map_err(|e| WorkerError::Invalid(format!("write {}: {e}", path.display())))?;
    }
    let (log_bytes, until_scn) = match &m.pg {
        Some(pg) => {
            let time = args.until_time_ms.filter(|_| args.until_scn.is_none());
            let goal = crate::pg_restore::Goal {
                until_scn: c.until_scn,
                time_ms: time,
                fork,
            };
            if let Some(f) = fork
                && backstop_pg::wal::fork_point(f.history).map(|(p, _)| p) != Some(pg.timeline)
            {
                return Err(WorkerError::Corrupt(format!(
                    "backup set {} is on timeline {}, but timeline {} did not branch from it",
                    c.set.backup_set_id, pg.timeline, f.tli
                )));
            }
            crate::pg_restore::prepare_data_directory(store, pieces, &m, pg, goal, to, cancel)
                .await?
        }
        None => {
            let path = to
                .join("log")
                .join(format!("{:020}.log", m.start_replay_scn));
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .map_err(|e| WorkerError::Invalid(format!("{}: {e}", path.display())))?,
            );
            let n = write_log(
                store,
                pieces,
                m.start_replay_scn,
                c.until_scn,
                cancel,
                |_, b| {
                    out.write_all(b)
                        .map_err(|e| WorkerError::Invalid(format!("write {}: {e}", path.display())))
                },
            )
            .await?;
            out.flush()
                .map_err(|e| WorkerError::Invalid(format!("write {}: {e}", path.display())))?;
            (n, c.until_scn)
        }
    };
    Ok(RestoreInfo {
        tenant_id: dest.tenant_id.0,
        tenant_name: dest.tenant_name.clone(),
        incarnation: dest.incarnation,
        set_incarnation: None,
        backup_set_id: c.set.backup_set_id,
        start_replay_scn: m.start_replay_scn,
        min_restore_scn: m.min_restore_scn,
        until_scn,
        files: m.files.len() as u64,
        data_bytes,
        log_bytes,
        target: String::new(),
        fallbacks: Vec::new(),
        until_lsn: m
            .pg
            .as_ref()
            .map(|_| backstop_pg::Lsn(until_scn).to_string()),
        tablespaces,
    })
}
