//! The integration tests' process harness lives in `backstop-testkit` (shared with
//! the chaos harness); this module names it for the tests and adds the path cargo
//! gives of the binary under test.
#![allow(dead_code, unused_imports)]

pub use backstop_testkit::cluster::*;
pub use backstop_testkit::mysql;
pub use backstop_testkit::{Proc, free_port, wait_for};

/// The `backstop` binary cargo built for these tests (the harness finds the same one
/// next to the test executable).
pub const BIN: &str = env!("CARGO_BIN_EXE_backstop");
