//! `oceanbase.CDB_OB_BACKUP_*` views. Each view is one file implementing [`View`] with
//! its columns as constants in OceanBase's order (Backstop's extra columns appended,
//! `docs/VIEWS.md`). A `SELECT` runs on SQLite: the views it names are loaded
//! into an in-memory database `oceanbase` from a snapshot of the catalog, restricted to
//! the session's tenant unless the user is `root@sys`, and SQLite evaluates the query.

mod archivelog;
mod archivelog_progress;
mod archivelog_summary;
mod clean_history;
mod copies;
pub mod format;
mod job_details;
mod piece_files;
mod progress;
mod set_details;
mod set_expired;
mod set_files;
mod tasks;
mod validation_job;
mod validation_task;

use backstop_proto::meta::{ArchiveCopy, ArchiveRound, BackupSet, Job, Piece, Task, Tenant};
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::errors::SqlError;

/// A cell of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// Integer.
    Int(i64),
    /// Float.
    Real(f64),
    /// Text.
    Text(String),
}

impl Cell {
    /// The cell as text, as the mysql CLI prints it; `None` for NULL.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Real(f) => Some(f.to_string()),
            Cell::Text(s) => Some(s.clone()),
        }
    }
}

impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}

/// What views are built from: one read of the catalog.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tenants.
    pub tenants: Vec<Tenant>,
    /// Archive rounds.
    pub rounds: Vec<ArchiveRound>,
    /// Pieces (every copy).
    pub pieces: Vec<Piece>,
    /// Backup sets (every copy).
    pub sets: Vec<BackupSet>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Tasks.
    pub tasks: Vec<Task>,
    /// Continuous archive copies.
    pub copies: Vec<ArchiveCopy>,
}

/// The incarnation a task works in: its job's (a task row carries none itself), 1
/// when the job is not in the snapshot.
pub fn task_incarnation(s: &Snapshot, t: &Task) -> u64 {
    s.jobs
        .iter()
        .find(|j| j.job_id == t.job_id)
        .map_or(1, |j| j.incarnation)
}

/// `scn` in PostgreSQL's `X/Y` form when `tenant_id` is a PostgreSQL tenant, else
/// NULL: the appended `…_LSN` columns, where a DBA looks for an LSN.
pub fn lsn_cell(s: &Snapshot, tenant_id: u64, scn: u64) -> Cell {
    let pg = s
        .tenants
        .iter()
        .any(|t| t.tenant_id == tenant_id && backstop_common::source::is_postgresql(&t.source));
    if pg {
        Cell::Text(backstop_common::source::lsn_text(scn))
    } else {
        Cell::Null
    }
}

/// A catalog list a view is built from: a query fetches only the lists of the views it
/// names (a `SELECT 1` fetches nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `ListTenants`.
    Tenants,
    /// `ListArchive` (rounds and continuous copies).
    Archive,
    /// `ListPieces`.
    Pieces,
    /// `ListBackupSets`.
    Sets,
    /// `ListJobs`.
    Jobs,
    /// `ListTasks`.
    Tasks,
}

impl Source {
    /// Every list.
    pub const ALL: [Source; 6] = [
        Source::Tenants,
        Source::Archive,
        Source::Pieces,
        Source::Sets,
        Source::Jobs,
        Source::Tasks,
    ];
}

/// One view.
pub trait View: Send + Sync {
    /// Upper-case name.
    fn name(&self) -> &'static str;
    /// Column names in order.
    fn columns(&self) -> &'static [&'static str];
    /// Rows of every tenant.
    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>>;
    /// The catalog lists its rows come from (every list unless a view says less).
    fn sources(&self) -> &'static [Source] {
        &Source::ALL
    }
    /// Index of `TENANT_ID`, used to restrict rows to the session's tenant.
    fn tenant_column(&self) -> usize {
        self.columns()
            .iter()
            .position(|c| *c == "TENANT_ID")
            .unwrap_or(0)
    }
}

