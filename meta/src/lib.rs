//! Backstop's metadata service: a Raft-replicated catalog of tenants, parameters and
//! users (growing into backup sets, pieces, jobs and tasks), on openraft with RocksDB
//! storage, served over gRPC.
//!
//! - [`state`] and [`command`]: the deterministic state machine (sans I/O).
//! - [`store`]: RocksDB log store and state machine (`keys.rs` has the layout).
//! - [`node`]: a running node: Raft, gRPC server, forwarding, membership.
//! - [`service`]: thin tonic services.

pub use backstop_common::codec;
mod clock;
pub mod command;
pub mod config;
pub mod error;
pub mod keys;
pub mod network;
pub mod node;
pub mod policy;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod store;
pub mod types;

pub use config::{MetaConfig, RaftTuning};
pub use error::MetaError;
pub use node::MetaNode;
