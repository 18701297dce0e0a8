//! Backstop's test and measurement harness: in-process clusters ([`cluster`]), real
//! process clusters behind fault-injecting proxies ([`procs`], [`proxy`]), the chaos
//! scenarios with their nemeses and invariants ([`scenario`]), the workload generator
//! ([`workload`]) and benchmarks.

pub mod cluster;
pub mod procs;
pub mod proxy;
pub mod scenario;
pub mod workload;
