//! One client session: who it is, which tenant it acts for, and how each statement is
//! answered. The protocol shim (`shim.rs`) only converts; everything happens here.

use backstop_common::{Code, TenantId};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use tonic::transport::Channel;

use crate::errors::SqlError;
use crate::statement::{self, Statement};
use crate::views::{self, Cell, Rows, Snapshot, Source};

/// What a statement answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// OK packet.
    Ok {
        /// Rows affected.
        affected: u64,
        /// Info text.
        info: String,
    },
    /// A result set.
    Rows(Rows),
}

/// A logged-in client.
pub struct Session {
    /// User name.
    pub user: String,
    /// Tenant name.
    pub tenant: String,
    /// Tenant id (1 for sys).
    pub tenant_id: u64,
    /// Current database.
    pub database: Option<String>,
    meta: MetaServiceClient<Channel>,
}

fn rows(columns: &[&str], rows: Vec<Vec<Cell>>) -> Reply {
    Reply::Rows(Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    })
}

fn ok() -> Reply {
    Reply::Ok {
        affected: 0,
        info: String::new(),
    }
}

/// Session variables clients ask for on connect.
fn variable(name: &str) -> Option<Cell> {
    let v = match name.to_ascii_lowercase().as_str() {
        "version_comment" => "Backstop: OceanBase-compatible backup service",
        "version" => "5.7.25-Backstop-0.1.0",
        "max_allowed_packet" => {
            return Some(Cell::Int(crate::limit::MAX_ALLOWED_PACKET as i64));
        }
        "auto_increment_increment" | "autocommit" => return Some(Cell::Int(1)),
        "character_set_client"
        | "character_set_connection"
        | "character_set_results"
        | "character_set_server" => "utf8mb4",
        "collation_server" | "collation_connection" => "utf8mb4_general_ci",
        "sql_mode" => "STRICT_TRANS_TABLES",
        "time_zone" | "system_time_zone" => "UTC",
        "transaction_isolation" | "tx_isolation" => "READ-COMMITTED",
        "lower_case_table_names" => return Some(Cell::Int(0)),
        "wait_timeout" | "interactive_timeout" => return Some(Cell::Int(28800)),
        "net_write_timeout" => return Some(Cell::Int(60)),
        "performance_schema" => return Some(Cell::Int(0)),
        "license" => "Apache-2.0",
        _ => return None,
    };
    Some(Cell::from(v))
}

impl Session {
    /// A session for `user@tenant`, already authenticated.
    pub fn new(
        user: String,
        tenant: String,
        tenant_id: u64,
        meta: MetaServiceClient<Channel>,
    ) -> Session {
        Session {
            user,
            tenant,
            tenant_id,
            database: None,
            meta,
        }
    }

    /// Whether this is the cluster administrator.
    pub fn is_sys(&self) -> bool {
        self.tenant_id == TenantId::SYS.0
    }

    /// `USE db` / COM_INIT_DB.
    pub fn use_database(&mut self, db: &str) -> Result<(), SqlError> {
        let db = db.trim().trim_matches('`');
        if !db.eq_ignore_ascii_case("oceanbase") && !db.eq_ignore_ascii_case("information_schema") {
            return Err(SqlError {
                errno: crate::errors::ER_BAD_DB,
                message: format!("Unknown database '{db}'"),
            });
        }
        self.database = Some(db.to_ascii_lowercase());
        Ok(())
    }

