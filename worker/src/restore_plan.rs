//! What a restore restores: which backup set, up to which SCN, and what to fall back
//! to. A pure function of the destination's set index entries and piece manifests
//! (no I/O), so every rule is unit-tested.
//!
//! - The archived log is one SCN space per incarnation: the runs of contiguous log
//!   objects of every piece (each object up to its piece's checkpoint). Rounds that
//!   follow each other without a gap join; a gap between rounds is never crossed.
//! - A set *reaches* the end of the run that holds its `start_replay_scn`; it restores
//!   to any SCN in `[min_restore_scn, reach]`.
//! - No target: the latest restorable point — the highest reach of any set whose reach
//!   is at least its `min_restore_scn` (after `NOARCHIVELOG` / `ARCHIVELOG` that is the
//!   old round's end until the new round has a set).
//! - `--until-scn N`: the sets whose range holds N, newest first.
//! - `--until-time T`: per set, the last checkpoint at or before T inside its range.
//! - Candidates are ordered best first; the restore falls back to the next one when a
//!   set turns out to be broken, and says so.

use crate::manifest::{PieceManifest, SetIndex};
use backstop_common::BackupSetId;

/// Where a restore goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `--until-scn`: the restored log ends at this SCN (exclusive).
    Scn(u64),
    /// `--until-time`: the last archived checkpoint at or before this time (ms since
    /// the epoch, as stamped in the piece manifests).
    Time(u64),
    /// Neither: the latest restorable point.
    Latest,
}

/// One way to restore: a set and the SCN its log is restored up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The set.
    pub set: SetIndex,
    /// Restored log ends here (exclusive).
    pub until_scn: u64,
}

/// Merged runs `[start, end)` of contiguous archived log, ascending.
pub fn archived_runs(pieces: &[PieceManifest]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = pieces
        .iter()
        .flat_map(|p| {
            p.objects
                .iter()
                .filter(move |o| o.end <= p.checkpoint_scn && o.end > o.start)
                .map(|o| (o.start, o.end))
        })
        // A piece's start is archived even before its first object (an idle
        // tenant's piece may never get one): an empty run there.
        .chain(pieces.iter().map(|p| (p.start_scn, p.start_scn)))
        .collect();
    spans.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match runs.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    runs
}

/// The end of the archived run that holds `from` (`from` itself when `from` is the
/// end of a run, e.g. an idle tenant's set), or `None` when `from` is not archived.
pub fn reach(runs: &[(u64, u64)], from: u64) -> Option<u64> {
    runs.iter()
        .find(|(s, e)| *s <= from && from <= *e)
        .map(|(_, e)| *e)
}

