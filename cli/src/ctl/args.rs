//! `ctl`'s subcommands and flags (clap).

use clap::Subcommand;
use std::time::Duration;

use crate::shared::DEFAULT_META_ADDR;

/// `backstop ctl` arguments.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// Meta node addresses (comma-separated host:port); any member works.
    #[arg(long, env = "BACKSTOP_META", value_delimiter = ',', default_value = DEFAULT_META_ADDR)]
    pub meta: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many seconds without a reachable leader.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Log in as USER@TENANT (`root@sys` is the cluster administrator); the
    /// password comes from the BACKSTOP_PASSWORD environment variable. Not needed
    /// with a client certificate (`--tls-cert`), whose CN names the user.
    #[arg(long, env = "BACKSTOP_USER")]
    pub user: Option<String>,
    /// TLS to the meta service: the cluster CA, and a `client` certificate if you
    /// log in with one.
    #[command(flatten)]
    pub tls: crate::shared::TlsArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCmd,
}

/// `ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCmd {
    /// Cluster identity, leader, term, indexes and members.
    Status,
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Parameters (backup_dest, backup_backup_dest, …).
    #[command(subcommand, name = "param")]
    Param(ParamCmd),
    /// Users (user@tenant).
    #[command(subcommand)]
    User(UserCmd),
    /// Meta group membership.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Start log archiving (ALTER SYSTEM ARCHIVELOG).
    Archivelog {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Stop log archiving (ALTER SYSTEM NOARCHIVELOG).
    Noarchivelog {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Take a data backup (ALTER SYSTEM BACKUP [INCREMENTAL] DATABASE).
    Backup {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Incremental on the latest successful set.
        #[arg(long)]
        incremental: bool,
    },
    /// Validate a backup set (ALTER SYSTEM VALIDATE BACKUPSET n).
    Validate {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Set.
        #[arg(long)]
        backup_set: u64,
    },
    /// Restore a tenant into a directory on a worker's host (records a RESTORE job).
    Restore {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Absolute directory (empty or new) on the worker's host.
        #[arg(long)]
        to: String,
        /// Destination (default: the tenant's backup_dest).
        #[arg(long, default_value = "")]
        dest: String,
        /// Target, set, incarnation, owner and tablespaces, as `backstop restore`.
        #[command(flatten)]
        target: crate::shared::RestoreTargetArgs,
    },
    /// Archive rounds.
    Archive {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup pieces.
    Pieces {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup sets.
    Sets {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Jobs (running, or all with --all).
    Jobs {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Include finished jobs.
        #[arg(long)]
        all: bool,
    },
    /// Tasks: which worker runs what (running, or all with --all).
    Tasks {
        /// Only this job.
        #[arg(long, default_value_t = 0)]
        job: u64,
        /// Include finished tasks.
        #[arg(long)]
        all: bool,
    },
    /// Registered workers.
    Workers,
    /// Backup-of-backup: copy sets, pieces, or the archive continuously
    /// (ALTER SYSTEM BACKUP BACKUPSET / BACKUPPIECE, START|STOP BACKUP ARCHIVELOG).
    #[command(subcommand)]
    Copy(CopyCmd),
    /// End jobs early (ALTER SYSTEM CANCEL …).
    #[command(subcommand)]
    Cancel(CancelCmd),
    /// Suspend data backups (ALTER SYSTEM SUSPEND BACKUP); their finished parts are kept.
    Suspend {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Resume suspended data backups (ALTER SYSTEM RESUME BACKUP).
    Resume {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Continuous archive copies and what the cleaner still has to delete.
    Copies {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup policies: schedules and secondary backup (the OCP way).
    #[command(subcommand)]
    Policy(PolicyCmd),
}

/// Selection shared by `ctl copy set` and `ctl copy piece`.
#[derive(Debug, clap::Args)]
pub struct CopySel {
    /// One set or piece id (default: ALL).
    #[arg(long)]
    pub id: Option<u64>,
    /// Only this tenant (a tenant-level copy; default: cluster level).
    #[arg(long)]
    pub tenant: Option<String>,
    /// ALL NOT BACKED UP n TIMES (needs --dest).
    #[arg(long)]
    pub not_backed_up_times: Option<u64>,
    /// BACKUP_BACKUP_DEST (default: the backup_backup_dest parameter).
    #[arg(long, default_value = "")]
    pub dest: String,
}

/// `ctl copy …`.
#[derive(Debug, Subcommand)]
pub enum CopyCmd {
    /// Copy backup sets (ALTER SYSTEM BACKUP BACKUPSET …).
    Set(CopySel),
    /// Copy backup pieces (ALTER SYSTEM BACKUP BACKUPPIECE …).
    Piece {
        #[command(flatten)]
        sel: CopySel,
        /// WITH ACTIVE: also the active piece, up to its checkpoint.
        #[arg(long)]
        with_active: bool,
    },
    /// Start the continuous archive copy (ALTER SYSTEM START BACKUP ARCHIVELOG).
    Start {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Pause the continuous archive copy (ALTER SYSTEM STOP BACKUP ARCHIVELOG).
    Stop {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `ctl cancel …`.
#[derive(Debug, Subcommand)]
pub enum CancelCmd {
    /// Data backups (ALTER SYSTEM CANCEL BACKUP).
    Backup {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Every live backupset copy job (ALTER SYSTEM CANCEL BACKUP BACKUPSET).
    Backupset,
    /// Every live backuppiece copy job (ALTER SYSTEM CANCEL BACKUP BACKUPPIECE).
    Backuppiece,
    /// A validation job (ALTER SYSTEM CANCEL VALIDATE n).
    Validate {
        /// Job id.
        job: u64,
    },
    /// Every backup-related job at once, even with a destination down
    /// (ALTER SYSTEM CANCEL ALL BACKUP FORCE).
    AllForce,
}

/// `ctl policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create or replace a policy.
    Set {
        /// Tenant (default: the cluster policy, for every tenant without its own).
        #[arg(long)]
        tenant: Option<String>,
        /// A full backup at least this often (e.g. 1d, 12h; default: none).
        #[arg(long, value_parser = humantime::parse_duration)]
        full_every: Option<Duration>,
        /// An incremental backup at least this often (e.g. 1h; default: none).
        #[arg(long, value_parser = humantime::parse_duration)]
        incremental_every: Option<Duration>,
        /// Secondary backup: copy completed sets and the archive to backup_backup_dest.
        #[arg(long, value_parser = ["on", "off"], default_value = "off")]
        secondary: String,
    },
    /// Delete a policy (its secondary backup work stops, as CANCEL/STOP would).
    Drop {
        /// Tenant (default: the cluster policy).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List policies.
    List,
}

/// `ctl tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Register a tenant and its source.
    Create {
        /// Tenant name.
        name: String,
        /// Source URI: dir:///abs/path or postgresql://USER@HOST:PORT/DB?pgdata=/abs/path.
        #[arg(long)]
        source: String,
        /// Free text.
        #[arg(long, default_value = "")]
        comment: String,
        /// Succeed if it already exists.
        #[arg(long)]
        if_not_exists: bool,
        /// The tenant root's password (default: a generated one, printed once).
        #[arg(long, env = "BACKSTOP_TENANT_ROOT_PASSWORD", hide_env_values = true)]
        root_password: Option<String>,
    },
    /// Re-point an idle tenant at another source (`ALTER TENANT name SOURCE = …`),
    /// for example a restored PostgreSQL cluster: the same system on a new timeline
    /// opens the next incarnation.
    Alter {
        /// Tenant name.
        name: String,
        /// New source URI.
        #[arg(long)]
        source: String,
    },
    /// Remove a tenant from the catalog.
    Drop {
        /// Tenant name.
        name: String,
        /// Succeed if it does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// List tenants.
    List,
    /// One tenant: its source, status and archive; for a PostgreSQL tenant also the
    /// system identifier, timeline, the archive's slot and the server's and the
    /// archive's WAL positions.
    Show {
        /// Tenant name.
        name: String,
    },
    /// Set the hot-backup hooks (shell commands run around the datafile copy).
    Hooks {
        /// Tenant name.
        name: String,
        /// Run after start_replay_scn is recorded (empty: none).
        #[arg(long, default_value = "")]
        begin: String,
        /// Run after the datafiles are copied (empty: none).
        #[arg(long, default_value = "")]
        end: String,
    },
}

/// `ctl param …`.
#[derive(Debug, Subcommand)]
pub enum ParamCmd {
    /// Set a parameter (an empty value clears it).
    Set {
        /// backup_dest, backup_backup_dest, backup_dest_option or backup_backup_dest_option.
        name: String,
        /// New value.
        value: String,
        /// Tenant-level value instead of cluster level.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show parameters.
    Show {
        /// Only this one.
        name: Option<String>,
    },
}

/// `ctl user …`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create user@tenant.
    Create {
        /// `user@tenant`.
        user: String,
        /// Password.
        #[arg(long, env = "BACKSTOP_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// Succeed if it already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Change a password.
    Alter {
        /// `user@tenant`.
        user: String,
        /// New password.
        #[arg(long, env = "BACKSTOP_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Drop user@tenant.
    Drop {
        /// `user@tenant`.
        user: String,
        /// Succeed if it does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// List users.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Grant a privilege (`GRANT BACKUP_ADMIN ON *.* TO 'user'`).
    Grant {
        /// Privilege: BACKUP_ADMIN (may run backup statements).
        privilege: String,
        /// `user@tenant`.
        user: String,
    },
    /// Revoke a privilege (`REVOKE BACKUP_ADMIN ON *.* FROM 'user'`).
    Revoke {
        /// Privilege: BACKUP_ADMIN.
        privilege: String,
        /// `user@tenant`.
        user: String,
    },
}

/// `ctl node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Add a node: learner first, then voter once caught up.
    Add {
        /// Node id.
        #[arg(long)]
        id: u64,
        /// Its gRPC address.
        #[arg(long)]
        addr: String,
        /// Stay a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to voter.
    Promote {
        /// Node id.
        id: u64,
    },
    /// Remove a node from the group.
    Remove {
        /// Node id.
        id: u64,
    },
}

/// An SCN: decimal, or an LSN in PostgreSQL's `X/Y` form.
pub use crate::shared::parse_scn;

impl CtlArgs {
    /// TLS and login from the flags and the environment.
    pub fn security(&self) -> anyhow::Result<backstop_client::Security> {
        let login = self.user.as_ref().map(|user| backstop_client::Login {
            user: user.trim().to_string(),
            password: std::env::var("BACKSTOP_PASSWORD").unwrap_or_default(),
        });
        Ok(backstop_client::Security {
            tls: self.tls.load(None)?,
            login,
        })
    }
}
