//! Backstop workers: tenant sources, log archive, data backup, restore and validate
//! on object storage.
//!
//! - [`source`]: the `dir://` tenant source (datafiles, log segments, hooks).
//! - [`storage`]: a tenant's area at a destination (`file://`, `s3://`).
//! - [`manifest`]: the storage format.
//! - [`archive`], [`backup`], [`validate`], [`restore`]: the executors.
//! - [`runtime`]: the worker process (register, lease, heartbeat, report).

pub mod archive;
pub mod archived_log;
pub mod backup;
pub mod client;
pub mod codec;
pub mod copy;
pub mod ctx;
pub mod dest_catalog;
pub mod error;
pub mod manifest;
pub mod paths;
pub mod pg;
pub mod pg_datadir;
pub mod pg_restore;
pub mod piece_journal;
pub mod restore;
pub mod restore_fork;
pub mod restore_plan;
pub mod runtime;
pub mod source;
pub mod storage;
pub mod validate;
pub mod wal_push;

pub use error::{Result, WorkerError};
