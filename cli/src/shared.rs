//! What every command's flags share, below `args.rs`, `config.rs` and `ctl/`: the
//! default meta address, the TLS files of one process, and a restore's target (the
//! offline `backstop restore` and `ctl restore` take the same flags).

use std::path::PathBuf;

/// Where a client looks for the meta service without `--meta`.
pub const DEFAULT_META_ADDR: &str = "127.0.0.1:2882";

/// TLS files of one process (`docs/SECURITY.md`); the config file's `[tls]`
/// section gives the same. Without them a process speaks plaintext gRPC, which a
/// meta node allows on loopback only.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// The cluster CA certificate (PEM) that signs every peer (`backstop cert init`).
    #[arg(long, env = "BACKSTOP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), signed by the CA (`backstop cert issue`).
    #[arg(long, env = "BACKSTOP_TLS_CERT", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, env = "BACKSTOP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The flags, else the config file's `[tls]`; `None` for plaintext.
    pub fn files(
        &self,
        file: Option<&backstop_client::TlsFiles>,
    ) -> Option<backstop_client::TlsFiles> {
        match &self.tls_ca {
            Some(ca) => Some(backstop_client::TlsFiles {
                ca: ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            }),
            None => file.cloned(),
        }
    }

    /// [`TlsArgs::files`], loaded.
    pub fn load(
        &self,
        file: Option<&backstop_client::TlsFiles>,
    ) -> anyhow::Result<Option<backstop_client::Tls>> {
        match self.files(file) {
            Some(files) => Ok(Some(backstop_client::Tls::load(&files)?)),
            None => Ok(None),
        }
    }
}

/// `--until-scn`: decimal, or a PostgreSQL LSN written `X/Y`.
pub fn parse_scn(s: &str) -> Result<u64, String> {
    backstop_pg::Lsn::parse(s)
        .map(|l| l.0)
        .map_err(|e| format!("{e} (an SCN is decimal; a PostgreSQL LSN may be written X/Y)"))
}

/// `--until-time`: RFC 3339 (`2026-11-23T18:00:00Z`) or ms since the epoch, as ms
/// since the epoch.
pub fn parse_time_ms(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("'{s}': {e} (expected RFC 3339, e.g. 2026-11-23T18:00:00Z, or ms since the epoch)")
    })?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| format!("'{s}' is before 1970"))
}

/// `--tablespace-map OLD=NEW`.
fn parse_tablespace_mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() && new.starts_with('/') => {
            Ok((old.to_string(), new.to_string()))
        }
        _ => Err(format!(
            "'{s}': expected OLD=NEW, OLD a tablespace's old location or OID and NEW an absolute directory"
        )),
    }
}

/// Where a restore goes and how: the flags `backstop restore` and `ctl restore`
/// share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RestoreTargetArgs {
    /// Restore the log up to this SCN (default: everything archived). For a
    /// PostgreSQL tenant an LSN, in PostgreSQL's `X/Y` form or in decimal; the
    /// restored cluster replays every record that starts before it.
    #[arg(long, conflicts_with = "until_time", value_parser = parse_scn)]
    pub until_scn: Option<u64>,
    /// Restore up to the last checkpoint at or before this time (RFC 3339, e.g.
    /// 2026-11-23T18:00:00Z, or ms since the epoch).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub until_time: Option<u64>,
    /// Use this backup set (default: the newest that reaches the target).
    #[arg(long)]
    pub backup_set: Option<u64>,
    /// Restore from this incarnation (default: the newest at the destination). After
    /// a point-in-time restore was protected again (ALTER TENANT … SOURCE), the
    /// history before it, including points past the fork, is incarnation N-1.
    #[arg(long)]
    pub incarnation: Option<u64>,
    /// PostgreSQL tenants: give the restored data directory to this user, the one
    /// who will run `postgres -D DIR` (default: whoever runs the restore).
    #[arg(long)]
    pub owner: Option<String>,
    /// PostgreSQL tenants: restore a tablespace into another directory, as
    /// `OLD=NEW` (OLD its location when the backup was taken, or its OID; NEW an
    /// absolute directory, empty or missing), like `pg_basebackup
    /// --tablespace-mapping`. Repeat it per tablespace. A tablespace not named goes
    /// back to its old location, which must then be empty or missing.
    #[arg(long = "tablespace-map", value_name = "OLD=NEW", value_parser = parse_tablespace_mapping)]
    pub tablespace_map: Vec<(String, String)>,
}

impl RestoreTargetArgs {
    /// The choices beyond the SCN and the set, as a restore task carries them.
    pub fn options(&self) -> backstop_common::task::RestoreOptions {
        backstop_common::task::RestoreOptions {
            until_time_ms: self.until_time,
            incarnation: self.incarnation,
            owner: self.owner.clone(),
            tablespace_map: self.tablespace_map.clone(),
        }
    }
}
