//! Failpoints (the `fail` crate) at the steps of the backup, archive and copy paths and
//! on the metadata leader's clock, for the chaos harness.
//!
//! They exist only in builds with the `failpoints` feature (test builds: the chaos
//! crate's dev-dependency turns it on); in any other build [`failpoint!`] expands to
//! nothing. A process arms them from `FAILPOINTS` at start and from the file named by
//! `BACKSTOP_FAILPOINTS_FILE`, re-read while it runs (see the `backstop` binary).
//!
//! Actions are `fail`'s (`off`, `return`, `sleep(ms)`, `pause`, `panic`, with `N%` and
//! `N*` modifiers), where `return` means an injected error of the step, plus two of
//! ours: `return(crash)` aborts the process on the spot, the way a power cut or OOM
//! kill would, so a scenario can crash a worker between two exact steps, and
//! `return(stall)` blocks the step for 1.5 s and goes on. Each of these three prints
//! `failpoint NAME fired: …` on stderr, which the chaos harness counts.
//!
//! Every point, in the order the chaos harness cycles through them:
//! `backup::before_upload`, `backup::after_upload`, `backup::before_marker`,
//! `archive::before_upload`, `archive::after_upload`, `archive::before_marker`,
//! `archive::before_commit`, `copy::before_upload`, `copy::after_upload`,
//! `copy::before_marker`, `task::before_commit`, `clean::during_cleanup`, and
//! `meta::clock` (`return(MS)` shifts the leader's clock by MS milliseconds, which may
//! be negative: a clock jump).

pub use fail;

/// Every failpoint of the worker's paths (not `meta::clock`).
pub const WORKER_POINTS: [&str; 12] = [
    "backup::before_upload",
    "backup::after_upload",
    "backup::before_marker",
    "archive::before_upload",
    "archive::after_upload",
    "archive::before_marker",
    "archive::before_commit",
    "copy::before_upload",
    "copy::after_upload",
    "copy::before_marker",
    "task::before_commit",
    "clean::during_cleanup",
];

/// The metadata leader's clock offset point.
pub const CLOCK_POINT: &str = "meta::clock";

/// Whether this build has failpoints.
pub const fn enabled() -> bool {
    fail::has_failpoints()
}

/// What a fired point does: `crash` aborts the process; `stall` sleeps 1.5 s and
/// answers `None` (go on); anything else is an injected error, whose message is
/// returned for the caller's error variant.
pub fn fired(name: &str, arg: Option<String>) -> Option<String> {
    match arg.as_deref() {
        Some("crash") => {
            eprintln!("failpoint {name} fired: crash");
            std::process::abort();
        }
        Some("stall") => {
            eprintln!("failpoint {name} fired: stall");
            std::thread::sleep(std::time::Duration::from_millis(1500));
            None
        }
        _ => {
            eprintln!("failpoint {name} fired: error");
            Some(format!("failpoint {name}: injected error"))
        }
    }
}

/// `now_ms` shifted by the `meta::clock` point's `return(MS)` when armed.
pub fn clock_ms(now_ms: u64) -> u64 {
    let shift = || -> Option<i64> {
        fail::fail_point!("meta::clock", |arg: Option<String>| arg
            .and_then(|a| a.parse::<i64>().ok()));
        None
    };
    match shift() {
        Some(ms) => now_ms.saturating_add_signed(ms),
        None => now_ms,
    }
}

/// A failpoint at a step: on `return`, the enclosing function returns
/// `Err($err(message))`; `return(crash)` aborts the process, `return(stall)` blocks
/// 1.5 s. Compiled out (a constant `false` branch) without the feature.
///
/// ```ignore
/// backstop_common::failpoint!("backup::before_marker", WorkerError::Storage);
/// ```
#[macro_export]
macro_rules! failpoint {
    ($name:literal, $err:path) => {
        if $crate::failpoints::enabled()
            && let Some(Some(message)) =
                $crate::failpoints::fail::eval($name, |arg| $crate::failpoints::fired($name, arg))
        {
            return Err($err(message).into());
        }
    };
}
