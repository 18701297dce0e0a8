//! Tenant sources: where a worker reads a tenant's datafiles and log.
//!
//! Only `dir:///abs/path` exists today (`docs/OPERATIONS.md`, tenant sources):
//! `PATH/data/**` are datafiles, `PATH/log/` holds numbered log segments.

use crate::Code;

/// Validates a tenant source URI and returns it normalized.
///
/// Errors (`OB_INVALID_ARGUMENT`): not `dir://`, relative path, `..` components,
/// control characters, or the root directory.
pub fn validate_source(uri: &str) -> Result<String, (Code, String)> {
    let uri = uri.trim();
    let Some(path) = uri.strip_prefix("dir://") else {
        return Err((
            Code::InvalidArgument,
            format!("tenant source '{uri}' is not supported (expected dir:///abs/path)"),
        ));
    };
    if !path.starts_with('/') {
        return Err((
            Code::InvalidArgument,
            format!("tenant source needs an absolute path (dir:///abs/path), got '{uri}'"),
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err((
                    Code::InvalidArgument,
                    format!("tenant source must not contain '..': '{uri}'"),
                ));
            }
            p if p.chars().any(char::is_control) => {
                return Err((
                    Code::InvalidArgument,
                    "tenant source contains a control character".to_string(),
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err((
            Code::InvalidArgument,
            "tenant source must not be the root directory".to_string(),
        ));
    }
    Ok(format!("dir:///{}", parts.join("/")))
}

/// The start SCN a `dir://` log segment's file name gives (`<digits>[.log]`): each
/// segment is named after the byte offset of its first byte in the whole log.
pub fn segment_start(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log").unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why log segments `(name, start, len)` (sorted by start) cannot be one log stream:
/// each must begin where the one before it ends.
pub fn segments_gap(segs: &[(String, u64, u64)]) -> Option<String> {
    segs.windows(2).find_map(|w| {
        let ((a, a_start, a_len), (b, b_start, _)) = (&w[0], &w[1]);
        (a_start + a_len != *b_start).then(|| {
            format!(
                "log segments {a} and {b} are not contiguous ({a_start} + {a_len} != {b_start}): name each segment after the SCN (byte offset in the whole log) of its first byte, e.g. 00000000000000000000.log then 00000000000001048576.log"
            )
        })
    })
}

/// Checks the layout of a `dir://` source where this host can see it: `data/` and
/// `log/` directories, log segments named by their start SCN and contiguous. A path
/// this host does not have is accepted (the workers that read the tenant may run
/// elsewhere; they check it when they archive). Errors carry `OB_INVALID_ARGUMENT`
/// and say how to fix the layout.
pub fn check_dir_layout(uri: &str) -> Result<(), (Code, String)> {
    let Some(path) = uri.strip_prefix("dir://") else {
        return Ok(());
    };
    let root = std::path::Path::new(path);
    if !root.exists() {
        return Ok(());
    }
    let invalid = |m: String| Err((Code::InvalidArgument, m));
    for sub in ["data", "log"] {
        if !root.join(sub).is_dir() {
            return invalid(format!(
                "tenant source {uri} has no {sub}/ directory: a dir:// tenant keeps its datafiles under data/ and its log segments under log/"
            ));
        }
    }
    let Ok(entries) = std::fs::read_dir(root.join("log")) else {
        return invalid(format!("tenant source {uri}: log/ cannot be read"));
    };
    let mut segs: Vec<(String, u64, u64)> = Vec::new();
    // Bounded: a directory of millions of files is not a log to check here.
    for entry in entries.flatten().take(100_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(start) = segment_start(&name) else {
            continue;
        };
        let len = entry.metadata().map_or(0, |m| m.len());
        segs.push((name, start, len));
    }
    segs.sort_by_key(|s| s.1);
    match segments_gap(&segs) {
        Some(reason) => invalid(format!("tenant source {uri}: {reason}")),
        None => Ok(()),
    }
}

/// Validates a tenant or user name: 1 to 64 characters, ASCII letters, digits and
/// `_`, not starting with a digit. Errors carry `OB_INVALID_ARGUMENT`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), (Code, String)> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err((
            Code::InvalidArgument,
            format!(
                "invalid {kind} name '{}': use 1-64 letters, digits or '_', not starting with a digit",
                name.escape_debug()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_layout_that_cannot_work_is_refused_with_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("dir://{}", dir.path().display());
        assert!(check_dir_layout("dir:///no/such/place").is_ok());
        let (_, m) = check_dir_layout(&uri).unwrap_err();
        assert!(m.contains("no data/"), "{m}");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        std::fs::write(dir.path().join("log/000001.log"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("log/000002.log"), [0u8; 10]).unwrap();
        let (code, m) = check_dir_layout(&uri).unwrap_err();
        assert_eq!(code, Code::InvalidArgument);
        assert!(
            m.contains("not contiguous") && m.contains("name each segment"),
            "{m}"
        );
        std::fs::rename(
            dir.path().join("log/000002.log"),
            dir.path().join("log/11.log"),
        )
        .unwrap();
        assert!(check_dir_layout(&uri).is_ok());
        assert_eq!(segment_start("00000000000000001024.log"), Some(1024));
        assert_eq!(segment_start("x.log"), None);
    }

    #[test]
    fn sources_and_names() {
        assert_eq!(validate_source("dir:///a//b/").unwrap(), "dir:///a/b");
        for bad in ["file:///a", "dir://a", "dir:///a/../b", "dir:///", ""] {
            assert!(validate_source(bad).is_err(), "{bad}");
        }
        assert!(validate_name("tenant", "t_1").is_ok());
        for bad in ["", "1t", "t-1", "t 1", &"x".repeat(65)] {
            assert!(validate_name("tenant", bad).is_err(), "{bad}");
        }
    }
}
