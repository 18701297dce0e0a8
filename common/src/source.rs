//! Tenant sources: where a worker reads a tenant's datafiles and log.
//!
//! Two kinds (`docs/OPERATIONS.md`, tenant sources):
//! - `dir:///abs/path`: `PATH/data/**` are datafiles, `PATH/log/` holds numbered log
//!   segments;
//! - `postgresql://USER[:PASSWORD]@HOST:PORT/DBNAME?pgdata=/abs/path` (also libpq's
//!   `host=/socket/dir`, `port=N` and `password=` query parameters): a PostgreSQL
//!   cluster whose data directory is `pgdata`, parsed by [`PgSource::parse`].

use crate::Code;

/// Validates a tenant source URI and returns it normalized.
///
/// Errors (`OB_INVALID_ARGUMENT`): neither `dir://` nor `postgresql://`, relative
/// path, `..` components, control characters, or the root directory; for
/// PostgreSQL, what [`PgSource::parse`] refuses.
pub fn validate_source(uri: &str) -> Result<String, (Code, String)> {
    let uri = uri.trim();
    if is_postgresql(uri) {
        return PgSource::parse(uri).map(|p| p.to_uri(false));
    }
    let Some(path) = uri.strip_prefix("dir://") else {
        return Err((
            Code::InvalidArgument,
            format!(
                "tenant source '{}' is not supported (expected dir:///abs/path or postgresql://USER@HOST:PORT/DBNAME?pgdata=/abs/path)",
                redact_source(uri)
            ),
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

/// An SCN as PostgreSQL writes an LSN (`pg_lsn`): the high and low 32 bits in hex,
/// `X/Y` (e.g. `0/3000060`). Only meaningful for PostgreSQL tenants.
pub fn lsn_text(scn: u64) -> String {
    format!("{:X}/{:X}", scn >> 32, scn & 0xFFFF_FFFF)
}

/// Whether `uri` names a PostgreSQL source (`postgresql://` or `postgres://`).
pub fn is_postgresql(uri: &str) -> bool {
    let uri = uri.trim_start();
    uri.starts_with("postgresql://") || uri.starts_with("postgres://")
}

/// A source URI fit to show: a PostgreSQL password (in the user info or as
/// `password=`) becomes `***`. Other URIs are returned as they are.
pub fn redact_source(uri: &str) -> String {
    if !is_postgresql(uri) {
        return uri.to_string();
    }
    match PgSource::parse(uri) {
        Ok(p) => p.to_uri(true),
        Err(_) => {
            // Unparsable: drop everything after the scheme rather than risk a secret.
            let scheme = uri.split("://").next().unwrap_or("postgresql");
            format!("{scheme}://***")
        }
    }
}

/// A `postgresql://` tenant source: how the control connection reaches the server
/// and where its data directory is on the worker's host.
///
/// The URI mirrors libpq's connection URI: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME?pgdata=/abs/path`,
/// with `host=/socket/dir` (a Unix socket directory, as libpq's `host` parameter),
/// `port=N` and `password=` accepted as query parameters. Without a password the
/// worker looks in `PGPASSFILE` (libpq's password file format).
#[derive(Clone, PartialEq, Eq)]
pub struct PgSource {
    /// Role to connect as (libpq `user`).
    pub user: String,
    /// Password, if given in the URI.
    pub password: Option<String>,
    /// TCP host name or address, or a Unix socket directory (starts with `/`).
    pub host: String,
    /// Port (default 5432); for a socket directory, the socket's number.
    pub port: u16,
    /// Database of the control connection (default `postgres`).
    pub dbname: String,
    /// The server's `data_directory` as the worker's host sees it, absolute.
    pub pgdata: String,
    /// `archive=push`: the cluster's `archive_command` runs `backstop wal-push`, and
    /// the archive takes the WAL from what it pushed instead of streaming it from a
    /// replication slot (`archive=stream`, the default).
    pub archive_push: bool,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_uri(true))
    }
}

impl PgSource {
    /// Parses a `postgresql://` (or `postgres://`) URI.
    ///
    /// Errors (`OB_INVALID_ARGUMENT`): not a URI, no user, no `pgdata=`, a relative
    /// or `..`-carrying `pgdata`, a bad port, an unknown query parameter. Messages
    /// never carry the password.
    pub fn parse(uri: &str) -> Result<PgSource, (Code, String)> {
        let invalid = |m: String| (Code::InvalidArgument, m);
        let shown = || {
            let scheme = uri.split("://").next().unwrap_or("postgresql");
            let rest = uri.split("://").nth(1).unwrap_or("");
            let host_part = rest.rsplit('@').next().unwrap_or(rest);
            let host_part = host_part.split('?').next().unwrap_or(host_part);
            format!("{scheme}://…@{host_part}")
        };
        // libpq allows an empty host (`user@/db?host=/socket/dir`); the URL parser
        // does not, so give it a placeholder that `host=` then replaces.
        let fixed = uri.trim().replacen("@/", "@localhost/", 1);
        let url = url::Url::parse(&fixed)
            .map_err(|e| invalid(format!("tenant source {}: {e}", shown())))?;
        if url.scheme() != "postgresql" && url.scheme() != "postgres" {
            return Err(invalid(format!(
                "tenant source {} is not postgresql://",
                shown()
            )));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let mut user = decode(url.username());
        let mut password = url.password().map(decode);
        let mut host = url.host_str().unwrap_or("").to_string();
        let mut port = url.port();
        let mut pgdata = None;
        let mut dbname = url.path().trim_start_matches('/').to_string();
        let mut archive_push = false;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "archive" => {
                    archive_push = match v.as_ref() {
                        "push" => true,
                        "stream" => false,
                        other => {
                            return Err(invalid(format!(
                                "tenant source {}: archive='{other}' is neither stream (a replication slot, the default) nor push (archive_command = 'backstop wal-push …')",
                                shown()
                            )));
                        }
                    }
                }
                "pgdata" => pgdata = Some(v.into_owned()),
                "host" => host = v.into_owned(),
                "port" => {
                    port = Some(v.parse().map_err(|_| {
                        invalid(format!(
                            "tenant source {}: port '{v}' is not a number",
                            shown()
                        ))
                    })?)
                }
                "password" => password = Some(v.into_owned()),
                "dbname" => dbname = v.into_owned(),
                "user" if user.is_empty() => user = v.into_owned(),
                "user" => {}
                other => {
                    return Err(invalid(format!(
                        "tenant source {}: unknown parameter '{other}' (known: pgdata, host, port, password, dbname, archive)",
                        shown()
                    )));
                }
            }
        }
        if user.is_empty() {
            return Err(invalid(format!(
                "tenant source {} names no user: postgresql://USER@HOST:PORT/DBNAME?pgdata=/abs/path",
                shown()
            )));
        }
        if host.is_empty() {
            host = "localhost".to_string();
        }
        let Some(pgdata) = pgdata else {
            return Err(invalid(format!(
                "tenant source {} has no pgdata=: add ?pgdata=/abs/path, the server's data_directory as the worker's host sees it",
                shown()
            )));
        };
        let pgdata = match validate_source(&format!("dir://{pgdata}")) {
            Ok(d) => d.trim_start_matches("dir://").to_string(),
            Err((c, m)) => return Err((c, format!("pgdata: {}", m.replace("dir://", "")))),
        };
        if dbname.is_empty() {
            dbname = "postgres".to_string();
        }
        if [&user, &host, &dbname]
            .iter()
            .any(|s| s.chars().any(char::is_control))
        {
            return Err(invalid("tenant source contains a control character".into()));
        }
        Ok(PgSource {
            user,
            password: password.filter(|p| !p.is_empty()),
            host,
            port: port.unwrap_or(5432),
            dbname,
            pgdata,
            archive_push,
        })
    }

    /// Whether [`Self::host`] is a Unix socket directory.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The normalized URI; with `redacted`, the password reads `***`.
    pub fn to_uri(&self, redacted: bool) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut out = format!("postgresql://{}@", enc(&self.user));
        if self.is_socket() {
            out.push_str(&format!(
                "/{}?host={}&port={}",
                enc(&self.dbname),
                enc(&self.host),
                self.port
            ));
        } else {
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            out.push_str(&format!("{host}:{}/{}?", self.port, enc(&self.dbname)));
        }
        if !out.ends_with('?') {
            out.push('&');
        }
        out.push_str(&format!("pgdata={}", enc(&self.pgdata)));
        if self.archive_push {
            out.push_str("&archive=push");
        }
        if let Some(p) = &self.password {
            let p = if redacted { "***".to_string() } else { enc(p) };
            out.push_str(&format!("&password={p}"));
        }
        out
    }
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
        let pg = PgSource::parse("postgresql://bk:s3cr%40t@db1:5433/app?pgdata=/var/lib/pg//15/")
            .unwrap();
        assert_eq!(
            (
                pg.user.as_str(),
                pg.password.as_deref(),
                pg.host.as_str(),
                pg.port,
                pg.dbname.as_str(),
                pg.pgdata.as_str()
            ),
            ("bk", Some("s3cr@t"), "db1", 5433, "app", "/var/lib/pg/15")
        );
        assert_eq!(
            redact_source(&pg.to_uri(false)),
            "postgresql://bk@db1:5433/app?pgdata=%2Fvar%2Flib%2Fpg%2F15&password=***"
        );
        assert_eq!(PgSource::parse(&pg.to_uri(false)).unwrap(), pg);
        let sock = PgSource::parse(
            "postgres://postgres@/postgres?host=/tmp/s&port=6000&pgdata=/d&password=x",
        )
        .unwrap();
        assert!(sock.is_socket());
        let by_param = PgSource::parse("postgresql://db1/app?user=bk&pgdata=/d").unwrap();
        assert_eq!(by_param.user, "bk");
        assert_eq!((sock.host.as_str(), sock.port), ("/tmp/s", 6000));
        assert_eq!(PgSource::parse(&sock.to_uri(false)).unwrap(), sock);
        assert!(!format!("{sock:?}").contains("=x"));
        let push = PgSource::parse("postgresql://bk@db1/app?pgdata=/d&archive=push").unwrap();
        assert!(push.archive_push && !pg.archive_push);
        assert_eq!(PgSource::parse(&push.to_uri(false)).unwrap(), push);
        assert!(PgSource::parse("postgresql://bk@db1/app?pgdata=/d&archive=ftp").is_err());
        for bad in [
            "postgresql://db1/app?pgdata=/d",
            "postgresql://u@db1/app",
            "postgresql://u@db1/app?pgdata=rel",
            "postgresql://u@db1/app?pgdata=/a/../b",
            "postgresql://u@db1/app?pgdata=/d&port=x",
            "postgresql://u@db1/app?pgdata=/d&sslmode=disable",
        ] {
            assert!(validate_source(bad).is_err(), "{bad}");
        }
        let (_, m) = validate_source("postgresql://u:topsecret@db1/app").unwrap_err();
        assert!(!m.contains("topsecret"), "{m}");
        for bad in ["", "1t", "t-1", "t 1", &"x".repeat(65)] {
            assert!(validate_name("tenant", bad).is_err(), "{bad}");
        }
    }
}
