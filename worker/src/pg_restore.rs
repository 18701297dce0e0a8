//! Restoring a PostgreSQL set: the set's files become a data directory that a plain
//! `postgres -D DIR` recovers to exactly the target, then promotes.
//!
//! What the directory gets besides the set's files (PostgreSQL's "Recovering Using a
//! Continuous Archive Backup"):
//! - the directories the backup recorded (also `pg_wal/`, whose contents were left
//!   out), and the set's `backup_label`;
//! - a `pg_tblspc/OID` link per tablespace of the set's `tablespace_map`, to its old
//!   location or where `--tablespace-map` says ([`link_tablespaces`]), made before
//!   the files are written through it (as `pg_basebackup`'s plain format does, so no
//!   `tablespace_map` file is written);
//! - the WAL from the start of the segment holding the backup's redo point, staged
//!   in `pg_wal/` as whole segment files (the last one zero-filled after the archived
//!   end, which recovery reads as the end of the WAL);
//! - `recovery.signal`, and `backstop_pg::layout::recovery_settings` appended to
//!   `postgresql.auto.conf`: `recovery_target_lsn` (exclusive) unless the target is
//!   the archived end itself, an explicit `recovery_target_timeline`, promotion, and
//!   `archive_mode = off`; the recovery settings the set's own copy of that file
//!   holds (it was itself restored) are commented out first
//!   (`backstop_pg::layout::recovery_conf`);
//! - mode 0700 on the directory (the server refuses a group- or world-readable one).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backstop_pg::{Lsn, layout as pglayout, wal};
use tokio_util::sync::CancellationToken;

use crate::archived_log::write_log;
use crate::error::{Result, WorkerError};
use crate::manifest::{PgSetInfo, PieceManifest, SetManifest};
use crate::restore_plan;
use crate::storage::TenantStore;

fn io(path: &Path) -> impl Fn(std::io::Error) -> WorkerError + '_ {
    move |e| WorkerError::Invalid(format!("{}: {e}", path.display()))
}

fn safe(rel: &str) -> Result<()> {
    if !backstop_common::layout::is_inside(rel) {
        return Err(WorkerError::Corrupt(format!(
            "manifest names an unsafe path '{rel}'"
        )));
    }
    Ok(())
}

/// Writes WAL into whole segment files of one timeline.
struct WalWriter {
    dir: PathBuf,
    tli: u32,
    seg: u64,
    cur: Option<(u64, std::io::BufWriter<std::fs::File>, PathBuf)>,
}

