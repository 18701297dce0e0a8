//! `backstop wal-push`: PostgreSQL's `archive_command` for a tenant whose source says
//! `archive=push` (a cluster that allows no replication connection). It stores each
//! file the server archives at `wal_push/NAME` in the tenant's area of the
//! destination (zstd), durably before it returns; the tenant's archive task then
//! takes the WAL segments of its timeline into pieces as it does streamed WAL, and
//! removes them from `wal_push/` once a checkpoint covers them.

use std::path::Path;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::dest_catalog::find_tenant;
use crate::error::{Result, WorkerError};
use crate::storage::TenantStore;

/// The largest file `wal-push` takes: PostgreSQL's largest `wal_segment_size`.
pub const MAX_WAL_FILE: u64 = 1 << 30;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now.
    Stored,
    /// The same bytes were already there (PostgreSQL retried after a crash).
    AlreadyThere,
}

/// Whether `name` is a file PostgreSQL archives: a WAL segment (`TTTTTTTTXXXXXXXXYYYYYYYY`),
/// a timeline history file (`TTTTTTTT.history`), a partial segment (`….partial`) or a
/// backup history file (`….XXXXXXXX.backup`).
pub fn is_archived_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match name.split('.').collect::<Vec<_>>().as_slice() {
        [seg] => hex(seg, 24),
        [tli, "history"] => hex(tli, 8),
        [seg, "partial"] => hex(seg, 24),
        [seg, off, "backup"] => hex(seg, 24) && hex(off, 8),
        _ => false,
    }
}

/// Pushes the file at `path` (PostgreSQL's `%p`, relative to the data directory the
/// command runs in) as `name` (`%f`) for `tenant` at `dest` (its newest incarnation,
/// or `incarnation`).
///
/// Errors: `Invalid` for a name PostgreSQL does not archive, a file larger than
/// [`MAX_WAL_FILE`], an unknown tenant (its first `ARCHIVELOG` writes what names it),
/// or a file whose stored copy holds other bytes; `Source` when the file cannot be
/// read; `Storage` when the destination fails. Every error leaves the server
/// retrying the same file later.
pub async fn push(
    dest: &str,
    tenant: &str,
    incarnation: Option<u64>,
    path: &Path,
    name: &str,
) -> Result<Pushed> {
    if !is_archived_name(name) {
        return Err(WorkerError::Invalid(format!(
            "'{name}' is not a file PostgreSQL archives (give %f as the last argument)"
        )));
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| WorkerError::Source(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_WAL_FILE {
        return Err(WorkerError::Invalid(format!(
            "{} is {} bytes, more than a WAL segment can be",
            path.display(),
            meta.len()
        )));
    }
    let raw = std::fs::read(path)
        .map_err(|e| WorkerError::Source(format!("read {}: {e}", path.display())))?;
    let tenant_dest = find_tenant(dest, tenant, incarnation).await?;
    let store = TenantStore::open(&tenant_dest)?;
    let key = backstop_common::layout::wal_push(name);
    let cancel = CancellationToken::new();
    if store.exists(&key).await? {
        let had = crate::pg::decode_pushed(&store.get(&key, &cancel).await?, &key)?;
        if had == raw {
            return Ok(Pushed::AlreadyThere);
        }
        return Err(WorkerError::Invalid(format!(
            "{name} is already archived for tenant {tenant} with other contents ({} bytes stored, {} bytes now): refusing to replace it; check that this cluster is the tenant's source",
            had.len(),
            raw.len()
        )));
    }
    let packed =
        zstd::encode_all(&raw[..], 1).map_err(|e| WorkerError::Invalid(format!("zstd: {e}")))?;
    store.put(&key, Bytes::from(packed), &cancel).await?;
    Ok(Pushed::Stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_postgresql_archives_is_taken() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "000000010000000000000003.00000028.backup",
        ] {
            assert!(is_archived_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../000000010000000000000003",
            "00000001000000000000000",
            "0000000100000000000000030",
            "00000002.history.x",
            "postgresql.conf",
            "00000001000000000000000G",
        ] {
            assert!(!is_archived_name(bad), "{bad}");
        }
    }
}