/// The candidates for `target`, best first; an error that names the sets and what
/// they reach when none fits.
pub fn plan(
    sets: &[SetIndex],
    pieces: &[PieceManifest],
    target: Target,
    only_set: Option<BackupSetId>,
) -> Result<Vec<Candidate>, String> {
    let runs = archived_runs(pieces);
    let usable: Vec<(&SetIndex, Option<u64>)> = sets
        .iter()
        .filter(|s| only_set.is_none_or(|id| id == s.backup_set_id))
        // A set with nothing to replay (taken of an idle tenant) restores to its own
        // point without any archived log (a copy destination may hold only the set).
        .map(|s| {
            let r = reach(&runs, s.start_replay_scn)
                .or((s.start_replay_scn == s.min_restore_scn).then_some(s.min_restore_scn));
            (s, r)
        })
        .collect();
    let describe = || {
        let mut parts: Vec<String> = usable
            .iter()
            .map(|(s, r)| match r {
                Some(r) if *r >= s.min_restore_scn => format!(
                    "set {} restores to [{}, {}]",
                    s.backup_set_id, s.min_restore_scn, r
                ),
                Some(r) => format!(
                    "set {} needs log to {} but the archive from its start {} reaches {}",
                    s.backup_set_id, s.min_restore_scn, s.start_replay_scn, r
                ),
                None => format!(
                    "set {} starts at SCN {}, which is not archived",
                    s.backup_set_id, s.start_replay_scn
                ),
            })
            .collect();
        if parts.is_empty() {
            parts.push(match only_set {
                Some(id) => format!("no complete backup set {id}"),
                None => "no complete backup set".to_string(),
            });
        }
        parts.join("; ")
    };
    let mut out: Vec<Candidate> = Vec::new();
    for (s, r) in &usable {
        let Some(r) = *r else { continue };
        if r < s.min_restore_scn {
            continue;
        }
        let until = match target {
            Target::Latest => Some(r),
            Target::Scn(t) => (s.min_restore_scn <= t && t <= r).then_some(t),
            Target::Time(ms) => pieces
                .iter()
                .flat_map(|p| p.checkpoints.iter())
                .filter(|(scn, time)| *time <= ms && s.min_restore_scn <= *scn && *scn <= r)
                .map(|(scn, _)| *scn)
                .max(),
        };
        if let Some(until_scn) = until {
            out.push(Candidate {
                set: (*s).clone(),
                until_scn,
            });
        }
    }
    if out.is_empty() {
        let what = match target {
            Target::Latest => "any point".to_string(),
            Target::Scn(t) => format!("SCN {t}"),
            Target::Time(ms) => format!("time {ms} (ms since the epoch)"),
        };
        let archived = runs
            .iter()
            .map(|(s, e)| format!("[{s}, {e})"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "no complete backup set restores to {what}: {}; archived log: {}",
            describe(),
            if archived.is_empty() {
                "none".to_string()
            } else {
                archived
            }
        ));
    }
    // Best first: the furthest point, then the newest set (the least log to replay).
    out.sort_by(|a, b| {
        b.until_scn
            .cmp(&a.until_scn)
            .then(b.set.min_restore_scn.cmp(&a.set.min_restore_scn))
            .then(b.set.backup_set_id.cmp(&a.set.backup_set_id))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FORMAT_VERSION, LogObject};
    use backstop_common::task::BackupType;
    use backstop_common::{PieceId, RoundId};

    fn piece(
        round: RoundId,
        id: u64,
        objects: &[(u64, u64)],
        checkpoints: &[(u64, u64)],
    ) -> PieceManifest {
        PieceManifest {
            format_version: FORMAT_VERSION,
            round_id: round,
            piece_id: PieceId(id),
            start_scn: objects.first().map_or(0, |o| o.0),
            checkpoint_scn: objects.last().map_or(0, |o| o.1),
            frozen: true,
            objects: objects
                .iter()
                .map(|(s, e)| LogObject {
                    key: format!("clog/round_{round}/piece_{id}/{s}-{e}"),
                    start: *s,
                    end: *e,
                    stored_len: e - s,
                    compressed: false,
                    checksum: String::new(),
                    stored_checksum: String::new(),
                })
                .collect(),
            checkpoints: checkpoints.to_vec(),
            journal: None,
            journal_seq: 0,
        }
    }

    fn set(id: u64, start: u64, min: u64) -> SetIndex {
        SetIndex {
            backup_set_id: BackupSetId(id),
            backup_type: BackupType::Full,
            base_set_id: None,
            start_replay_scn: start,
            min_restore_scn: min,
            set_dir: format!("data/backup_set_{id}_full"),
            manifest_checksum: String::new(),
        }
    }

    /// After NOARCHIVELOG / ARCHIVELOG a restore without a target failed with "gap"
    /// until the new round had a set: the latest restorable point is the old round's
    /// end, from the old round's set.
    #[test]
    fn the_default_target_is_the_latest_restorable_point_across_a_round_gap() {
        let pieces = [
            piece(RoundId(1), 1, &[(100, 200), (200, 300)], &[(300, 10)]),
            piece(RoundId(2), 1, &[(500, 600)], &[(600, 20)]),
        ];
        let sets = [set(1, 120, 150)];
        let c = plan(&sets, &pieces, Target::Latest, None).unwrap();
        assert_eq!(
            (c[0].set.backup_set_id, c[0].until_scn),
            (BackupSetId(1), 300)
        );
        // A set in the new round takes over once it exists.
        let sets = [set(1, 120, 150), set(2, 510, 520)];
        let c = plan(&sets, &pieces, Target::Latest, None).unwrap();
        assert_eq!(
            (c[0].set.backup_set_id, c[0].until_scn),
            (BackupSetId(2), 600)
        );
        assert_eq!(
            (c[1].set.backup_set_id, c[1].until_scn),
            (BackupSetId(1), 300),
            "the fallback"
        );
        // SCN 400 is in the gap: refused, naming what each set reaches.
        let e = plan(&sets, &pieces, Target::Scn(400), None).unwrap_err();
        assert!(e.contains("set 1 restores to [150, 300]"), "{e}");
        assert!(e.contains("[100, 300), [500, 600)"), "{e}");
    }

    /// A broken newest set never fell back to an older good one: the candidates list
    /// every set that holds the target, newest first.
    #[test]
    fn an_older_set_is_the_fallback_for_the_same_target() {
        let pieces = [piece(
            RoundId(1),
            1,
            &[(100, 1000)],
            &[(400, 10), (1000, 20)],
        )];
        let sets = [set(1, 100, 150), set(2, 300, 350), set(3, 900, 950)];
        let c = plan(&sets, &pieces, Target::Scn(500), None).unwrap();
        let ids: Vec<u64> = c.iter().map(|c| c.set.backup_set_id.0).collect();
        assert_eq!(ids, vec![2, 1]);
        assert!(c.iter().all(|c| c.until_scn == 500));
        // A point in time: the last checkpoint at or before it, per set.
        let c = plan(&sets, &pieces, Target::Time(15), None).unwrap();
        assert_eq!(
            (c[0].set.backup_set_id, c[0].until_scn),
            (BackupSetId(2), 400)
        );
        // --backup-set narrows the choice.
        let c = plan(&sets, &pieces, Target::Latest, Some(BackupSetId(1))).unwrap();
        assert_eq!((c.len(), c[0].until_scn), (1, 1000));
    }

    /// An idle tenant: its set starts and ends where the archive is, with no object
    /// after it (or none at all). It restores to exactly that point.
    #[test]
    fn an_idle_tenants_set_restores_to_its_own_point() {
        let pieces = [piece(RoundId(1), 0, &[(0, 100)], &[(100, 10)])];
        let sets = [set(1, 100, 100)];
        let c = plan(&sets, &pieces, Target::Latest, None).unwrap();
        assert_eq!(c[0].until_scn, 100);
        let mut empty = piece(RoundId(1), 0, &[], &[(100, 10)]);
        empty.start_scn = 100;
        empty.checkpoint_scn = 100;
        let c = plan(&sets, &[empty], Target::Latest, None).unwrap();
        assert_eq!(c[0].until_scn, 100);
        // No archived log at all (a destination holding only the set's copy).
        let c = plan(&sets, &[], Target::Latest, None).unwrap();
        assert_eq!(c[0].until_scn, 100);
        assert!(plan(&[set(2, 100, 150)], &[], Target::Latest, None).is_err());
    }
}