impl WalWriter {
    fn write(&mut self, mut pos: u64, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let segno = wal::segno(pos, self.seg);
            if self.cur.as_ref().map(|c| c.0) != Some(segno) {
                self.close()?;
                let path = self.dir.join(wal::file_name(self.tli, segno, self.seg));
                let mut f = std::fs::File::create(&path).map_err(io(&path))?;
                let at = pos - segno * self.seg;
                if at > 0 {
                    // Only the first segment can start inside; it never does (rounds
                    // start at a segment start), but keep offsets right regardless.
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(at)).map_err(io(&path))?;
                }
                self.cur = Some((segno, std::io::BufWriter::new(f), path));
            }
            let Some((_, w, path)) = self.cur.as_mut() else {
                return Err(WorkerError::Invalid("WAL writer has no segment".into()));
            };
            let room = (segno + 1) * self.seg - pos;
            let n = room.min(bytes.len() as u64) as usize;
            w.write_all(&bytes[..n]).map_err(io(path))?;
            pos += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Finishes the current segment at its full size (zeros after what was written).
    fn close(&mut self) -> Result<()> {
        if let Some((_, w, path)) = self.cur.take() {
            let f = w.into_inner().map_err(|e| io(&path)(e.into_error()))?;
            f.set_len(self.seg).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// A tablespace a restore recreated: its OID and the directory its link points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoredTablespace {
    /// `pg_tablespace.oid`: the link is `pg_tblspc/OID` in the data directory.
    pub oid: String,
    /// Where the tablespace's files were written (absolute).
    pub location: String,
    /// Its location when the backup was taken.
    pub old_location: String,
}

/// Makes a `pg_tblspc/OID` link in `to` for each tablespace of the set, pointing at
/// its old location or at the new one `map` gives (`(OLD, NEW)`, OLD the old
/// location or the OID). Each directory must be absolute and empty or missing (it is
/// created, mode 0700), so a restore never writes into a live cluster's tablespace.
///
/// Errors: `Invalid`, before anything is written into a tablespace: a mapping that
/// names no tablespace of the set, a relative directory, two tablespaces in one
/// directory, or a directory that is not empty (name it with `--tablespace-map`).
pub(crate) fn link_tablespaces(
    pg: &PgSetInfo,
    map: &[(String, String)],
    to: &Path,
    allowed: Option<&crate::paths::AllowedPaths>,
) -> Result<Vec<RestoredTablespace>> {
    let spaces = pglayout::parse_tablespace_map(&pg.tablespace_map);
    let listed = || {
        let all: Vec<String> = spaces
            .iter()
            .map(|t| format!("{} at {}", t.oid, t.location))
            .collect();
        if all.is_empty() {
            "it has none".to_string()
        } else {
            format!("its tablespaces: {}", all.join(", "))
        }
    };
    for (old, _) in map {
        if !spaces.iter().any(|t| &t.oid == old || &t.location == old) {
            return Err(WorkerError::Invalid(format!(
                "--tablespace-map {old}=…: the backup set has no tablespace with that location or OID ({})",
                listed()
            )));
        }
    }
    let mut out: Vec<RestoredTablespace> = Vec::new();
    for t in &spaces {
        let location = map
            .iter()
            .find(|(old, _)| old == &t.oid || old == &t.location)
            .map_or(t.location.as_str(), |(_, new)| new.as_str());
        let dir = Path::new(location);
        if !dir.is_absolute() {
            return Err(WorkerError::Invalid(format!(
                "tablespace {}: '{location}' is not an absolute directory",
                t.oid
            )));
        }
        if let Some(allowed) = allowed {
            allowed.check(&format!("tablespace {}'s directory", t.oid), location)?;
        }
        if out.iter().any(|o| o.location == location) {
            return Err(WorkerError::Invalid(format!(
                "two tablespaces would be restored into {location}"
            )));
        }
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(WorkerError::Invalid(format!(
                        "tablespace {} would be restored into {location}, which is not empty (a live cluster's tablespace?): give it an empty or new directory with --tablespace-map {}=DIR",
                        t.oid, t.location
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(dir)(e)),
        }
        out.push(RestoredTablespace {
            oid: t.oid.clone(),
            location: location.to_string(),
            old_location: t.location.clone(),
        });
    }
    for t in &out {
        let dir = Path::new(&t.location);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let links = to.join("pg_tblspc");
        std::fs::create_dir_all(&links).map_err(io(&links))?;
        let link = links.join(&t.oid);
        std::os::unix::fs::symlink(dir, &link).map_err(io(&link))?;
    }
    Ok(out)
}

/// Empties the tablespace directories a failed restore into `to` linked from
/// `to/pg_tblspc/` ([`link_tablespaces`] found them empty or missing), so the
/// restore can be redone; the data directory itself is the caller's.
///
/// Errors: `Invalid` for local I/O.
pub(crate) fn clear_tablespaces(to: &Path) -> Result<()> {
    let links = to.join("pg_tblspc");
    let entries = match std::fs::read_dir(&links) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&links)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(&links))?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inside = match std::fs::read_dir(&target) {
            Ok(i) => i,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&target)(e)),
        };
        for item in inside {
            let p = item.map_err(io(&target))?.path();
            let gone = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            gone.map_err(io(&p))?;
        }
    }
    Ok(())
}

