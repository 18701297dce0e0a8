//! The Raft log in RocksDB (`log` and `raft` column families). Every write that
//! openraft must be able to trust after a crash (vote, appended entries, truncation,
//! purge) is written with `sync = true` before it is acknowledged.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{cf, read_err, write_err};
use crate::codec::{decode, encode};
use crate::keys;
use crate::types::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};

/// Raft log storage over a shared RocksDB handle. Cloning shares the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    /// Index of the last log entry known committed, as last persisted by Raft.
    pub fn committed_index(&self) -> Option<u64> {
        self.get_raft::<Option<LogId>>(keys::COMMITTED)
            .ok()
            .flatten()
            .flatten()
            .map(|l| l.index)
    }

    fn sync_write(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)
    }

    fn get_raft<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let cf = cf(&self.db, keys::CF_RAFT)?;
        match self.db.get_cf(cf, key).map_err(read_err)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(read_err),
        }
    }

    fn put_raft<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let cf = cf(&self.db, keys::CF_RAFT)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, encode(value).map_err(write_err)?);
        self.sync_write(batch).map_err(write_err)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = cf(&self.db, keys::CF_LOG)?;
        let mut iter = self.db.iterator_cf(cf, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                let entry: Entry = decode(&value).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = cf(&self.db, keys::CF_LOG)?;
        let from = keys::log_key(start);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item.map_err(read_err)?;
            let index = keys::log_index(&key)
                .ok_or_else(|| read_err(std::io::Error::other("malformed log key")))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let last_purged: Option<LogId> = self.get_raft(keys::LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_raft(keys::VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_raft(keys::VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_raft(keys::COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_raft::<Option<LogId>>(keys::COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = cf(&self.db, keys::CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                keys::log_key(entry.log_id.index),
                encode(&entry).map_err(write_err)?,
            );
        }
        let result = self.sync_write(batch).map_err(std::io::Error::other);
        let failed = result
            .as_ref()
            .err()
            .map(|e| write_err(std::io::Error::other(e.to_string())));
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = cf(&self.db, keys::CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, keys::log_key(log_id.index), keys::log_key(u64::MAX));
        self.sync_write(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let log_cf = cf(&self.db, keys::CF_LOG)?;
        let raft_cf = cf(&self.db, keys::CF_RAFT)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            raft_cf,
            keys::LAST_PURGED,
            encode(&log_id).map_err(write_err)?,
        );
        batch.delete_range_cf(
            log_cf,
            keys::log_key(0),
            keys::log_key(log_id.index.saturating_add(1)),
        );
        self.sync_write(batch).map_err(write_err)
    }
}
