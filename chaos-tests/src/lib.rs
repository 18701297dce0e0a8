//! Backstop's test and measurement harness: in-process clusters ([`cluster`]), real
//! process clusters behind fault-injecting proxies ([`procs`], [`proxy`]), the chaos
//! scenarios with their nemeses and invariants ([`scenario`]) and benchmarks. The
//! workload generator is its own crate, `backstop-workload` (re-exported as
//! [`workload`]), so the product binary does not link this harness.

pub mod cluster;
pub mod procs;
pub mod proxy;
pub mod scenario;
pub use backstop_workload as workload;
