//! The server-side halves of a backup: the non-exclusive hot backup and the
//! archive's physical replication slot.
//!
//! A hot backup is `pg_backup_start(label, fast => true)` … copy … `pg_backup_stop()`
//! on one connection held throughout (PostgreSQL's low-level base backup API; the
//! user-managed BEGIN/END BACKUP of Oracle's procedure). If that connection ends
//! (the worker died, the backup was cancelled), the server aborts the backup
//! itself: nothing is left in progress.
//!
//! The archive's slot is `backstop_<tenant_id>`, physical, reserving WAL from its
//! creation (`immediately_reserve`). It is advanced only to what is durable at the
//! destination, so the server keeps every segment the archive still needs.

use tokio_postgres::Client;

use crate::{Lsn, PgError, Result};

/// A hot backup in progress: the connection that started it.
pub struct BackupSession {
    client: Client,
    /// `pg_backup_start`'s result: the redo point of the backup's checkpoint, where
    /// replay of a restore begins.
    pub start_lsn: Lsn,
}

/// What `pg_backup_stop` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStop {
    /// The backup's end: a restore is consistent from here on.
    pub stop_lsn: Lsn,
    /// The `backup_label` file's contents; a restore writes it into the data dir
    /// (without it PostgreSQL starts from the wrong checkpoint).
    pub backup_label: String,
    /// The `tablespace_map` file's contents (empty without tablespaces).
    pub tablespace_map: String,
}

impl BackupSession {
    /// Starts a hot backup on `client` (which it keeps), with an immediate
    /// checkpoint.
    ///
    /// Errors: [`PgError::Query`] (another backup with this connection, no
    /// privilege: `pg_backup_start` needs superuser or an explicit GRANT).
    pub async fn start(client: Client, label: &str) -> Result<BackupSession> {
        let row = client
            .query_one("SELECT pg_backup_start($1, true)::text", &[&label])
            .await?;
        let start_lsn = Lsn::parse(&row.get::<_, String>(0))?;
        Ok(BackupSession { client, start_lsn })
    }

    /// Ends the backup (`pg_backup_stop(wait_for_archive => false)`: the WAL is
    /// Backstop's own archive, which waits for it).
    pub async fn stop(self) -> Result<BackupStop> {
        let row = self
            .client
            .query_one(
                "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)",
                &[],
            )
            .await?;
        Ok(BackupStop {
            stop_lsn: Lsn::parse(&row.get::<_, String>(0))?,
            backup_label: row.get(1),
            tablespace_map: row.get(2),
        })
    }

    /// Whether the connection still holds the backup (it ends with the session).
    pub fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }
}

/// The archive's slot name for a tenant.
pub fn slot_name(tenant_id: u64) -> String {
    format!("backstop_{tenant_id}")
}

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Oldest WAL the slot keeps.
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost` (invalidated by
    /// `max_slot_wal_keep_size`).
    pub wal_status: String,
}

/// The slot's state, `None` when it does not exist.
pub async fn slot_state(client: &Client, name: &str) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT restart_lsn::text, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    row.map(|r| {
        Ok(SlotState {
            restart_lsn: r
                .get::<_, Option<String>>(0)
                .map(|s| Lsn::parse(&s))
                .transpose()?,
            wal_status: r.get(1),
        })
    })
    .transpose()
}

/// Creates the physical slot `name`, reserving WAL now, unless it exists.
/// Returns its state.
///
/// Errors: [`PgError::WalLost`] when the slot exists but was invalidated;
/// [`PgError::Query`] otherwise (no free slot: raise `max_replication_slots`).
pub async fn ensure_slot(client: &Client, name: &str) -> Result<SlotState> {
    if slot_state(client, name).await?.is_none() {
        client
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&name],
            )
            .await
            .map_err(|e| {
                PgError::Query(format!(
                    "create replication slot {name}: {}",
                    crate::describe(&e)
                ))
            })?;
    }
    let state = slot_state(client, name)
        .await?
        .ok_or_else(|| PgError::Query(format!("replication slot {name} vanished")))?;
    if state.wal_status == "lost" {
        return Err(PgError::WalLost(format!(
            "replication slot {name} was invalidated (wal_status = lost: max_slot_wal_keep_size)"
        )));
    }
    Ok(state)
}

/// Moves the slot forward to `lsn` (never back): the server may then recycle WAL
/// before it.
///
/// Errors: [`PgError::WalLost`] when the slot is gone or invalidated.
pub async fn advance_slot(client: &Client, name: &str, lsn: Lsn) -> Result<()> {
    let Some(state) = slot_state(client, name).await? else {
        return Err(PgError::WalLost(format!(
            "replication slot {name} was dropped while the archive ran"
        )));
    };
    if state.wal_status == "lost" {
        return Err(PgError::WalLost(format!(
            "replication slot {name} was invalidated (wal_status = lost: max_slot_wal_keep_size)"
        )));
    }
    if state.restart_lsn.is_some_and(|r| r >= lsn) {
        return Ok(());
    }
    let text = lsn.to_string();
    client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&name, &text],
        )
        .await?;
    Ok(())
}

/// Drops the slot if it exists (`NOARCHIVELOG`).
pub async fn drop_slot(client: &Client, name: &str) -> Result<()> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    Ok(())
}

/// `pg_current_wal_flush_lsn()` and the timeline it is on.
pub async fn flush_position(client: &Client) -> Result<(Lsn, u32)> {
    let row = client
        .query_one(
            "SELECT pg_current_wal_flush_lsn()::text, pg_walfile_name(pg_current_wal_flush_lsn())",
            &[],
        )
        .await?;
    let name: String = row.get(1);
    let tli = name
        .get(..8)
        .and_then(|t| u32::from_str_radix(t, 16).ok())
        .ok_or_else(|| PgError::Invalid(format!("unexpected WAL file name '{name}'")))?;
    Ok((Lsn::parse(&row.get::<_, String>(0))?, tli))
}