    /// Answers one statement.
    pub async fn handle(&mut self, sql: &str) -> Result<Reply, SqlError> {
        let text = sql.trim().trim_end_matches(';').trim();
        let lower = text.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(ok()),
            ["set", ..] => Ok(ok()),
            ["use", db] => self.use_database(db).map(|_| ok()),
            ["show", "databases"] | ["show", "schemas"] => {
                Ok(rows(&["Database"], vec![vec![Cell::from("oceanbase")]]))
            }
            ["show", "tables", ..] => Ok(rows(
                &["Tables_in_oceanbase"],
                views::all()
                    .iter()
                    .map(|v| vec![Cell::from(v.name())])
                    .collect(),
            )),
            ["show", "full", "tables", ..] => Ok(rows(
                &["Tables_in_oceanbase", "Table_type"],
                views::all()
                    .iter()
                    .map(|v| vec![Cell::from(v.name()), Cell::from("SYSTEM VIEW")])
                    .collect(),
            )),
            ["show", "warnings"] | ["show", "errors"] => {
                Ok(rows(&["Level", "Code", "Message"], vec![]))
            }
            ["show", "variables", ..]
            | ["show", "session", "variables", ..]
            | ["show", "global", "variables", ..] => {
                let pattern = text.split('\'').nth(1).unwrap_or("%").to_string();
                let names = [
                    "version_comment",
                    "version",
                    "max_allowed_packet",
                    "autocommit",
                    "character_set_client",
                    "character_set_server",
                    "collation_server",
                    "sql_mode",
                    "time_zone",
                    "lower_case_table_names",
                    "wait_timeout",
                ];
                let matched = names
                    .iter()
                    .filter(|n| like(n, &pattern))
                    .filter_map(|n| {
                        variable(n).map(|v| {
                            vec![Cell::from(*n), Cell::from(v.as_text().unwrap_or_default())]
                        })
                    })
                    .collect();
                Ok(rows(&["Variable_name", "Value"], matched))
            }
            ["show", "tenants"] => self.show_tenants().await,
            ["desc" | "describe", name]
            | ["show", "columns", "from", name]
            | ["show", "fields", "from", name] => describe(name),
            ["select", ..]
                if lower.contains("@@")
                    || lower.starts_with("select database()")
                    || lower.starts_with("select user()")
                    || lower.starts_with("select version()") =>
            {
                self.select_builtins(text)
            }
            ["select", ..] => self.select(text).await,
            _ => match statement::parse(text)? {
                Some(stmt) => self.execute(stmt).await,
                None => Err(SqlError::syntax(format!(
                    "You have an error in your SQL syntax; '{}' is not a statement Backstop knows",
                    text.chars().take(60).collect::<String>()
                ))),
            },
        }
    }

    /// `SELECT @@x [AS a], DATABASE(), USER(), VERSION() [LIMIT n]`.
    fn select_builtins(&self, text: &str) -> Result<Reply, SqlError> {
        let body = text[6..].trim();
        let body = match body.to_ascii_lowercase().find(" limit ") {
            Some(i) => &body[..i],
            None => body,
        };
        let mut columns = Vec::new();
        let mut row = Vec::new();
        for item in body.split(',') {
            let item = item.trim();
            let (expr, alias) = match item.to_ascii_lowercase().find(" as ") {
                Some(i) => (
                    &item[..i],
                    Some(item[i + 4..].trim().trim_matches('`').to_string()),
                ),
                None => (item, None),
            };
            let e = expr.trim().to_ascii_lowercase();
            let value = if let Some(name) = e.strip_prefix("@@") {
                let name = name
                    .trim_start_matches("session.")
                    .trim_start_matches("global.");
                variable(name).unwrap_or(Cell::Null)
            } else if e == "database()" {
                self.database.clone().map_or(Cell::Null, Cell::from)
            } else if e == "user()" || e == "current_user()" {
                Cell::Text(format!("{}@{}", self.user, self.tenant))
            } else if e == "version()" {
                variable("version").unwrap_or(Cell::Null)
            } else {
                return Err(SqlError::syntax(format!(
                    "You have an error in your SQL syntax near '{expr}'"
                )));
            };
            columns.push(alias.unwrap_or_else(|| expr.trim().to_string()));
            row.push(value);
        }
        Ok(Reply::Rows(Rows {
            columns,
            rows: vec![row],
        }))
    }

    /// Reads the catalog lists in `sources` (a tenant user's only for its tenant).
    async fn snapshot(&mut self, sources: &[Source]) -> Result<Snapshot, SqlError> {
        let req = ListRequest {
            tenant_name: if self.is_sys() {
                String::new()
            } else {
                self.tenant.clone()
            },
            job_id: 0,
            all: true,
        };
        let st = |s: tonic::Status| SqlError::from_status(&s);
        let mut snap = Snapshot::default();
        for source in sources {
            match source {
                Source::Tenants => {
                    snap.tenants = self
                        .meta
                        .list_tenants(ListTenantsRequest {})
                        .await
                        .map_err(st)?
                        .into_inner()
                        .tenants
                }
                Source::Archive => {
                    let archive = self
                        .meta
                        .list_archive(req.clone())
                        .await
                        .map_err(st)?
                        .into_inner();
                    snap.rounds = archive.rounds;
                    snap.copies = archive.copies;
                }
                Source::Pieces => {
                    snap.pieces = self
                        .meta
                        .list_pieces(req.clone())
                        .await
                        .map_err(st)?
                        .into_inner()
                        .pieces
                }
                Source::Sets => {
                    snap.sets = self
                        .meta
                        .list_backup_sets(req.clone())
                        .await
                        .map_err(st)?
                        .into_inner()
                        .sets
                }
                Source::Jobs => {
                    snap.jobs = self
                        .meta
                        .list_jobs(req.clone())
                        .await
                        .map_err(st)?
                        .into_inner()
                        .jobs
                }
                Source::Tasks => {
                    snap.tasks = self
                        .meta
                        .list_tasks(req.clone())
                        .await
                        .map_err(st)?
                        .into_inner()
                        .tasks
                }
            }
        }
        Ok(snap)
    }

    async fn select(&mut self, text: &str) -> Result<Reply, SqlError> {
        let sources = views::sources_of(&views::referenced(text));
        let snapshot = self.snapshot(&sources).await?;
        let tenant = if self.is_sys() {
            None
        } else {
            Some(self.tenant_id)
        };
        let sql = text.to_string();
        tokio::task::spawn_blocking(move || views::query(&sql, &snapshot, tenant))
            .await
            .map_err(|e| SqlError::coded(Code::Internal, e.to_string()))?
            .map(Reply::Rows)
    }

    async fn show_tenants(&mut self) -> Result<Reply, SqlError> {
        let tenants = self
            .meta
            .list_tenants(ListTenantsRequest {})
            .await
            .map_err(|s| SqlError::from_status(&s))?
            .into_inner()
            .tenants;
        let visible = tenants
            .into_iter()
            .filter(|t| self.is_sys() || t.tenant_id == self.tenant_id)
            .map(|t| {
                vec![
                    Cell::from(t.tenant_id),
                    Cell::from(t.tenant_name),
                    Cell::from(t.status),
                    Cell::from(t.source),
                    Cell::from(t.comment),
                ]
            })
            .collect();
        Ok(rows(
            &["TENANT_ID", "TENANT_NAME", "STATUS", "SOURCE", "COMMENT"],
            visible,
        ))
    }

    /// Tenants a statement may act on: its own for tenant users, any for root@sys.
    fn targets(&self, named: Vec<String>) -> Result<Vec<String>, SqlError> {
        if self.is_sys() {
            return Ok(named);
        }
        if named.iter().any(|t| !t.eq_ignore_ascii_case(&self.tenant)) {
            return Err(SqlError::no_privilege("act on another tenant"));
        }
        Ok(vec![self.tenant.clone()])
    }

    async fn execute(&mut self, stmt: Statement) -> Result<Reply, SqlError> {
        let st = |s: tonic::Status| SqlError::from_status(&s);
        match stmt {
            Statement::SetParameter {
                name,
                value,
                tenant,
            } => {
                let tenant = match (self.is_sys(), tenant) {
                    (true, t) => t.unwrap_or_default(),
                    (false, _) => return Err(SqlError::no_privilege("set cluster parameters")),
                };
                self.meta
                    .set_parameter(SetParameterRequest {
                        name,
                        value,
                        tenant_name: tenant,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::Archivelog { enable, tenants } => {
                let tenants = self.resolve_ids(tenants).await?;
                for tenant in self.targets_or_all(tenants)? {
                    self.meta
                        .archivelog(ArchivelogRequest {
                            tenant_name: tenant,
                            enable,
                        })
                        .await
                        .map_err(st)?;
                }
                Ok(ok())
            }
            Statement::BackupDatabase {
                incremental,
                tenants,
            } => {
                let tenants = self.resolve_ids(tenants).await?;
                for tenant in self.targets_or_all(tenants)? {
                    self.meta
                        .backup_database(BackupDatabaseRequest {
                            tenant_name: tenant,
                            incremental,
                        })
                        .await
                        .map_err(st)?;
                }
                Ok(ok())
            }
            Statement::ValidateBackupset { backup_set_id } => {
                let tenant = if self.is_sys() {
                    self.set_owner(backup_set_id).await?
                } else {
                    self.tenant.clone()
                };
                self.meta
                    .validate_backup_set(ValidateBackupSetRequest {
                        tenant_name: tenant,
                        backup_set_id,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::CreateTenant {
                name,
                source,
                comment,
                if_not_exists,
            } => {
                if !self.is_sys() {
                    return Err(SqlError::no_privilege("create tenants"));
                }
                self.meta
                    .create_tenant(CreateTenantRequest {
                        tenant_name: name,
                        source,
                        comment,
                        if_not_exists,
                    })
                    .await
                    .map_err(st)?;
                Ok(Reply::Ok {
                    affected: 1,
                    info: String::new(),
                })
            }
            Statement::DropTenant { name, if_exists } => {
                if !self.is_sys() {
                    return Err(SqlError::no_privilege("drop tenants"));
                }
                let r = self
                    .meta
                    .drop_tenant(DropTenantRequest {
                        tenant_name: name,
                        if_exists,
                    })
                    .await
                    .map_err(st)?
                    .into_inner();
                Ok(Reply::Ok {
                    affected: u64::from(r.dropped),
                    info: String::new(),
                })
            }
            Statement::CreateUser {
                name,
                password,
                if_not_exists,
            } => {
                self.require_tenant_root("create users")?;
                self.meta
                    .create_user(CreateUserRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        password,
                        if_not_exists,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::AlterUser { name, password } => {
                if name != self.user {
                    self.require_tenant_root("change other users' passwords")?;
                }
                self.meta
                    .alter_user(AlterUserRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        password,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::DropUser { name, if_exists } => {
                self.require_tenant_root("drop users")?;
                self.meta
                    .drop_user(DropUserRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        if_exists,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::BackupManage {
                verb,
                tenants,
                id,
                max_backup_times,
                with_active,
                dest,
                copy_id,
            } => {
                if verb == BackupVerb::CancelAllBackupForce && !self.is_sys() {
                    return Err(SqlError::no_privilege("run CANCEL ALL BACKUP FORCE"));
                }
                let tenants = self.resolve_ids(tenants).await?;
                let mut tenants = self.targets(tenants)?;
                if verb == BackupVerb::ValidateCopy && tenants.is_empty() {
                    tenants = vec![self.set_owner(id).await?];
                }
                self.meta
                    .backup_manage(BackupManageRequest {
                        verb: verb.into(),
                        tenants,
                        id,
                        max_backup_times,
                        with_active,
                        dest,
                        copy_id,
                    })
                    .await
                    .map_err(st)?;
                Ok(ok())
            }
            Statement::NotYet(what) => {
                Err(SqlError::not_supported(&format!("ALTER SYSTEM {what}")))
            }
        }
    }

    /// The tenant a backup set belongs to (set ids are cluster-wide).
    async fn set_owner(&mut self, backup_set_id: u64) -> Result<String, SqlError> {
        if !self.is_sys() {
            return Ok(self.tenant.clone());
        }
        let snap = self.snapshot(&[Source::Tenants, Source::Sets]).await?;
        let owner = snap
            .sets
            .iter()
            .find(|s| s.backup_set_id == backup_set_id && s.copy_id == 0)
            .ok_or_else(|| {
                SqlError::coded(
                    Code::EntryNotExist,
                    format!("backup set {backup_set_id} does not exist"),
                )
            })?;
        snap.tenants
            .iter()
            .find(|t| t.tenant_id == owner.tenant_id)
            .map(|t| t.tenant_name.clone())
            .ok_or_else(|| {
                SqlError::coded(
                    Code::EntryNotExist,
                    format!(
                        "backup set {backup_set_id} belongs to tenant {}, which no longer exists",
                        owner.tenant_id
                    ),
                )
            })
    }

    /// Users are managed by the `root` user of their tenant.
    fn require_tenant_root(&self, what: &str) -> Result<(), SqlError> {
        if self.user == "root" {
            return Ok(());
        }
        Err(SqlError {
            errno: crate::errors::ER_SPECIFIC_ACCESS_DENIED,
            message: format!("Access denied; only root@{} may {what}", self.tenant),
        })
    }

    /// Replaces `#id` (from `TENANT_ID = n`) with the tenant's name.
    async fn resolve_ids(&mut self, named: Vec<String>) -> Result<Vec<String>, SqlError> {
        if !named.iter().any(|n| n.starts_with('#')) {
            return Ok(named);
        }
        let tenants = self
            .meta
            .list_tenants(ListTenantsRequest {})
            .await
            .map_err(|s| SqlError::from_status(&s))?
            .into_inner()
            .tenants;
        named
            .into_iter()
            .map(|n| match n.strip_prefix('#') {
                None => Ok(n),
                Some(id) => tenants
                    .iter()
                    .find(|t| t.tenant_id.to_string() == id)
                    .map(|t| t.tenant_name.clone())
                    .ok_or_else(|| {
                        SqlError::coded(
                            Code::EntryNotExist,
                            format!("tenant id {id} does not exist"),
                        )
                    }),
            })
            .collect()
    }

    /// Named tenants checked against the session; none named means "every user
    /// tenant" for root@sys and "my tenant" for a tenant user.
    fn targets_or_all(&self, named: Vec<String>) -> Result<Vec<String>, SqlError> {
        if named.is_empty() {
            return Ok(vec![if self.is_sys() {
                String::new()
            } else {
                self.tenant.clone()
            }]);
        }
        self.targets(named)
    }
}

fn describe(name: &str) -> Result<Reply, SqlError> {
    let view = views::find(name)
        .ok_or_else(|| SqlError::no_such_table(&format!("oceanbase.{}", name.trim_matches('`'))))?;
    let rows_ = view
        .columns()
        .iter()
        .map(|c| {
            vec![
                Cell::from(*c),
                Cell::from("varchar"),
                Cell::from("YES"),
                Cell::from(""),
                Cell::Null,
                Cell::from(""),
            ]
        })
        .collect();
    Ok(rows(
        &["Field", "Type", "Null", "Key", "Default", "Extra"],
        rows_,
    ))
}

/// SQL `LIKE` with `%` and `_`, case-insensitive.
fn like(s: &str, pattern: &str) -> bool {
    fn go(s: &[u8], p: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some(b'_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some(c) => s.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(&s[1..], &p[1..]),
        }
    }
    go(s.as_bytes(), pattern.as_bytes())
}
