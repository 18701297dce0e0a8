//! What a base backup copies from the data directory, and what a restore writes
//! for recovery.
//!
//! Left out, as PostgreSQL documents for base backups ("Backing Up the Data
//! Directory" and `pg_basebackup`): the contents of `pg_wal/` (the archive provides
//! WAL), `pg_replslot/`, `pg_dynshmem/`, `pg_notify/`, `pg_serial/`,
//! `pg_snapshots/`, `pg_stat_tmp/` and `pg_subtrans/`; the files `postmaster.pid`,
//! `postmaster.opts`, `backup_label`, `tablespace_map`, `backup_manifest`,
//! `postgresql.auto.conf.tmp`, `current_logfiles.tmp` and every `pg_internal.init`;
//! anything named `pgsql_tmp*` (temporary files). The directories themselves are
//! kept (recorded and recreated on restore), with `pg_wal/archive_status/`.

/// Directories whose contents a base backup leaves out.
pub const EXCLUDED_CONTENTS: &[&str] = &[
    "pg_wal",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
];

/// Files a base backup leaves out wherever they are.
pub const EXCLUDED_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "pg_internal.init",
];

/// Whether the file at `rel` (relative to the data directory, `/`-separated) is
/// copied.
pub fn copies_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.starts_with("pgsql_tmp") || rel.split('/').any(|p| p.starts_with("pgsql_tmp")) {
        return false;
    }
    if EXCLUDED_FILES.contains(&name) && (!rel.contains('/') || name == "pg_internal.init") {
        return false;
    }
    let top = rel.split('/').next().unwrap_or("");
    !(rel.contains('/') && EXCLUDED_CONTENTS.contains(&top))
}

/// Whether the directory at `rel` is recorded (and recreated on restore).
pub fn keeps_dir(rel: &str) -> bool {
    if rel.split('/').any(|p| p.starts_with("pgsql_tmp")) {
        return false;
    }
    let mut parts = rel.split('/');
    let top = parts.next().unwrap_or("");
    match parts.next() {
        None => true,
        Some(_) if rel == "pg_wal/archive_status" => true,
        Some(_) => !EXCLUDED_CONTENTS.contains(&top),
    }
}

/// The tablespace OID when `rel` is a tablespace link: `pg_tblspc/OID` (PostgreSQL
/// keeps one symlink per tablespace there, pointing at its `LOCATION`).
pub fn tablespace_link(rel: &str) -> Option<&str> {
    let oid = rel.strip_prefix("pg_tblspc/")?;
    (!oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit())).then_some(oid)
}

/// One line of a `tablespace_map` (what `pg_backup_stop` returns as its third
/// column): a tablespace's OID and the absolute directory its link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceLink {
    /// `pg_tablespace.oid`, the name of the link in `pg_tblspc/`.
    pub oid: String,
    /// The tablespace's `LOCATION` when the backup was taken.
    pub location: String,
}

/// Parses a `tablespace_map`: one `OID PATH` line per tablespace, where PostgreSQL
/// escapes a newline, carriage return or backslash in the path with a backslash.
/// Lines that are not `OID PATH` are skipped.
pub fn parse_tablespace_map(text: &str) -> Vec<TablespaceLink> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars();
    let mut end_line = |line: &mut String| {
        if let Some((oid, location)) = line.split_once(' ')
            && tablespace_link(&format!("pg_tblspc/{oid}")).is_some()
            && !location.is_empty()
        {
            out.push(TablespaceLink {
                oid: oid.to_string(),
                location: location.to_string(),
            });
        }
        line.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => line.extend(chars.next()),
            '\n' => end_line(&mut line),
            c => line.push(c),
        }
    }
    end_line(&mut line);
    out
}

/// Whether `rel` is a segment of a relation's main fork (`base/DB/RELFILENODE[.N]`,
/// `global/RELFILENODE[.N]`, or the same under `pg_tblspc/`): the files whose pages
/// an incremental may take from its base by page LSN. The other forks are not: the
/// free space map is never WAL-logged, and clearing a visibility map bit does not
/// advance the map page's LSN, so their pages are compared by content instead.
pub fn is_relation_main_fork(rel: &str) -> bool {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let file_ok = match name.split_once('.') {
        Some((node, seg)) => numeric(node) && numeric(seg),
        None => numeric(name),
    };
    file_ok
        && match parts.as_slice() {
            ["global"] => true,
            ["base", db] => numeric(db),
            ["pg_tblspc", spc, _version, db] => numeric(spc) && numeric(db),
            _ => false,
        }
}

