//! Backstop's test and measurement harness: in-process and multi-process clusters,
//! and benchmarks. The workload generator, nemeses and invariant checks of the chaos
//! issue grow here.

pub mod cluster;
pub mod procs;
pub mod proxy;
pub mod workload;
