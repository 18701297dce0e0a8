//! Test support shared by `cli/tests` and `chaos-tests`: real child processes killed
//! with SIGKILL when their guard drops ([`Proc`]), free loopback ports, bounded waits,
//! the `backstop` binary's path, the S3-compatible test server (moto, installed by
//! `scripts/setup.sh`), the process clusters of the integration tests ([`cluster`]),
//! the `mysql` client against a gateway ([`mysql`]), PostgreSQL servers ([`pg`]) and
//! an in-process meta cluster (`local`, feature `local-cluster`). Every wait is bounded
//! and every child is stopped by its guard, so a failing test leaves nothing running.

pub mod cluster;
#[cfg(feature = "local-cluster")]
pub mod local;
pub mod mysql;
pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a test-support step failed.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A process could not be started or signalled, or a file not written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Something did not happen in time.
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long, seconds.
        secs: u64,
    },
    /// The `backstop` binary was not found.
    #[error("{0}")]
    NoBinary(String),
    /// A stored manifest is not JSON.
    #[error("{0}: {1}")]
    Json(String, serde_json::Error),
    /// An in-process meta node did not start or has no leader.
    #[error("meta: {0}")]
    Meta(String),
    /// A manifest kept changing while it was read (a writer compacting without pause).
    #[error("{0}: the manifest kept changing while it was read")]
    Changing(String),
}

/// A child process, SIGKILLed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited (crashed, aborted by a failpoint).
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal (`-STOP`, `-CONT`, `-TERM`, …) with `kill`.
    pub fn signal(&self, sig: &str) -> Result<(), TestkitError> {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .map_err(|e| TestkitError::Io("run kill".into(), e))?;
        if !status.success() {
            return Err(TestkitError::Io(
                format!("kill {sig} {}", self.pid()),
                std::io::Error::other("kill failed"),
            ));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on, in `[20000, 32000)`: below the kernel's
/// ephemeral range (32768+), so other tests' outgoing connections can never take it
/// between this check and the bind. Different on every call in a process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id() * 7919
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) * 104_729);
        let port = 20_000 + (n % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Like [`free_port`], but the same seed tries the same ports in the same order (a
/// replayable chaos run).
pub fn free_port_from(seed: u64) -> u16 {
    let mut n = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    loop {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = 20_000 + ((n >> 33) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `f` every 100 ms until it gives a value; `Err(Timeout)` after `secs`.
pub fn try_wait_for<T>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, TestkitError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: what.to_string(),
                secs,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`try_wait_for`] for tests: panics with what it waited for.
pub fn wait_for<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    match try_wait_for(what, secs, f) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The `backstop` binary: `BACKSTOP_BIN`, or next to the running executable (also from
/// `target/*/deps/`, where test binaries run).
pub fn backstop_bin() -> Result<PathBuf, TestkitError> {
    if let Ok(p) = std::env::var("BACKSTOP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| TestkitError::Io("current_exe".into(), e))?;
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join("backstop");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(TestkitError::NoBinary(format!(
        "no backstop binary next to {}: build it (cargo build -p backstop) or set BACKSTOP_BIN",
        exe.display()
    )))
}

/// Starts the S3-compatible test server (`moto_server`) on `127.0.0.1:port`, logging to
/// `log`, and waits (up to 60 s) until it has created `bucket`.
pub fn start_moto(log: &Path, port: u16, bucket: &str) -> Result<Proc, TestkitError> {
    let log_file =
        std::fs::File::create(log).map_err(|e| TestkitError::Io(log.display().to_string(), e))?;
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| {
            TestkitError::Io(
                "start moto_server (pip install 'moto[server]'; scripts/setup.sh does it)".into(),
                e,
            )
        })?;
    let moto = Proc(child);
    try_wait_for(&format!("moto_server on port {port}"), 60, || {
        let ok = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                &format!("http://127.0.0.1:{port}/{bucket}"),
            ])
            .output()
            .ok()?
            .status
            .success();
        ok.then_some(())
    })?;
    Ok(moto)
}

/// The `s3://` URI of `bucket/prefix` on a moto server at `host` (`127.0.0.1:port`),
/// with moto's test credentials.
pub fn moto_uri(host: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "s3://{bucket}/{prefix}?host=http://{host}&access_id=test&access_key=test&s3_region=us-east-1"
    )
}

/// A stored manifest as JSON: set and part manifests are zstd-compressed JSON
/// (`docs/FORMAT.md`), the others plain JSON. `key` names it in the error.
pub fn manifest_json(key: &str, bytes: &[u8]) -> Result<serde_json::Value, TestkitError> {
    let plain;
    let json = if bytes.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        plain = zstd::decode_all(bytes).map_err(|e| TestkitError::Io(key.to_string(), e))?;
        plain.as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(json).map_err(|e| TestkitError::Json(key.to_string(), e))
}

/// The manifest of a set or piece directory `dir` (a key under the tenant directory
/// `tenant` of a `file://` destination), then, for an open piece, its journal entries
/// (`manifest.d/EPOCH_SEQ` of the attempt the base names, from `journal_seq` on), as
/// `(key, JSON)`. Read after any directory listing they are checked against, and read
/// again if the writer compacted its journal meanwhile, so every object listed before is
/// in what is read.
pub fn manifest_parts(
    tenant: &Path,
    dir: &str,
) -> Result<Vec<(String, serde_json::Value)>, TestkitError> {
    let key = format!("{dir}/manifest");
    let read =
        |k: &str| std::fs::read(tenant.join(k)).map_err(|e| TestkitError::Io(k.to_string(), e));
    let json = |k: &str, bytes: &[u8]| manifest_json(k, bytes);
    for _ in 0..20 {
        let bytes = read(&key)?;
        let v = json(&key, &bytes)?;
        let mut parts = vec![(key.clone(), v.clone())];
        if let Some(epoch) = v["journal"].as_str() {
            let from = v["journal_seq"].as_u64().unwrap_or(0);
            let prefix = format!("{epoch}_");
            let mut names: Vec<String> = std::fs::read_dir(tenant.join(dir).join("manifest.d"))
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let Some(seq) = name
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                if seq < from {
                    continue;
                }
                let j = format!("{dir}/manifest.d/{name}");
                // Deleted by a compaction since the listing: the base read again below
                // has changed, and the loop reads everything once more.
                if let Ok(data) = std::fs::read(tenant.join(&j)) {
                    let part = json(&j, &data)?;
                    parts.push((j, part));
                }
            }
        }
        if read(&key)? == bytes {
            return Ok(parts);
        }
    }
    Err(TestkitError::Changing(dir.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_seeded_ones_repeat() {
        let a = free_port();
        assert!((20_000..32_000).contains(&a));
        assert_eq!(free_port_from(7), free_port_from(7));
        let r = try_wait_for("nothing", 0, || None::<()>);
        assert!(matches!(r, Err(TestkitError::Timeout { .. })), "{r:?}");
    }
}
