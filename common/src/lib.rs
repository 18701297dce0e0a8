//! Domain types shared by every Backstop crate: id newtypes, error codes, backup
//! destinations and their options, cluster parameters and password hashing.
//!
//! This crate does no I/O (the `failpoints` feature's crash action aside). It sits between `backstop-proto` and the service crates
//! (`backstop-meta`, `backstop-worker`, `backstop-sql-gateway`) so those never depend
//! on each other.

pub mod auth;
pub mod code;
pub mod codec;
pub mod dest;
pub mod failpoints;
pub mod ids;
pub mod layout;
pub mod option;
pub mod params;
pub mod seal;
pub mod source;
pub mod task;

pub use code::Code;
pub use dest::{BackupDest, DestError};
pub use ids::{
    BackupSetId, CopyId, JobId, NodeId, PieceId, RoundId, Scn, TaskId, TenantId, WorkerId,
};
