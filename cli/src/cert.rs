//! `backstop cert`: a small cluster CA and the certificates of its processes, for
//! installs without a PKI of their own (rcgen, ECDSA P-256).
//!
//! - `cert init --dir D` writes `D/ca.pem` and `D/ca.key` (mode 0600), a CA valid
//!   for 10 years.
//! - `cert issue --dir D --role meta|worker|gateway|client NAME [--host H]…` writes
//!   `D/NAME.pem` and `D/NAME.key`, valid for 1 year, signed by that CA. The subject
//!   is `CN=NAME, OU=ROLE` (the role Backstop's services read,
//!   [`backstop_client::tls::peer_identity`]); the SANs are NAME (when it is a host
//!   name), every `--host`, and `localhost` / `127.0.0.1`.
//!   A `client` certificate's NAME is the `user@tenant` it logs in as.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use backstop_client::Role;
use clap::{Args, Subcommand, ValueEnum};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// `backstop cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: CertCmd,
}

/// `backstop cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Create the cluster CA (`ca.pem`, `ca.key`) in `--dir`.
    Init {
        /// Directory of the CA and the certificates it issues (created if missing).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Replace an existing CA (every certificate it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue `NAME.pem` and `NAME.key`, signed by the CA in `--dir`.
    Issue {
        /// Directory holding `ca.pem` and `ca.key`; the new files go there too.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The holder's role, written to the subject's OU.
        #[arg(long, value_enum)]
        role: CertRole,
        /// Host name (CN) of a node, or `user@tenant` for a client certificate.
        name: String,
        /// Another DNS name or IP address the holder is reached at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days the certificate stays valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

/// `--role`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CertRole {
    /// A meta node.
    Meta,
    /// A worker.
    Worker,
    /// A SQL gateway.
    Gateway,
    /// A person or script logging in as `user@tenant`.
    Client,
}

impl From<CertRole> for Role {
    fn from(r: CertRole) -> Role {
        match r {
            CertRole::Meta => Role::Meta,
            CertRole::Worker => Role::Worker,
            CertRole::Gateway => Role::Gateway,
            CertRole::Client => Role::Client,
        }
    }
}

/// Runs `backstop cert`.
pub fn run(args: CertArgs) -> anyhow::Result<()> {
    match args.cmd {
        CertCmd::Init { dir, force } => {
            let (cert, _) = init(&dir, force)?;
            println!("cluster CA: {}", cert.display());
        }
        CertCmd::Issue {
            dir,
            role,
            name,
            hosts,
            days,
        } => {
            let (cert, key) = issue(&dir, role.into(), &name, &hosts, days)?;
            println!("{}: {} {}", role_name(role), cert.display(), key.display());
        }
    }
    Ok(())
}

fn role_name(r: CertRole) -> &'static str {
    Role::from(r).name()
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Writes `dir/ca.pem` and `dir/ca.key`; returns their paths. Errors when a CA is
/// there already (unless `force`) or the files cannot be written.
pub fn init(dir: &Path, force: bool) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if !force && (cert_path.exists() || key_path.exists()) {
        bail!(
            "{} already holds a CA; pass --force to replace it (every certificate it issued stops being trusted)",
            dir.display()
        );
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Backstop cluster CA");
    dn.push(DnType::OrganizationName, "Backstop");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now() - time::Duration::hours(1);
    params.not_after = now() + time::Duration::days(3650);
    let key = KeyPair::generate().context("generate the CA key")?;
    let cert = params.self_signed(&key).context("sign the CA")?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok((cert_path, key_path))
}

/// Writes `dir/NAME.pem` and `dir/NAME.key`, signed by the CA in `dir`; returns
/// their paths. Errors: no CA in `dir`, a NAME that is not a file name, or a
/// `--host` that is neither a DNS name nor an IP address.
pub fn issue(
    dir: &Path,
    role: Role,
    name: &str,
    hosts: &[String],
    days: u32,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        bail!("certificate name '{name}': use 1-128 letters, digits, '-', '_', '.', '@'");
    }
    if role == Role::Client && !name.contains('@') {
        bail!("a client certificate is named user@tenant (e.g. root@sys), not '{name}'");
    }
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).with_context(|| {
        format!(
            "read {} (run `backstop cert init` first)",
            dir.join("ca.pem").display()
        )
    })?;
    let ca_key_pem = std::fs::read_to_string(dir.join("ca.key"))
        .with_context(|| format!("read {}", dir.join("ca.key").display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("parse ca.key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("parse ca.pem")?;

    let mut sans: Vec<String> = Vec::new();
    if role != Role::Client {
        sans.push(name.to_string());
        sans.extend(hosts.iter().cloned());
        sans.push("localhost".to_string());
        sans.push("127.0.0.1".to_string());
    }
    sans.dedup();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .with_context(|| format!("'{s}' is neither a DNS name nor an IP address")),
        })
        .collect::<anyhow::Result<_>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationalUnitName, role.name());
    dn.push(DnType::OrganizationName, "Backstop");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match role {
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = now() - time::Duration::hours(1);
    params.not_after = now() + time::Duration::days(i64::from(days.max(1)));
    let key = KeyPair::generate().context("generate the key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("sign the certificate")?;
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok((cert_path, key_path))
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use backstop_client::{Tls, TlsFiles, peer_identity};

    #[test]
    fn issued_certificates_load_and_name_their_role() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), false).unwrap();
        let again = init(dir.path(), false).unwrap_err().to_string();
        assert!(again.contains("--force"), "{again}");
        let (cert, key) = issue(dir.path(), Role::Worker, "w1", &["10.0.0.7".into()], 30).unwrap();
        let tls = Tls::load(&TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: Some(cert.clone()),
            key: Some(key.clone()),
        })
        .unwrap();
        assert!(tls.has_identity());
        tls.server().unwrap();
        let pem = std::fs::read(&cert).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let id = peer_identity(&der.contents).unwrap();
        assert_eq!(id.role, Role::Worker);
        assert_eq!(id.name, "w1");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let err = issue(dir.path(), Role::Client, "alice", &[], 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("user@tenant"), "{err}");
        let (c, _) = issue(dir.path(), Role::Client, "alice@t1", &[], 30).unwrap();
        let pem = std::fs::read(&c).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        assert_eq!(peer_identity(&der.contents).unwrap().name, "alice@t1");
        // A certificate without a role is refused when loaded.
        let err = Tls::load(&TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: Some(dir.path().join("ca.pem")),
            key: Some(dir.path().join("ca.key")),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("no OU naming a role"), "{err}");
    }
}
