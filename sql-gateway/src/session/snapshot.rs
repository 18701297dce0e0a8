//! Queries on the views: a snapshot of the catalog the statement needs, restricted to
//! what the session may see, then the `SELECT` on it (`views/`).

use super::{Reply, Session, rows};
use crate::errors::SqlError;
use crate::views::{self, Cell, Snapshot, Source};
use backstop_common::Code;
use backstop_proto::meta::*;

impl Session {
    /// Reads the catalog lists in `sources` (a tenant user's only for its tenant).
    pub(super) async fn snapshot(&mut self, sources: &[Source]) -> Result<Snapshot, SqlError> {
        let req = ListRequest {
            tenant_name: if self.is_sys() {
                String::new()
            } else {
                self.tenant.clone()
            },
            job_id: 0,
            all: true,
        };
        let mut snap = Snapshot::default();
        for source in sources {
            match source {
                Source::Tenants => {
                    snap.tenants = crate::meta_call!(self.meta, list_tenants, ListTenantsRequest {})
                        .map_err(SqlError::from_client)?
                        .tenants
                }
                Source::Archive => {
                    let archive = crate::meta_call!(self.meta, list_archive, req.clone())
                        .map_err(SqlError::from_client)?;
                    snap.rounds = archive.rounds;
                    snap.copies = archive.copies;
                }
                Source::Pieces => {
                    snap.pieces = crate::meta_call!(self.meta, list_pieces, req.clone())
                        .map_err(SqlError::from_client)?
                        .pieces
                }
                Source::Sets => {
                    snap.sets = crate::meta_call!(self.meta, list_backup_sets, req.clone())
                        .map_err(SqlError::from_client)?
                        .sets
                }
                Source::Jobs => {
                    snap.jobs = crate::meta_call!(self.meta, list_jobs, req.clone())
                        .map_err(SqlError::from_client)?
                        .jobs
                }
                Source::Tasks => {
                    snap.tasks = crate::meta_call!(self.meta, list_tasks, req.clone())
                        .map_err(SqlError::from_client)?
                        .tasks
                }
            }
        }
        Ok(snap)
    }

    pub(super) async fn select(&mut self, text: &str) -> Result<Reply, SqlError> {
        let sources = views::sources_of(&views::referenced(text));
        let snapshot = self.snapshot(&sources).await?;
        let tenant = if self.is_sys() {
            None
        } else {
            Some(self.tenant_id)
        };
        let sql = text.to_string();
        let bounds = views::Bounds {
            time: self.limits.max_execution_time,
            max_bytes: self.limits.max_result_bytes,
        };
        tokio::task::spawn_blocking(move || views::query(&sql, &snapshot, tenant, bounds))
            .await
            .map_err(|e| SqlError::coded(Code::Internal, e.to_string()))?
            .map(Reply::Rows)
    }

    pub(super) async fn show_tenants(&mut self) -> Result<Reply, SqlError> {
        let tenants = crate::meta_call!(self.meta, list_tenants, ListTenantsRequest {})
            .map_err(SqlError::from_client)?
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
}