/// A page's `pd_lsn`: the end of the last WAL record that changed it. `None` for a
/// page that is new (all zeros, or `pd_upper` 0: `PageIsNew`) or has no LSN, which
/// says nothing about when it changed. `page` is one whole page (8 KiB); the header
/// is in the server's byte order (little-endian here).
pub fn page_lsn(page: &[u8]) -> Option<u64> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(page.get(at..at + 4)?.try_into().ok()?))
    };
    let upper = u16::from_le_bytes(page.get(14..16)?.try_into().ok()?);
    let lsn = (u64::from(word(0)?) << 32) | u64::from(word(4)?);
    (upper != 0 && lsn != 0).then_some(lsn)
}

/// The parameters a restore sets for recovery (PostgreSQL's "Archive Recovery" and
/// "Recovery Target" settings). A data directory that was itself restored (by
/// Backstop, pgBackRest or by hand) carries its own in `postgresql.auto.conf`, and a
/// backup of it copies them; [`recovery_conf`] comments those out, so a restore never
/// stops at the old restore's target.
pub const RECOVERY_PARAMETERS: &[&str] = &[
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "recovery_target",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
];

/// Settings a restore appends to `postgresql.auto.conf`: recover from the WAL the
/// restore staged in `pg_wal/` (`restore_command` only says "not in the archive",
/// so the server reads `pg_wal/`), stop at `target` (`recovery_target_lsn`,
/// exclusive: every record that starts before it is replayed, none at or after it)
/// or at the end of the WAL, on timeline `timeline`, then promote. `archive_mode`
/// is turned off unless `keep_archiving`, so the restored copy never writes into
/// the production archive.
///
/// Every recovery target is written, empty unless it is `target`, so none that
/// `postgresql.conf` names stays in force (the last setting of a name wins).
pub fn recovery_settings(
    target: Option<crate::Lsn>,
    timeline: u32,
    keep_archiving: bool,
) -> String {
    let mut s = String::from(
        "\n# Written by backstop restore: recover from the WAL staged in pg_wal/, then promote.\n\
         restore_command = 'false'\n\
         recovery_target_action = 'promote'\n",
    );
    s.push_str(&format!("recovery_target_timeline = '{timeline}'\n"));
    for unset in [
        "recovery_target",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_xid",
    ] {
        s.push_str(&format!("{unset} = ''\n"));
    }
    match target {
        Some(t) => s.push_str(&format!(
            "recovery_target_lsn = '{t}'\nrecovery_target_inclusive = off\n"
        )),
        None => s.push_str("recovery_target_lsn = ''\n"),
    }
    if !keep_archiving {
        s.push_str("archive_mode = off\n");
    }
    s
}

