//! Commands that need only a destination: `restore` and `validate`.

use anyhow::{Context, bail};
use backstop_common::seal::Keyring;
use backstop_common::{BackupSetId, PieceId, RoundId};
use backstop_worker::dest_catalog::find_tenant;
use backstop_worker::restore::{self, RestoreArgs};
use backstop_worker::storage::TenantStore;
use backstop_worker::validate::{validate_piece, validate_set};
use tokio_util::sync::CancellationToken;

use crate::args;

/// `backstop restore`.
pub async fn restore(a: args::RestoreArgs) -> anyhow::Result<()> {
    let mut args = RestoreArgs::new(
        a.dest,
        a.tenant,
        a.to,
        a.target.until_scn,
        a.target.backup_set.map(BackupSetId),
        a.target.options(),
    );
    if let Some(file) = &a.decryption_password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read --decryption-password-file {}", file.display()))?;
        let passwords = Keyring::parse_password_file(&text);
        if passwords.is_empty() {
            bail!("{} holds no password (one per line)", file.display());
        }
        args.keys = Keyring::with_passwords(passwords);
    }
    let cancel = CancellationToken::new();
    let info = restore::restore(&args, &cancel).await.context("restore")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!(
            "restored tenant {} ({}) incarnation {} from backup set {} to SCN {}: {} datafiles ({} bytes), log [{}, {}) ({} bytes) into {}",
            info.tenant_name,
            info.tenant_id,
            info.incarnation,
            info.backup_set_id,
            info.until_scn,
            info.files,
            info.data_bytes,
            info.start_replay_scn,
            info.until_scn,
            info.log_bytes,
            args.to.display()
        );
        println!("target: {}", info.target);
        if let Some(lsn) = &info.until_lsn {
            println!(
                "PostgreSQL: start the server on {} as its owner; it recovers to LSN {lsn} (every WAL record before it) and promotes",
                args.to.display()
            );
        }
        for t in &info.tablespaces {
            println!(
                "tablespace {}: {} (was {})",
                t.oid, t.location, t.old_location
            );
        }
        for f in &info.fallbacks {
            println!("fell back from {f}");
        }
    }
    Ok(())
}

/// `backstop validate`.
pub async fn validate(a: args::ValidateArgs) -> anyhow::Result<()> {
    let dest = find_tenant(&a.dest, &a.tenant, a.incarnation).await?;
    let store = TenantStore::open(&dest)?;
    let cancel = CancellationToken::new();
    let (what, v) = match (a.backup_set, a.piece.as_deref()) {
        (Some(id), None) => (
            format!("backup set {id}"),
            validate_set(&store, BackupSetId(id), &cancel).await?,
        ),
        (None, Some(p)) => {
            let (r, p) = p
                .split_once('/')
                .context("--piece takes ROUND/PIECE, e.g. 1/3")?;
            let (r, p): (u64, u64) = (r.parse()?, p.parse()?);
            (
                format!("piece {r}/{p}"),
                validate_piece(&store, RoundId(r), PieceId(p), &cancel).await?,
            )
        }
        _ => bail!("give --backup-set N or --piece ROUND/PIECE"),
    };
    if v.bad.is_empty() {
        println!("{what}: {} objects, all checksums match", v.objects);
        return Ok(());
    }
    for b in &v.bad {
        println!("BAD {b}");
    }
    bail!("{what}: {} of {} objects are bad", v.bad.len(), v.objects)
}

/// `backstop wal-push`: exit 0 only once the file is durable at the destination (or
/// the same bytes already were); PostgreSQL retries it otherwise.
pub async fn wal_push(a: args::WalPushArgs) -> anyhow::Result<()> {
    use backstop_worker::wal_push::{Pushed, push};
    let done = push(&a.dest, &a.tenant, a.incarnation, &a.path, &a.name)
        .await
        .with_context(|| format!("wal-push {}", a.name))?;
    if done == Pushed::AlreadyThere {
        eprintln!("{} was already archived with the same contents", a.name);
    }
    Ok(())
}