/// A restore onto a later incarnation from a set of the one before: the set's
/// timeline is replayed up to the segment where `tli` began, then this incarnation's
/// WAL on timeline `tli` (its first round starts at that segment).
pub(crate) struct Fork<'a> {
    /// The later incarnation's timeline.
    pub tli: u32,
    /// Its history file (`TTTTTTTT.history`), which recovery needs to follow it.
    pub history: &'a str,
    /// The start of the segment holding the switchpoint: the old timeline's WAL is
    /// staged before it, the new one's from it.
    pub at: u64,
    /// The later incarnation's destination and pieces.
    pub store: &'a TenantStore,
    /// Its piece manifests.
    pub pieces: &'a [PieceManifest],
}

/// Where a PostgreSQL restore stops.
#[derive(Clone, Copy)]
pub(crate) struct Goal<'a> {
    /// The planned target (`--until-scn`, or the archive checkpoint a time maps to).
    pub until_scn: u64,
    /// `--until-time`, ms since the Unix epoch.
    pub time_ms: Option<u64>,
    /// The target is on the later incarnation past this fork.
    pub fork: Option<&'a Fork<'a>>,
}

/// Makes `to` (the set's files already written there) a data directory that
/// recovers to `goal.until_scn`, or with `goal.time_ms` (a `--until-time` target) to just
/// before the first transaction that ended after that time (PostgreSQL's
/// `recovery_target_time`, found in the archived WAL: the commit records' own
/// timestamps). Returns the WAL bytes staged and the LSN recovery stops at.
///
/// Errors: `Corrupt` (an unsafe path in the manifest, a gap in the archived WAL, a
/// bad checksum), `Storage`, `Invalid` for local I/O.
pub(crate) async fn prepare_data_directory(
    store: &TenantStore,
    pieces: &[PieceManifest],
    m: &SetManifest,
    pg: &PgSetInfo,
    goal: Goal<'_>,
    to: &Path,
    cancel: &CancellationToken,
) -> Result<(u64, u64)> {
    let fork = goal.fork;
    for d in &pg.dirs {
        safe(d)?;
        let p = to.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let label = to.join("backup_label");
    std::fs::write(&label, &pg.backup_label).map_err(io(&label))?;
    let seg = pg.wal_segment_size.max(1);
    let from = wal::segment_start(m.start_replay_scn, seg);
    let runs = restore_plan::archived_runs(pieces);
    let mut archived_end = restore_plan::reach(&runs, from).ok_or_else(|| {
        WorkerError::Corrupt(format!(
            "the archive does not hold WAL from {} (the start of the segment of the backup's redo point {})",
            Lsn(from),
            Lsn(m.start_replay_scn)
        ))
    })?;
    // Across a fork: the old timeline up to the fork's segment, then the new one.
    let (old_end, tli) = match fork {
        Some(f) => {
            if archived_end < f.at {
                return Err(WorkerError::Corrupt(format!(
                    "the archived WAL of timeline {} from {} reaches {}, short of {} where timeline {} began",
                    pg.timeline,
                    Lsn(from),
                    Lsn(archived_end),
                    Lsn(f.at),
                    f.tli
                )));
            }
            let new_runs = restore_plan::archived_runs(f.pieces);
            archived_end = restore_plan::reach(&new_runs, f.at).ok_or_else(|| {
                WorkerError::Corrupt(format!(
                    "the archive of timeline {} does not hold WAL from {}, where it began",
                    f.tli,
                    Lsn(f.at)
                ))
            })?;
            (f.at.max(from), f.tli)
        }
        None => (archived_end, pg.timeline),
    };
    if archived_end < goal.until_scn {
        return Err(WorkerError::Corrupt(format!(
            "the archived WAL from {} reaches {}, short of the target {}",
            Lsn(from),
            Lsn(archived_end),
            Lsn(goal.until_scn)
        )));
    }
    // Past the target too, so the record the target falls in (or just before) is
    // whole: up to the end of the segment after the target's.
    let stage_end = match goal.time_ms {
        // The transaction that ends the time target may be anywhere after it.
        Some(_) => archived_end,
        None => archived_end.min(wal::segment_start(goal.until_scn, seg) + 2 * seg),
    };
    let pg_wal = to.join("pg_wal");
    std::fs::create_dir_all(&pg_wal).map_err(io(&pg_wal))?;
    if let Some(history) = &pg.timeline_history {
        let path = pg_wal.join(wal::history_file_name(pg.timeline));
        std::fs::write(&path, history).map_err(io(&path))?;
    }
    if let Some(f) = fork {
        let path = pg_wal.join(wal::history_file_name(f.tli));
        std::fs::write(&path, f.history).map_err(io(&path))?;
    }
    let mut w = WalWriter {
        dir: pg_wal.clone(),
        tli: pg.timeline,
        seg,
        cur: None,
    };
    let mut staged = write_log(
        store,
        pieces,
        from,
        stage_end.min(old_end),
        cancel,
        |pos, b| w.write(pos, b),
    )
    .await?;
    w.close()?;
    if let Some(f) = fork
        && stage_end > old_end
    {
        let mut w = WalWriter {
            dir: pg_wal,
            tli: f.tli,
            seg,
            cur: None,
        };
        staged += write_log(f.store, f.pieces, old_end, stage_end, cancel, |pos, b| {
            w.write(pos, b)
        })
        .await?;
        w.close()?;
    }
    // The staged segments: the set's timeline, then past a fork the later one.
    let staged_tlis = backstop_pg::walrec::StagedTimelines {
        tli: pg.timeline,
        later: fork.map(|f| (old_end, f.tli)),
    };
    let until = match goal.time_ms {
        Some(t) => {
            let dir = to.join("pg_wal");
            let (start, not_before) = (m.start_replay_scn, m.min_restore_scn);
            let found = tokio::task::spawn_blocking(move || {
                backstop_pg::walrec::first_xact_after(
                    &dir,
                    staged_tlis,
                    seg,
                    start,
                    stage_end,
                    not_before,
                    t,
                )
            })
            .await
            .map_err(|e| WorkerError::Invalid(e.to_string()))?
            .map_err(|e| WorkerError::Corrupt(format!("scan the staged WAL: {e}")))?;
            // Across a fork the point must be on the later timeline: a transaction
            // that ended after the time before the switchpoint means the time is
            // before the later incarnation began.
            if let (Some(at), Some(f)) = (found, fork)
                && let Some((parent, switch)) = wal::fork_point(f.history)
                && at < switch
            {
                return Err(WorkerError::Invalid(format!(
                    "the time is before timeline {} began (at {}, where it branched from timeline {parent}): restore it from the incarnation before (--incarnation)",
                    f.tli,
                    Lsn(switch)
                )));
            }
            found.unwrap_or(archived_end)
        }
        None => goal.until_scn,
    };
    // Recovery must read the record at the target whole to stop before it; where the
    // archive ends before that record does (the target is the newest committed
    // work), recovering to the end replays the same records: every one before it.
    let whole_after = until < stage_end
        && {
            let dir = to.join("pg_wal");
            let end = stage_end;
            let at = tokio::task::spawn_blocking(move || {
                backstop_pg::walrec::at_target(&dir, staged_tlis, seg, until, end)
            })
            .await
            .map_err(|e| WorkerError::Invalid(e.to_string()))?;
            match at {
                backstop_pg::walrec::AtTarget::Whole => true,
                backstop_pg::walrec::AtTarget::EndsThere => false,
                backstop_pg::walrec::AtTarget::Short => {
                    return Err(WorkerError::Invalid(format!(
                        "the archive ends inside the WAL record that LSN {} falls in: restore to an earlier LSN, or once archiving has passed it",
                        Lsn(until)
                    )));
                }
            }
        };
    let target = (until < archived_end && whole_after).then_some(Lsn(until));
    let conf = to.join("postgresql.auto.conf");
    let existing = match std::fs::read_to_string(&conf) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&conf)(e)),
    };
    std::fs::write(
        &conf,
        pglayout::recovery_conf(&existing, target, tli, false),
    )
    .map_err(io(&conf))?;
    let signal = to.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(io(&signal))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).map_err(io(to))?;
    Ok((staged, until))
}
