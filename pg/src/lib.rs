//! The PostgreSQL source kind (`postgresql://…?pgdata=/abs/path`, parsed by
//! [`backstop_common::source::PgSource`]).
//!
//! What is here, and what PostgreSQL calls it:
//! - [`connect`]: the control connection (`tokio-postgres`; password from the URI or
//!   libpq's `PGPASSFILE`);
//! - [`check`]: what `CREATE TENANT` verifies before it accepts a cluster
//!   (`wal_level`, the `REPLICATION` attribute, `data_directory`), returning
//!   [`ServerInfo`] with the cluster's `system_identifier` (its identity) and
//!   timeline;
//! - [`Lsn`]: a WAL position, PostgreSQL's `pg_lsn`. For PostgreSQL tenants an SCN is
//!   an LSN: a byte position in the cluster's WAL stream;
//! - [`wal`]: WAL segment file names and reading WAL bytes from `pg_wal/`;
//! - [`stream`]: the WAL streamed over the replication protocol (physical slot);
//! - [`walrec`]: finding the first transaction that ended after a time in the WAL;
//! - [`session`]: the non-exclusive hot backup (`pg_backup_start` /
//!   `pg_backup_stop` on one held connection) and the archive's physical
//!   replication slot;
//! - [`layout`]: what a base backup leaves out of the data directory (PostgreSQL's
//!   documented exclusion list) and the restore's recovery settings.

pub mod layout;
pub mod session;
pub mod stream;
pub mod wal;
pub mod walrec;

use std::time::Duration;

use backstop_common::source::PgSource;
use tokio_postgres::{Client, NoTls};
use tracing::debug;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL-side failure. Messages never carry the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server cannot be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// The source URI, redacted.
        target: String,
        /// libpq-style reason.
        reason: String,
    },
    /// `wal_level` is `minimal`: the WAL cannot rebuild a base backup.
    #[error(
        "PostgreSQL at {target} has wal_level = {level}; backups need wal_level = replica (or logical): set it in postgresql.conf and restart the server"
    )]
    WalLevel {
        /// The source URI, redacted.
        target: String,
        /// What the server has.
        level: String,
    },
    /// The role has neither `REPLICATION` nor `SUPERUSER`.
    #[error(
        "role {user} has no replication privilege: ALTER ROLE {user} REPLICATION (the archive keeps a physical replication slot)"
    )]
    NoReplication {
        /// The role.
        user: String,
    },
    /// `pgdata` is not the server's `data_directory`.
    #[error(
        "pgdata={given} is not the server's data_directory ({server}); give the data directory the server reports (SHOW data_directory)"
    )]
    DataDirectory {
        /// From the URI.
        given: String,
        /// `SHOW data_directory`.
        server: String,
    },
    /// This host cannot read the data directory.
    #[error(
        "cannot read the data directory {path}: {reason} (the worker reads PGDATA itself: run it on the cluster's host as a user that can read it)"
    )]
    Unreadable {
        /// Path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// The server is a standby (in recovery).
    #[error("PostgreSQL at {target} is in recovery (a standby): protect the primary")]
    InRecovery {
        /// The source URI, redacted.
        target: String,
    },
    /// The replication slot was invalidated (`wal_status = lost`) or WAL is gone.
    #[error("WAL lost: {0}")]
    WalLost(String),
    /// A query failed.
    #[error("PostgreSQL: {0}")]
    Query(String),
    /// A malformed LSN or WAL file name.
    #[error("{0}")]
    Invalid(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Query(describe(&e))
    }
}

/// The server's message when it sent one, else the driver's.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// Result with [`PgError`].
pub type Result<T, E = PgError> = std::result::Result<T, E>;

/// A WAL position (PostgreSQL's `pg_lsn`): a byte offset in the cluster's WAL
/// stream. Written `X/Y` (hex, as PostgreSQL prints it) or as a decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `X/Y` (hex halves) or a decimal number.
    ///
    /// Errors: [`PgError::Invalid`] naming the text.
    pub fn parse(s: &str) -> Result<Lsn> {
        let s = s.trim();
        let bad = || {
            PgError::Invalid(format!(
                "'{s}' is not an LSN (write X/Y, e.g. 0/3000060, or a decimal byte position)"
            ))
        };
        if let Some((hi, lo)) = s.split_once('/') {
            let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
            let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
            return Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)));
        }
        s.parse().map(Lsn).map_err(|_| bad())
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&backstop_common::source::lsn_text(self.0))
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `pg_control_system().system_identifier`: the cluster's identity, kept by
    /// every copy and restore of it.
    pub system_identifier: u64,
    /// The timeline the server writes (from `pg_walfile_name(pg_current_wal_lsn())`).
    pub timeline: u32,
    /// `wal_segment_size`, bytes.
    pub wal_segment_size: u64,
    /// `data_directory`.
    pub data_directory: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: u32,
    /// `pg_current_wal_flush_lsn()`.
    pub flush_lsn: Lsn,
}

/// Looks `src` up in libpq's password file (`PGPASSFILE`, else `~/.pgpass`): lines
/// `hostname:port:database:username:password`, `*` matching anything, `\:` and `\\`
/// escaped. `None` when there is no file or no matching line.
pub fn pgpass_lookup(src: &PgSource) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    pgpass_match(&text, src)
}