/// Every view.
pub fn all() -> Vec<Box<dyn View>> {
    let mut views: Vec<Box<dyn View>> = vec![
        Box::new(archivelog::Archivelog),
        Box::new(archivelog_summary::ArchivelogSummary),
        Box::new(piece_files::PieceFiles),
        Box::new(progress::Progress),
        Box::new(set_details::SetDetails),
        Box::new(set_files::SetFiles),
        Box::new(tasks::Tasks),
        Box::new(validation_job::ValidationJob),
        Box::new(validation_job::ValidationJobHistory),
        Box::new(job_details::JobDetails),
        Box::new(archivelog_progress::ArchivelogProgress),
        Box::new(set_expired::SetExpired),
        Box::new(set_expired::SetObsolete),
        Box::new(clean_history::CleanHistory),
        Box::new(clean_history::TaskCleanHistory),
        Box::new(validation_task::ValidationTask),
        Box::new(validation_task::ValidationTaskHistory),
    ];
    views.extend(
        copies::views()
            .into_iter()
            .map(|v| Box::new(v) as Box<dyn View>),
    );
    views.sort_by_key(|v| v.name());
    views
}

/// The view called `name` (case-insensitive, optionally `oceanbase.`-qualified).
pub fn find(name: &str) -> Option<Box<dyn View>> {
    let n = name.trim().trim_matches('`').to_ascii_uppercase();
    let n = n
        .strip_prefix("OCEANBASE.")
        .unwrap_or(&n)
        .trim_matches('`')
        .to_string();
    all().into_iter().find(|v| v.name() == n)
}

/// The views `sql` names (a substring match on the upper-cased text, so a view named in
/// a string literal is loaded too: harmless).
pub fn referenced(sql: &str) -> Vec<Box<dyn View>> {
    let upper = sql.to_ascii_uppercase();
    all()
        .into_iter()
        .filter(|v| upper.contains(v.name()))
        .collect()
}

/// The lists `views` need, each once.
pub fn sources_of(views: &[Box<dyn View>]) -> Vec<Source> {
    Source::ALL
        .into_iter()
        .filter(|s| views.iter().any(|v| v.sources().contains(s)))
        .collect()
}

/// A result set.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
}

/// How far one `SELECT` may go (the gateway's `crate::guard::Limits`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Wall time from the start of the query, loading the views included; then it is
    /// interrupted with 3024.
    pub time: std::time::Duration,
    /// Bytes the result may take in memory (cell text and the cells themselves);
    /// past it the query fails with 1104.
    pub max_bytes: usize,
}

/// The longest string or blob a query may build (SQLite's `SQLITE_LIMIT_LENGTH`).
const MAX_VALUE_BYTES: i32 = 16 * 1024 * 1024;
/// SQLite's page cache per query (KiB, as `PRAGMA cache_size` takes a negative
/// number); sorts and recursive queries past it spill to temporary files, so a
/// query's memory stays bounded.
const CACHE_KIB: i64 = 16 * 1024;

