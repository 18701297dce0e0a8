//! Resuming a piece: what a new attempt finds under the piece beyond the last
//! committed checkpoint, and what it keeps (see the module doc of `archive`).

use std::collections::HashMap;

use backstop_common::layout;
use tracing::debug;

use crate::error::{Result, WorkerError};
use crate::manifest::{self, LogObject};
use crate::piece_journal::{self};

use super::{Archiver, LOG_OBJECT_MAX};

impl Archiver<'_> {
    /// Rebuilds the piece from what is stored, after an earlier attempt ended:
    /// - the committed range `[piece start, checkpoint)` must be covered by stored
    ///   objects (metadata from the manifest where it matches, else read back);
    /// - complete objects that continue it beyond the checkpoint (written by an attempt
    ///   whose commit never happened) are verified and adopted, since the source may no
    ///   longer have those bytes;
    /// - the manifest is rewritten, then the adopted range is committed, and only then
    ///   is anything else under the piece deleted.
    pub(super) async fn recover_piece(&mut self) -> Result<()> {
        let mut known: HashMap<String, LogObject> = HashMap::new();
        if let Some(stored) =
            piece_journal::read(&self.store, &self.piece.dir, &self.ctx.abort).await?
        {
            let m = stored.manifest;
            self.last_stamp = self
                .last_stamp
                .max(m.checkpoints.iter().map(|(_, t)| *t).max().unwrap_or(0));
            self.piece.checkpoints = m
                .checkpoints
                .into_iter()
                .filter(|(s, _)| *s <= self.ckpt)
                .collect();
            known = m.objects.into_iter().map(|o| (o.key.clone(), o)).collect();
        }
        let mut present: Vec<(u64, u64, String)> = self
            .store
            .list(&self.piece.dir)
            .await?
            .into_iter()
            .filter_map(|k| layout::parse_log_object(&k).map(|(s, e)| (s, e, k)))
            // Up to 1 MiB over the limit: a build before 2026-12-03 let a PostgreSQL
            // stream message (up to 128 KiB) overshoot it.
            .filter(|(s, e, _)| e > s && e - s <= LOG_OBJECT_MAX as u64 + (1 << 20))
            .collect();
        present.sort();
        let mut chain: Vec<LogObject> = Vec::new();
        let mut pos = self.piece.spec.start_scn.0;
        while pos < self.ckpt {
            let next = present
                .iter()
                .filter(|(s, e, _)| *s == pos && *e <= self.ckpt)
                .max_by_key(|(_, e, _)| *e)
                .ok_or_else(|| {
                    WorkerError::Corrupt(format!(
                        "piece {} has no stored log at SCN {pos}, below its committed checkpoint {}",
                        self.piece.dir, self.ckpt
                    ))
                })?
                .clone();
            chain.push(self.describe(&next, &known).await?);
            pos = next.1;
        }
        while let Some(next) = present
            .iter()
            .filter(|(s, _, _)| *s == pos)
            .max_by_key(|(_, e, _)| *e)
            .cloned()
        {
            match self.describe(&next, &known).await {
                Ok(o) => {
                    debug!(key = %o.key, "adopting a complete log object beyond the checkpoint");
                    chain.push(o);
                    pos = next.1;
                }
                Err(WorkerError::Corrupt(_)) => break,
                Err(e) => return Err(e),
            }
        }
        self.piece.objects = chain;
        self.read_end = pos;
        self.buffer_start = pos;
        // This attempt's first manifest write is a base of its own: the journal of
        // the attempt before is no longer read.
        if pos > self.ckpt {
            self.commit(None, None).await?;
        } else {
            let m = self.piece.manifest(self.args.round_id, self.ckpt, false);
            self.journal.write(self.ctx, &self.store, &m).await?;
        }
        let kept: Vec<&str> = self.piece.objects.iter().map(|o| o.key.as_str()).collect();
        for k in self.store.list(&self.piece.dir).await? {
            if layout::parse_log_object(&k).is_some() && !kept.contains(&k.as_str()) {
                debug!(key = %k, "removing a log object outside the piece's chain");
                self.ctx.check_fence()?;
                self.store.delete(&k).await?;
            }
        }
        Ok(())
    }

    /// The manifest entry of a stored log object: from the manifest when it matches,
    /// otherwise by reading the object back (it must decode to exactly its range).
    pub(super) async fn describe(
        &self,
        (start, end, key): &(u64, u64, String),
        known: &HashMap<String, LogObject>,
    ) -> Result<LogObject> {
        // Trust a manifest entry only if the stored object still has its size (a
        // crash can leave a short file at a file:// destination); otherwise read the
        // object back, which rejects one that does not hold its range.
        if let Some(o) = known.get(key)
            && o.start == *start
            && o.end == *end
            && self.store.size(key).await? == Some(o.stored_len)
        {
            return Ok(o.clone());
        }
        let stored = self.store.get(key, &self.ctx.abort).await?;
        let len = (end - start) as usize;
        let raw = match zstd::bulk::decompress(&stored, len) {
            Ok(raw) if raw.len() == len => Some((raw, true)),
            _ if stored.len() == len => Some((stored.to_vec(), false)),
            _ => None,
        };
        let Some((raw, compressed)) = raw else {
            return Err(WorkerError::Corrupt(format!(
                "{key} does not hold {len} bytes of log"
            )));
        };
        Ok(LogObject {
            key: key.clone(),
            start: *start,
            end: *end,
            stored_len: stored.len() as u64,
            compressed,
            checksum: manifest::checksum(&raw),
            stored_checksum: manifest::checksum(&stored),
        })
    }
}
