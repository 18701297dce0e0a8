//! The archived log out of a destination's pieces, in SCN order: what a restore
//! writes after the datafiles (a `dir://` tenant's log segment, a PostgreSQL tenant's
//! WAL staged in `pg_wal/`).

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::error::{Result, WorkerError};
use crate::manifest::{self, LogObject, PieceManifest};
use crate::storage::TenantStore;

/// Hands log `[from, to)` from the pieces to `sink` in order, as `(scn, bytes)`,
/// verifying every checksum; returns the bytes written.
///
/// Errors: `Corrupt` naming the SCN of a gap or the object of a bad checksum;
/// `Storage`; whatever `sink` returns.
pub async fn write_log(
    store: &TenantStore,
    pieces: &[PieceManifest],
    from: u64,
    to: u64,
    cancel: &CancellationToken,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut objects: HashMap<&str, &LogObject> = HashMap::new();
    for p in pieces {
        for o in p.objects.iter().filter(|o| o.end <= p.checkpoint_scn) {
            objects.insert(o.key.as_str(), o);
        }
    }
    let mut sorted: Vec<&LogObject> = objects.into_values().collect();
    sorted.sort_by_key(|o| (o.start, o.end));
    let mut pos = from;
    while pos < to {
        let next = sorted
            .iter()
            .filter(|o| o.start <= pos && o.end > pos && o.end - o.start <= 64 * 1024 * 1024)
            .max_by_key(|o| o.end)
            .ok_or_else(|| {
                let after = sorted.iter().find(|o| o.start > pos).map(|o| o.start);
                WorkerError::Corrupt(format!(
                    "archived log has a gap at SCN {pos}{}",
                    after
                        .map(|a| format!(" (next archived byte is at {a})"))
                        .unwrap_or_default()
                ))
            })?;
        let stored = store.get(&next.key, cancel).await?;
        if manifest::checksum(&stored) != next.stored_checksum {
            return Err(WorkerError::Corrupt(format!(
                "{}: checksum mismatch",
                next.key
            )));
        }
        let raw = crate::codec::decompress(
            &stored,
            next.compressed,
            manifest::span(next.start, next.end, &next.key)?,
            manifest::MAX_LOG_OBJECT_RAW,
            &next.checksum,
            &next.key,
        )?;
        let end = next.end.min(to);
        let slice = &raw[(pos - next.start) as usize..(end - next.start) as usize];
        sink(pos, slice)?;
        pos = end;
    }
    Ok(to - from)
}
