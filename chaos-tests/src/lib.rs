//! Backstop's test and measurement harness: real process clusters behind fault-injecting proxies ([`procs`], [`proxy`]), the chaos
//! scenarios with their nemeses and invariants ([`scenario`]) and benchmarks. The
//! workload generator is its own crate, `backstop-workload` (re-exported as
//! [`workload`]), so the product binary does not link this harness; the process
//! plumbing shared with `cli/tests` (child guards, ports, moto, PostgreSQL, the in-process
//! meta cluster) is `backstop-testkit`.

pub mod procs;
pub mod proxy;
pub mod scenario;
pub use backstop_workload as workload;
