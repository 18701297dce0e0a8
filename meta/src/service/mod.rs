//! Thin tonic services: decode, call [`crate::node::MetaNode`], encode.

pub(crate) mod auth;
mod checks;
pub mod convert;
mod meta;
mod raft;
mod users;
mod worker;

pub use meta::MetaSvc;
pub use raft::RaftSvc;
pub use worker::WorkerSvc;
