//! The grammar of Backstop's statements (OceanBase's, as
//! `docs/OPERATIONS.md` lists them), on tokens from sqlparser's MySQL tokenizer. Case-insensitive;
//! `[=]` marks are optional; a trailing `;` and comments are ignored. What it parses to
//! is in [`crate::ast`].

use backstop_common::{BackupSetId, CopyId};
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::ast::Statement;
use crate::errors::SqlError;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn new(sql: &str) -> Result<Parser, SqlError> {
        let tokens = Tokenizer::new(&MySqlDialect {}, sql)
            .tokenize()
            .map_err(|e| SqlError::syntax(format!("You have an error in your SQL syntax: {e}")))?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect::<Vec<_>>();
        let mut tokens = tokens;
        while matches!(tokens.last(), Some(Token::SemiColon)) {
            tokens.pop();
        }
        Ok(Parser { tokens, pos: 0 })
    }

    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn near(&self) -> String {
        // Strings are never echoed (they may hold keys), and at most a few tokens.
        let rest: Vec<String> = self.tokens[self.pos.min(self.tokens.len())..]
            .iter()
            .take(8)
            .map(|t| match t {
                Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => "'***'".into(),
                t => t.to_string(),
            })
            .collect();
        if rest.is_empty() {
            "at the end of the statement".to_string()
        } else {
            format!("near '{}' (token {})", rest.join(" "), self.pos + 1)
        }
    }

    fn error(&self, what: &str) -> SqlError {
        SqlError::syntax(format!(
            "You have an error in your SQL syntax; expected {what} {}",
            self.near()
        ))
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if self.peek_word().as_deref() == Some(kw) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.error(kw))
        }
    }

    fn punct(&mut self, token: &Token, what: &str) -> Result<(), SqlError> {
        if self.tokens.get(self.pos) == Some(token) {
            self.pos += 1;
            return Ok(());
        }
        Err(self.error(what))
    }

    fn opt_eq(&mut self) {
        if matches!(self.tokens.get(self.pos), Some(Token::Eq)) {
            self.pos += 1;
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, SqlError> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => {
                self.pos += 1;
                Ok(w.value.clone())
            }
            Some(Token::SingleQuotedString(s)) | Some(Token::DoubleQuotedString(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.error(what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, SqlError> {
        match self.tokens.get(self.pos) {
            Some(Token::SingleQuotedString(s)) | Some(Token::DoubleQuotedString(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.error(what)),
        }
    }

    fn number(&mut self, what: &str) -> Result<u64, SqlError> {
        match self.tokens.get(self.pos) {
            Some(Token::Number(n, _)) => {
                let v = n.parse().map_err(|_| self.error(what))?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error(what)),
        }
    }

    fn done(&self) -> Result<(), SqlError> {
        if self.pos < self.tokens.len() {
            return Err(SqlError::syntax(format!(
                "You have an error in your SQL syntax; unexpected {}",
                self.near()
            )));
        }
        Ok(())
    }

    /// `[TENANT [=] a[, b…]]`.
    /// `[TENANT [=] a[, b…]]` or `[TENANT_ID [=] n]`; an id comes back as `#n`
    /// (tenant names cannot start with `#`) for the session to resolve.
    fn tenants(&mut self) -> Result<Vec<String>, SqlError> {
        if self.keyword("TENANT_ID") {
            self.opt_eq();
            return Ok(vec![format!("#{}", self.number("a tenant id")?)]);
        }
        if !self.keyword("TENANT") {
            return Ok(Vec::new());
        }
        self.opt_eq();
        let mut out = vec![self.ident("a tenant name")?];
        while matches!(self.tokens.get(self.pos), Some(Token::Comma)) {
            self.pos += 1;
            out.push(self.ident("a tenant name")?);
        }
        Ok(out)
    }

    /// `'name'[@'host']`: the host part is accepted and ignored (users are per
    /// tenant, not per host).
    fn user_name(&mut self) -> Result<String, SqlError> {
        let name = self.ident("a user name")?;
        if matches!(self.tokens.get(self.pos), Some(Token::AtSign)) {
            self.pos += 1;
            self.ident("a host")?;
        } else if let Some(Token::Word(w)) = self.tokens.get(self.pos)
            && w.value.starts_with('@')
        {
            self.pos += 1;
        }
        Ok(name)
    }

    fn rest_text(&self, from: usize) -> String {
        self.tokens[from..]
            .iter()
            .map(|t| t.to_string().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses one statement; `Ok(None)` if it is not one of ours (SELECT, SHOW, …).
pub fn parse(sql: &str) -> Result<Option<Statement>, SqlError> {
    let mut p = Parser::new(sql)?;
    match p.peek_word().as_deref() {
        Some("CREATE") | Some("ALTER") | Some("DROP")
            if p.tokens.get(1).is_some_and(
                |t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("USER")),
            ) =>
        {
            let verb = p.peek_word().unwrap_or_default();
            p.pos += 2;
            let (if_exists, if_not_exists) = if p.keyword("IF") {
                let not = p.keyword("NOT");
                p.expect("EXISTS")?;
                (!not, not)
            } else {
                (false, false)
            };
            let name = p.user_name()?;
            let stmt = if verb == "DROP" {
                Statement::DropUser { name, if_exists }
            } else {
                p.expect("IDENTIFIED")?;
                p.expect("BY")?;
                let password = p.string("a quoted password")?;
                if verb == "CREATE" {
                    Statement::CreateUser {
                        name,
                        password,
                        if_not_exists,
                    }
                } else {
                    Statement::AlterUser { name, password }
                }
            };
            p.done()?;
            Ok(Some(stmt))
        }
        Some("SET")
            if p.tokens.get(1).is_some_and(
                |t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("PASSWORD")),
            ) =>
        {
            p.pos += 2;
            let name = if p.keyword("FOR") {
                Some(p.user_name()?)
            } else {
                None
            };
            if !matches!(p.tokens.get(p.pos), Some(Token::Eq)) {
                return Err(p.error("="));
            }
            p.pos += 1;
            let password = if p.keyword("PASSWORD") {
                p.punct(&Token::LParen, "(")?;
                let pw = p.string("a quoted password")?;
                p.punct(&Token::RParen, ")")?;
                pw
            } else {
                p.string("a quoted password")?
            };
            p.done()?;
            Ok(Some(Statement::SetPassword { name, password }))
        }
        Some("GRANT") | Some("REVOKE") => {
            let grant = p.peek_word().as_deref() == Some("GRANT");
            p.pos += 1;
            let privilege = p.ident("a privilege")?;
            p.expect("ON")?;
            p.punct(&Token::Mul, "*.*")?;
            p.punct(&Token::Period, "*.*")?;
            p.punct(&Token::Mul, "*.*")?;
            p.expect(if grant { "TO" } else { "FROM" })?;
            let name = p.user_name()?;
            p.done()?;
            Ok(Some(Statement::Grant {
                privilege,
                name,
                grant,
            }))
        }
        Some("ALTER") => {
            p.pos += 1;
            if p.keyword("TENANT") {
                let name = p.ident("a tenant name")?;
                p.expect("SOURCE")?;
                p.opt_eq();
                let source = p.string("a quoted source URI")?;
                p.done()?;
                return Ok(Some(Statement::AlterTenantSource { name, source }));
            }
            if !p.keyword("SYSTEM") {
                return Ok(Some(Statement::NotYet(format!("ALTER {}", p.rest_text(1)))));
            }
            alter_system(&mut p).map(Some)
        }
        Some("CREATE")
            if p.tokens.get(1).is_some_and(
                |t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("TENANT")),
            ) =>
        {
            p.pos += 2;
            let if_not_exists = if p.keyword("IF") {
                p.expect("NOT")?;
                p.expect("EXISTS")?;
                true
            } else {
                false
            };
            let name = p.ident("a tenant name")?;
            p.expect("SOURCE")?;
            p.opt_eq();
            let source = p.string("a quoted source URI")?;
            let (mut comment, mut root_password) = (String::new(), None);
            loop {
                if p.keyword("COMMENT") {
                    p.opt_eq();
                    comment = p.string("a quoted comment")?;
                } else if p.keyword("ROOT") {
                    p.expect("PASSWORD")?;
                    p.opt_eq();
                    root_password = Some(p.string("a quoted password")?);
                } else {
                    break;
                }
            }
            p.done()?;
            Ok(Some(Statement::CreateTenant {
                name,
                source,
                comment,
                if_not_exists,
                root_password,
            }))
        }
        Some("DROP")
            if p.tokens.get(1).is_some_and(
                |t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("TENANT")),
            ) =>
        {
            p.pos += 2;
            let if_exists = if p.keyword("IF") {
                p.expect("EXISTS")?;
                true
            } else {
                false
            };
            let name = p.ident("a tenant name")?;
            p.done()?;
            Ok(Some(Statement::DropTenant { name, if_exists }))
        }
        _ => Ok(None),
    }
}

fn alter_system(p: &mut Parser) -> Result<Statement, SqlError> {
    let start = p.pos;
    match p.peek_word().as_deref() {
        Some("SET") => {
            p.pos += 1;
            let name = p.ident("a parameter name")?;
            p.opt_eq();
            let value = p.string("a quoted value")?;
            let tenant = p.tenants()?.into_iter().next();
            p.done()?;
            Ok(Statement::SetParameter {
                name,
                value,
                tenant,
            })
        }
        Some("ARCHIVELOG") | Some("NOARCHIVELOG") => {
            let enable = p.peek_word().as_deref() == Some("ARCHIVELOG");
            p.pos += 1;
            let tenants = p.tenants()?;
            p.done()?;
            Ok(Statement::Archivelog { enable, tenants })
        }
        Some("BACKUP") => {
            p.pos += 1;
            let incremental = p.keyword("INCREMENTAL");
            if p.keyword("DATABASE") {
                let tenants = p.tenants()?;
                p.done()?;
                return Ok(Statement::BackupDatabase {
                    incremental,
                    tenants,
                });
            }
            if incremental {
                return Err(p.error("DATABASE"));
            }
            let set = if p.keyword("BACKUPSET") {
                true
            } else if p.keyword("BACKUPPIECE") {
                false
            } else {
                return Err(p.error("DATABASE, BACKUPSET or BACKUPPIECE"));
            };
            p.opt_eq();
            let (id, max_backup_times) = if p.keyword("ALL") {
                if p.keyword("NOT") {
                    p.expect("BACKED")?;
                    p.expect("UP")?;
                    let n = p.number("a number of times")?;
                    p.expect("TIMES")?;
                    (None, Some(n))
                } else {
                    (None, None)
                }
            } else {
                let what = if set {
                    "ALL or a backup set id"
                } else {
                    "ALL or a backup piece id"
                };
                (Some(p.number(what)?), None)
            };
            let with_active = if !set && p.keyword("WITH") {
                p.expect("ACTIVE")?;
                p.keyword("PIECE");
                true
            } else {
                false
            };
            let tenants = p.tenants()?;
            let dest = if p.keyword("BACKUP_BACKUP_DEST") {
                p.opt_eq();
                p.string("a quoted destination URI")?
            } else {
                String::new()
            };
            p.done()?;
            Ok(if set {
                Statement::BackupBackupset {
                    backup_set_id: id,
                    max_backup_times,
                    tenants,
                    dest,
                }
            } else {
                Statement::BackupBackuppiece {
                    backup_piece_id: id,
                    max_backup_times,
                    with_active,
                    tenants,
                    dest,
                }
            })
        }
        Some("VALIDATE") => {
            p.pos += 1;
            if p.keyword("BACKUPSET") {
                let backup_set_id = p.number("a backup set id")?;
                if p.keyword("COPY") {
                    let copy_id = p.number("a copy id")?;
                    p.done()?;
                    if copy_id > 0 {
                        return Ok(Statement::ValidateCopy {
                            backup_set_id: BackupSetId(backup_set_id),
                            copy_id: CopyId(copy_id),
                        });
                    }
                }
                p.done()?;
                return Ok(Statement::ValidateBackupset {
                    backup_set_id: BackupSetId(backup_set_id),
                });
            }
            if p.keyword("DATABASE") {
                return Ok(Statement::NotYet(p.rest_text(start)));
            }
            Err(p.error("BACKUPSET or DATABASE"))
        }
        Some("START") | Some("STOP") => {
            let enable = p.peek_word().as_deref() == Some("START");
            p.pos += 1;
            p.expect("BACKUP")?;
            p.expect("ARCHIVELOG")?;
            let tenants = p.tenants()?;
            p.done()?;
            Ok(if enable {
                Statement::StartBackupArchivelog { tenants }
            } else {
                Statement::StopBackupArchivelog { tenants }
            })
        }
        Some("SUSPEND") | Some("RESUME") => {
            let suspend = p.peek_word().as_deref() == Some("SUSPEND");
            p.pos += 1;
            p.expect("BACKUP")?;
            let tenants = p.tenants()?;
            p.done()?;
            Ok(if suspend {
                Statement::SuspendBackup { tenants }
            } else {
                Statement::ResumeBackup { tenants }
            })
        }
        Some("CANCEL") => {
            p.pos += 1;
            if p.keyword("ALL") {
                p.expect("BACKUP")?;
                p.expect("FORCE")?;
                p.done()?;
                return Ok(Statement::CancelAllBackupForce);
            }
            if p.keyword("VALIDATE") {
                let id = p.number("a validation job id")?;
                if p.keyword("COPY") {
                    p.number("a copy id")?;
                }
                p.done()?;
                return Ok(Statement::CancelValidate { job_id: id });
            }
            if p.keyword("DELETE") {
                return Ok(Statement::NotYet(p.rest_text(start)));
            }
            p.expect("BACKUP")?;
            let make: fn(Vec<String>) -> Statement = if p.keyword("BACKUPSET") {
                |tenants| Statement::CancelBackupBackupset { tenants }
            } else if p.keyword("BACKUPPIECE") {
                |tenants| Statement::CancelBackupBackuppiece { tenants }
            } else {
                |tenants| Statement::CancelBackup { tenants }
            };
            let tenants = p.tenants()?;
            p.done()?;
            Ok(make(tenants))
        }
        Some("DELETE") => {
            p.pos += 1;
            if !p.keyword("BACKUPSET") {
                // DELETE BACKUPPIECE / BACKUPROUND / OBSOLETE BACKUP: not built.
                return Ok(Statement::NotYet(p.rest_text(start)));
            }
            let id = p.number("a backup set id")?;
            let copy_id = if p.keyword("COPY") {
                p.number("a copy id")?
            } else {
                0
            };
            let tenants = p.tenants()?;
            p.done()?;
            Ok(Statement::DeleteBackupset {
                backup_set_id: BackupSetId(id),
                copy_id: CopyId(copy_id),
                tenants,
            })
        }
        _ => Err(p.error(
            "a backup statement (SET, ARCHIVELOG, NOARCHIVELOG, BACKUP, VALIDATE, CANCEL, …)",
        )),
    }
}

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