/// Runs a `SELECT` (or `WITH … SELECT`) over the views, within `bounds`. `tenant`
/// restricts rows (`None` = root@sys).
///
/// Errors: 1064 for text SQLite does not accept or a statement that would write;
/// 1146 for an unknown table; 3024 when it runs past `bounds.time`; 1104 for a
/// result or a value too big.
pub fn query(
    sql: &str,
    snapshot: &Snapshot,
    tenant: Option<u64>,
    bounds: Bounds,
) -> Result<Rows, SqlError> {
    let deadline = std::time::Instant::now() + bounds.time;
    let conn = rusqlite::Connection::open_in_memory().map_err(internal)?;
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        MAX_VALUE_BYTES,
    )
    .map_err(internal)?;
    conn.execute_batch(&format!(
        "PRAGMA temp_store = FILE; PRAGMA cache_size = -{CACHE_KIB};"
    ))
    .map_err(internal)?;
    // Checked every few thousand virtual-machine steps: a recursive CTE or a huge
    // join is stopped at the deadline.
    conn.progress_handler(4_000, Some(move || std::time::Instant::now() >= deadline));
    conn.execute_batch("ATTACH DATABASE ':memory:' AS oceanbase")
        .map_err(internal)?;
    // One transaction for every insert: SQLite commits (even in memory) per statement
    // otherwise.
    conn.execute_batch("BEGIN").map_err(internal)?;
    for view in referenced(sql) {
        load(&conn, view.as_ref(), snapshot, tenant)?;
    }
    conn.execute_batch("COMMIT").map_err(internal)?;
    let mut stmt = conn.prepare(sql).map_err(|e| sqlite_error(&e))?;
    if !stmt.readonly() {
        return Err(SqlError::syntax(
            "You have an error in your SQL syntax: only SELECT reads the views",
        ));
    }
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut rows = stmt.query([]).map_err(|e| sqlite_error(&e))?;
    while let Some(row) = rows.next().map_err(|e| sqlite_error(&e))? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let cell = match row.get_ref(i).map_err(internal)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
            };
            // What the cell costs in memory, not only its text.
            bytes += std::mem::size_of::<Cell>()
                + match &cell {
                    Cell::Text(t) => t.len(),
                    _ => 0,
                };
            cells.push(cell);
        }
        bytes += std::mem::size_of::<Vec<Cell>>();
        if bytes > bounds.max_bytes {
            return Err(SqlError {
                errno: crate::guard::ER_TOO_BIG_SELECT,
                message: format!(
                    "The result set is over {} bytes (the gateway's max_result_bytes); narrow it with WHERE or LIMIT",
                    bounds.max_bytes
                ),
            });
        }
        out.push(cells);
    }
    Ok(Rows { columns, rows: out })
}

fn load(
    conn: &rusqlite::Connection,
    view: &dyn View,
    s: &Snapshot,
    tenant: Option<u64>,
) -> Result<(), SqlError> {
    let cols = view.columns();
    let ddl = format!(
        "CREATE TABLE oceanbase.\"{}\" ({})",
        view.name(),
        cols.iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    conn.execute(&ddl, []).map_err(internal)?;
    let insert = format!(
        "INSERT INTO oceanbase.\"{}\" VALUES ({})",
        view.name(),
        vec!["?"; cols.len()].join(", ")
    );
    let mut stmt = conn.prepare(&insert).map_err(internal)?;
    let tc = view.tenant_column();
    for row in view.rows(s) {
        if let Some(t) = tenant
            && row.get(tc) != Some(&Cell::Int(t as i64))
        {
            continue;
        }
        let values: Vec<SqlValue> = row
            .into_iter()
            .map(|c| match c {
                Cell::Null => SqlValue::Null,
                Cell::Int(i) => SqlValue::Integer(i),
                Cell::Real(f) => SqlValue::Real(f),
                Cell::Text(t) => SqlValue::Text(t),
            })
            .collect();
        stmt.execute(rusqlite::params_from_iter(values))
            .map_err(internal)?;
    }
    Ok(())
}

fn internal(e: rusqlite::Error) -> SqlError {
    SqlError::coded(backstop_common::Code::Internal, format!("view engine: {e}"))
}

fn sqlite_error(e: &rusqlite::Error) -> SqlError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => {
            return SqlError {
                errno: crate::guard::ER_QUERY_TIMEOUT,
                message:
                    "Query execution was interrupted, maximum statement execution time exceeded"
                        .into(),
            };
        }
        Some(ErrorCode::TooBig) => {
            return SqlError {
                errno: crate::guard::ER_TOO_BIG_SELECT,
                message: format!("A value in the query is over {MAX_VALUE_BYTES} bytes"),
            };
        }
        Some(ErrorCode::OutOfMemory) => {
            return SqlError::coded(
                backstop_common::Code::Internal,
                "view engine: out of memory",
            );
        }
        _ => {}
    }
    let msg = crate::errors::redact(&e.to_string(), &['\'']);
    if let Some(rest) = msg.strip_prefix("no such table: ") {
        return SqlError::no_such_table(rest);
    }
    SqlError::syntax(format!("You have an error in your SQL syntax: {msg}"))
}
