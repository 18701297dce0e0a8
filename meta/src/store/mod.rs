//! RocksDB-backed Raft storage: the log store ([`LogStore`]) and the state machine
//! ([`StateMachineStore`]) share one database with the column families of
//! `keys.rs`.

// openraft's traits fix the error type to `StorageError` (224 bytes); boxing it here
// would only move the allocation into every caller.
#![allow(clippy::result_large_err)]

mod log_store;
mod state_machine;
mod upgrade;

use std::path::Path;
use std::sync::Arc;

use openraft::{AnyError, StorageIOError};
use rocksdb::{ColumnFamilyDescriptor, DB, Options};

pub use log_store::LogStore;
pub use state_machine::{Applied, StateMachineStore};

use serde::{Deserialize, Serialize};

use crate::keys;
use crate::state::MetaState;
use crate::types::{SnapshotMeta, StorageError};

/// Version of the on-disk layout described in `keys.rs`. Bump it when the layout
/// changes and add a step to [`upgrade`].
pub const DATA_VERSION: u32 = 4;

/// Snapshot payload: the layout version and the whole catalog.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    pub(crate) data_version: u32,
    pub(crate) state: MetaState,
}

/// A snapshot as kept in the `raft` CF, so it survives a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// openraft's metadata.
    pub meta: SnapshotMeta,
    /// Encoded [`SnapshotPayload`].
    pub data: Vec<u8>,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// RocksDB refused to open the directory (locked by another process, corrupt, …).
    #[error("open rocksdb at {path}: {source}")]
    Rocks {
        /// Directory.
        path: String,
        /// Cause.
        source: rocksdb::Error,
    },
    /// The directory was written by a newer Backstop.
    #[error(
        "data at {path} has layout version {found}, newer than this build's {DATA_VERSION}: upgrade backstop"
    )]
    TooNew {
        /// Directory.
        path: String,
        /// Version found.
        found: u32,
    },
    /// The directory holds something this build cannot read.
    #[error("data at {path} is unreadable: {reason}")]
    Corrupt {
        /// Directory.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// Opens (creating if needed) the node's database, upgrades its layout to
/// [`DATA_VERSION`], and returns the log store and the state machine over it.
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), OpenError> {
    let db = open_db(dir)?;
    let db = Arc::new(db);
    let log = LogStore::new(db.clone());
    let sm = StateMachineStore::load(db)
        .await
        .map_err(|e| OpenError::Corrupt {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok((log, sm))
}

fn open_db(dir: &Path) -> Result<DB, OpenError> {
    let path = dir.display().to_string();
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = keys::ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|source| OpenError::Rocks {
        path: path.clone(),
        source,
    })?;
    upgrade::upgrade(&db, &path)?;
    Ok(db)
}

pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(AnyError::new(&e)).into()
}

pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name).ok_or_else(|| {
        read_err(std::io::Error::other(format!(
            "missing column family {name}"
        )))
    })
}
