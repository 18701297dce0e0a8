//! Thin tonic services: decode, call [`crate::node::MetaNode`], encode.

mod meta;
mod raft;

pub use meta::MetaSvc;
pub use raft::RaftSvc;