/// The whole new `postgresql.auto.conf` of a restore: `existing` (the set's copy, or
/// empty) with every line that sets one of [`RECOVERY_PARAMETERS`] (and
/// `archive_mode`, unless `keep_archiving`) commented out as
/// `# Removed by backstop restore: …`, then [`recovery_settings`].
pub fn recovery_conf(
    existing: &str,
    target: Option<crate::Lsn>,
    timeline: u32,
    keep_archiving: bool,
) -> String {
    let mut out = String::with_capacity(existing.len() + 512);
    for line in existing.lines() {
        let name = line
            .trim_start()
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let ours = RECOVERY_PARAMETERS.contains(&name.as_str())
            || (!keep_archiving && name == "archive_mode");
        if ours {
            out.push_str("# Removed by backstop restore: ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&recovery_settings(target, timeline, keep_archiving));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tablespace_map_gives_each_oid_its_location() {
        let map = "16390 /srv/ts one\n16391 /srv/a\\\\b\n\nnot a line\n";
        assert_eq!(
            parse_tablespace_map(map),
            vec![
                TablespaceLink {
                    oid: "16390".into(),
                    location: "/srv/ts one".into()
                },
                TablespaceLink {
                    oid: "16391".into(),
                    location: "/srv/a\\b".into()
                },
            ]
        );
        assert!(parse_tablespace_map("").is_empty());
        assert_eq!(tablespace_link("pg_tblspc/16390"), Some("16390"));
        assert_eq!(tablespace_link("pg_tblspc/16390/PG_15_1"), None);
        assert_eq!(tablespace_link("pg_tblspc/x"), None);
    }

    #[test]
    fn main_fork_segments_are_told_from_other_files() {
        for yes in [
            "base/5/16384",
            "base/5/16384.1",
            "global/1262",
            "pg_tblspc/16390/PG_15_202209061/5/16400",
        ] {
            assert!(is_relation_main_fork(yes), "{yes}");
        }
        for no in [
            "base/5/16384_fsm",
            "base/5/16384_vm",
            "base/5/16384_init",
            "base/5/pg_filenode.map",
            "base/5/PG_VERSION",
            "global/pg_control",
            "pg_xact/0000",
            "base/x/16384",
            "base/5/16384.",
            "16384",
        ] {
            assert!(!is_relation_main_fork(no), "{no}");
        }
    }

    #[test]
    fn a_page_lsn_is_read_from_its_header_and_new_pages_have_none() {
        let mut page = vec![0u8; 8192];
        assert_eq!(page_lsn(&page), None);
        page[0..4].copy_from_slice(&1u32.to_le_bytes());
        page[4..8].copy_from_slice(&0x0300_0060u32.to_le_bytes());
        assert_eq!(page_lsn(&page), None, "pd_upper 0: a new page");
        page[14..16].copy_from_slice(&8000u16.to_le_bytes());
        assert_eq!(page_lsn(&page), Some(0x1_0300_0060));
        assert_eq!(page_lsn(&page[..10]), None);
    }

    #[test]
    fn the_documented_exclusions_hold() {
        for kept in [
            "base/1/1259",
            "global/pg_control",
            "PG_VERSION",
            "postgresql.auto.conf",
            "pg_xact/0000",
            "pg_logical/replorigin_checkpoint",
        ] {
            assert!(copies_file(kept), "{kept}");
        }
        for left in [
            "postmaster.pid",
            "backup_label",
            "pg_wal/000000010000000000000001",
            "pg_wal/archive_status/x.done",
            "pg_replslot/s/state",
            "pg_stat_tmp/global.stat",
            "base/1/pg_internal.init",
            "base/pgsql_tmp/pgsql_tmp123.0",
        ] {
            assert!(!copies_file(left), "{left}");
        }
        assert!(keeps_dir("pg_wal") && keeps_dir("pg_wal/archive_status") && keeps_dir("base/1"));
        assert!(!keeps_dir("pg_replslot/backstop_1001") && !keeps_dir("base/pgsql_tmp"));
        let s = recovery_settings(Some(crate::Lsn(0x300_0060)), 1, false);
        assert!(
            s.contains("recovery_target_lsn = '0/3000060'") && s.contains("archive_mode = off")
        );
    }

    /// A set taken of a cluster that Backstop had restored to LSN 0/435AE88 carried
    /// that restore's `recovery_target_lsn` in its `postgresql.auto.conf`; a restore
    /// of it to the archived end wrote no target, so PostgreSQL stopped at the old
    /// one, before the set's consistent point, and refused to start.
    #[test]
    fn a_restore_comments_out_an_earlier_restores_recovery_settings() {
        let old = "# Do not edit this file manually!\nwork_mem = '8MB'\n\
                   restore_command = 'false'\nrecovery_target_lsn = '0/435AE88'\n\
                   Recovery_Target_Time='2026-01-01'\narchive_mode = on\n";
        let new = recovery_conf(old, None, 2, false);
        let live: Vec<&str> = new
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .collect();
        assert!(live.contains(&"work_mem = '8MB'"), "{new}");
        assert!(live.contains(&"recovery_target_lsn = ''"), "{new}");
        assert!(live.contains(&"recovery_target_time = ''"), "{new}");
        assert!(
            !live
                .iter()
                .any(|l| l.contains("0/435AE88") || l.contains("2026-01-01")),
            "{new}"
        );
        assert!(new.contains("# Removed by backstop restore: recovery_target_lsn = '0/435AE88'"));
        assert!(live.contains(&"archive_mode = off") && !live.contains(&"archive_mode = on"));
        // Each name is set once among the live lines.
        let mut names: Vec<&str> = live
            .iter()
            .map(|l| l.split('=').next().unwrap_or("").trim())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "{new}");
        // keep_archiving leaves archive_mode alone.
        assert!(recovery_conf(old, None, 2, true).contains("\narchive_mode = on\n"));
    }
}