/// The password for `src` in the text of a libpq password file.
pub fn pgpass_match(text: &str, src: &PgSource) -> Option<String> {
    let host = if src.is_socket() {
        "localhost"
    } else {
        src.host.as_str()
    };
    let port = src.port.to_string();
    // Bounded: a password file is small; look at its first 10,000 lines.
    for line in text.lines().take(10_000) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let want = [host, port.as_str(), src.dbname.as_str(), src.user.as_str()];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Opens the control connection (`application_name = backstop`). The connection
/// runs on a spawned task and ends when the returned client is dropped.
///
/// Errors: [`PgError::Connect`] (unreachable, refused, bad password, timeout).
pub async fn connect(src: &PgSource) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&src.user)
        .dbname(&src.dbname)
        .port(src.port)
        .application_name("backstop")
        .connect_timeout(CONNECT_TIMEOUT);
    if src.is_socket() {
        cfg.host_path(&src.host);
    } else {
        cfg.host(&src.host);
    }
    if let Some(p) = src.password.clone().or_else(|| pgpass_lookup(src)) {
        cfg.password(p);
    }
    let target = src.to_uri(true);
    let connecting =
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(2), cfg.connect(NoTls));
    let (client, conn) = match connecting.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Err(PgError::Connect {
                target,
                reason: describe(&e),
            });
        }
        Err(_) => {
            return Err(PgError::Connect {
                target,
                reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            });
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %describe(&e), "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Reads [`ServerInfo`] on an open connection.
///
/// Errors: [`PgError::InRecovery`] on a standby; [`PgError::Query`] when the role
/// may not read `data_directory` (it needs superuser or `pg_read_all_settings`).
pub async fn server_info(client: &Client, target: &str) -> Result<ServerInfo> {
    let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await?;
    if row.get::<_, bool>(0) {
        return Err(PgError::InRecovery {
            target: target.to_string(),
        });
    }
    let row = client
        .query_one(
            "SELECT current_setting('data_directory'), \
                    current_setting('server_version_num')::int4, \
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
                    (SELECT system_identifier FROM pg_control_system())::text, \
                    pg_walfile_name(pg_current_wal_flush_lsn()), \
                    pg_current_wal_flush_lsn()::text",
            &[],
        )
        .await?;
    let sysid: String = row.get(3);
    let walfile: String = row.get(4);
    let timeline = walfile
        .get(..8)
        .and_then(|t| u32::from_str_radix(t, 16).ok())
        .ok_or_else(|| PgError::Invalid(format!("unexpected WAL file name '{walfile}'")))?;
    Ok(ServerInfo {
        system_identifier: sysid
            .parse::<i64>()
            .map(|v| v as u64)
            .map_err(|_| PgError::Invalid(format!("system_identifier '{sysid}'")))?,
        timeline,
        wal_segment_size: row.get::<_, i64>(2) as u64,
        data_directory: row.get(0),
        server_version_num: row.get::<_, i32>(1) as u32,
        flush_lsn: Lsn::parse(&row.get::<_, String>(5))?,
    })
}

/// Checks that `src` can be protected, in the order a DBA would fix things: the
/// server answers, `wal_level` ≥ `replica`, the role has `REPLICATION` (or is a
/// superuser), `pgdata` is the server's `data_directory`, and (with `local`, where
/// this host is the worker's) it can be read here.
///
/// Errors: the [`PgError`] variant of the first check that fails.
pub async fn check(src: &PgSource, local: bool) -> Result<ServerInfo> {
    let target = src.to_uri(true);
    let client = connect(src).await?;
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
                    coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false)",
            &[],
        )
        .await?;
    let level: String = row.get(0);
    if level == "minimal" {
        return Err(PgError::WalLevel { target, level });
    }
    // With archive=push the WAL comes through archive_command: no replication
    // connection, no slot.
    if !row.get::<_, bool>(1) && !src.archive_push {
        return Err(PgError::NoReplication {
            user: src.user.clone(),
        });
    }
    let info = server_info(&client, &target).await?;
    let same = info.data_directory.trim_end_matches('/') == src.pgdata.trim_end_matches('/')
        || match (
            std::fs::canonicalize(&info.data_directory),
            std::fs::canonicalize(&src.pgdata),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
    if !same {
        return Err(PgError::DataDirectory {
            given: src.pgdata.clone(),
            server: info.data_directory.clone(),
        });
    }
    if local {
        let probe = std::path::Path::new(&src.pgdata).join("global/pg_control");
        if let Err(e) = std::fs::File::open(&probe) {
            return Err(PgError::Unreadable {
                path: probe.display().to_string(),
                reason: e.to_string(),
            });
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_both_ways() {
        assert_eq!(Lsn::parse("0/3000060").unwrap(), Lsn(0x300_0060));
        assert_eq!(Lsn::parse("1/0").unwrap(), Lsn(1 << 32));
        assert_eq!(Lsn::parse("50331744").unwrap(), Lsn(50_331_744));
        assert_eq!(Lsn(0x1_0300_0060).to_string(), "1/3000060");
        for bad in ["", "x/1", "1/", "-1", "0/123456789"] {
            assert!(Lsn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_file_is_read_like_libpq() {
        let text = "# comment\nother:*:*:*:no\ndb1:5433:*:bk:p\\:w\n";
        let src = PgSource::parse("postgresql://bk@db1:5433/app?pgdata=/d").unwrap();
        assert_eq!(pgpass_match(text, &src).as_deref(), Some("p:w"));
        let other = PgSource::parse("postgresql://bk@db2:5433/app?pgdata=/d").unwrap();
        assert_eq!(pgpass_match(text, &other), None);
    }
}
