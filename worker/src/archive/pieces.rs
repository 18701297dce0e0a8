//! A piece's life while it is written: checkpoint flushes and commits, switching
//! to the next piece, sealing and freezing.

use backstop_common::PieceId;
use std::time::Instant;

use backstop_common::Scn;
use backstop_common::layout;
use backstop_common::task::{ArchiveProgress, PieceSpec};
use bytes::Bytes;
use tracing::info;

use crate::error::{Result, WorkerError};
use crate::manifest::{self, LogObject};
use crate::piece_journal::{self, JournalWriter};

use super::{Archiver, Piece, checkpoint_stamp, now_ms, piece_full};

impl Archiver<'_> {
    pub(super) fn switch_due(&self) -> Option<PieceSpec> {
        let age_ms = now_ms().saturating_sub(self.piece.spec.create_time_ms);
        let entries = self.piece.objects.len() + self.piece.checkpoints.len();
        if !piece_full(self.args.piece_switch_interval_ms, age_ms, entries) {
            return None;
        }
        Some(PieceSpec {
            piece_id: self.piece.spec.piece_id.next(),
            start_scn: Scn(self.read_end),
            create_time_ms: now_ms(),
        })
    }

    /// The time of a checkpoint whose bytes are all read by now (ms since the epoch):
    /// the meta leader's clock as this worker can bound it from above (never earlier
    /// than the leader's time at which the bytes were read, so a restore to time T
    /// never includes log written after T), or this worker's clock until a leader
    /// has sent its time; never before an earlier stamp of the round.
    pub(super) fn stamp(&mut self) -> u64 {
        self.last_stamp = checkpoint_stamp(
            self.last_stamp,
            self.ctx.client.leader_clock.now_ms(),
            now_ms(),
        );
        self.last_stamp
    }

    /// Writes the buffered bytes as one log object.
    pub(super) async fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.buffer);
        let start = self.buffer_start;
        let end = start + raw.len() as u64;
        let (stored, compressed) = tokio::task::spawn_blocking({
            let raw = raw.clone();
            move || crate::codec::compress(1, &raw)
        })
        .await
        .map_err(|e| WorkerError::Invalid(e.to_string()))??;
        let key = layout::log_object(&self.piece.dir, start, end);
        let object = LogObject {
            key: key.clone(),
            start,
            end,
            stored_len: stored.len() as u64,
            compressed,
            checksum: manifest::checksum(&raw),
            stored_checksum: manifest::checksum(&stored),
        };
        self.output_since_report += stored.len() as u64;
        backstop_common::failpoint!("archive::before_upload", WorkerError::Storage);
        self.ctx.check_fence()?;
        self.store
            .put(&key, Bytes::from(stored), &self.ctx.abort)
            .await?;
        backstop_common::failpoint!("archive::after_upload", WorkerError::Storage);
        self.piece.objects.push(object);
        self.buffer_start = end;
        Ok(())
    }

    /// Manifest, then the fenced commit of `read_end` as the checkpoint.
    pub(super) async fn commit(
        &mut self,
        switch_to: Option<PieceSpec>,
        frozen_piece: Option<PieceId>,
    ) -> Result<()> {
        let checkpoint = self.buffer_start;
        let now = self.stamp();
        self.piece.checkpoints.push((checkpoint, now));
        let m = self.piece.manifest(self.args.round_id, checkpoint, false);
        // Tests park an attempt here (`sleep(ms)`) until its successor sealed the piece:
        // the late write must be refused by the fence, never overwrite the successor's.
        backstop_common::failpoint!("archive::before_manifest", WorkerError::Storage);
        self.journal.write(self.ctx, &self.store, &m).await?;
        let lag_ms = self
            .oldest_unarchived
            .map_or(0, |t| t.elapsed().as_millis() as u64);
        let progress = ArchiveProgress {
            round_id: self.args.round_id,
            piece_id: self.piece.spec.piece_id,
            checkpoint_scn: Scn(checkpoint),
            input_bytes: self.input_since_report,
            output_bytes: self.output_since_report,
            lag_ms,
            switch_to,
            frozen_piece,
        };
        backstop_common::failpoint!("archive::before_commit", WorkerError::Meta);
        self.ctx.report_archive(&progress).await?;
        self.ckpt = checkpoint;
        self.src.durable(checkpoint).await;
        self.input_since_report = 0;
        self.output_since_report = 0;
        self.oldest_unarchived = None;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Writes the frozen manifest (whole), marker and index entry of a piece, then
    /// deletes its journal.
    pub(super) async fn seal(&self, piece: &Piece, max: u64) -> Result<()> {
        let m = piece.manifest(self.args.round_id, max, true);
        self.ctx
            .put_shared(
                &self.store,
                &layout::piece_manifest(&piece.dir),
                manifest::to_json(&m)?,
            )
            .await?;
        backstop_common::failpoint!("archive::before_marker", WorkerError::Storage);
        self.ctx
            .put_shared(
                &self.store,
                &layout::piece_frozen(&piece.dir),
                Bytes::from(max.to_string()),
            )
            .await?;
        let index = layout::piece_index(self.args.round_id, piece.spec.piece_id);
        self.ctx
            .put_shared(&self.store, &index, manifest::to_json(&m)?)
            .await?;
        piece_journal::remove_journal(self.ctx, &self.store, &piece.dir, None).await?;
        Ok(())
    }

    pub(super) async fn switch_piece(&mut self, next: PieceSpec) -> Result<()> {
        let old = std::mem::replace(&mut self.piece, Piece::new(next, self.args.round_id));
        self.journal = JournalWriter::new(self.ctx, &self.piece.dir);
        self.seal(&old, self.ckpt).await?;
        let now = self.stamp();
        self.piece.checkpoints.push((self.ckpt, now));
        let m = self.piece.manifest(self.args.round_id, self.ckpt, false);
        self.journal.write(self.ctx, &self.store, &m).await?;
        let progress = ArchiveProgress {
            round_id: self.args.round_id,
            piece_id: self.piece.spec.piece_id,
            checkpoint_scn: Scn(self.ckpt),
            input_bytes: 0,
            output_bytes: 0,
            lag_ms: 0,
            switch_to: None,
            frozen_piece: Some(old.spec.piece_id),
        };
        self.ctx.report_archive(&progress).await?;
        info!(
            round = %self.args.round_id,
            frozen = %old.spec.piece_id,
            active = %self.piece.spec.piece_id,
            "piece switched"
        );
        Ok(())
    }

    pub(super) async fn freeze_current(&self) -> Result<()> {
        self.seal(&self.piece, self.ckpt).await
    }

    /// Completes a piece an earlier attempt left FREEZING.
    pub(super) async fn finish_freezing(&mut self, spec: PieceSpec, max: u64) -> Result<()> {
        let mut piece = Piece::new(spec, self.args.round_id);
        if let Some(stored) = piece_journal::read(&self.store, &piece.dir, &self.ctx.abort).await? {
            let m = stored.manifest;
            piece.objects = m.objects.into_iter().filter(|o| o.end <= max).collect();
            piece.checkpoints = m.checkpoints;
            self.last_stamp = self
                .last_stamp
                .max(piece.checkpoints.iter().map(|(_, t)| *t).max().unwrap_or(0));
        }
        self.seal(&piece, max).await?;
        let progress = ArchiveProgress {
            round_id: self.args.round_id,
            piece_id: self.piece.spec.piece_id,
            checkpoint_scn: Scn(self.ckpt),
            input_bytes: 0,
            output_bytes: 0,
            lag_ms: 0,
            switch_to: None,
            frozen_piece: Some(piece.spec.piece_id),
        };
        self.ctx.report_archive(&progress).await
    }
}
