//! The storage format: manifests and index entries, JSON so an operator can read
//! them. Every stored object has an xxh3-64 checksum of its stored bytes; every data
//! block and log object also has one of its raw bytes. `FORMAT_VERSION` is written
//! into each manifest; a reader refuses versions it does not know.

use backstop_common::task::BackupType;
use backstop_common::{BackupSetId, PieceId, RoundId};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Result, WorkerError};

/// Version of every piece manifest written by this build, but an open piece's
/// journaled base.
pub const FORMAT_VERSION: u32 = 1;
/// Version of an open piece's base manifest continued by a journal
/// ([`crate::piece_journal`]): a build that knows only version 1 would read a short
/// piece, so it refuses this one.
pub const JOURNAL_FORMAT_VERSION: u32 = 2;
/// Version of the set and part manifests written by this build: blocks may share a
/// compressed frame ([`Loc::frame_len`]), which a build that knows only versions 1
/// and 2 would misread, so it refuses them. Readers accept versions up to this one.
pub const SET_FORMAT_VERSION: u32 = 3;
/// Version of an encrypted set's manifests: its frames are sealed ([`Loc::sealed`],
/// [`SetManifest::encryption`]), which a build that knows only version 3 would try
/// to decompress, so it refuses them. Sets in the clear stay version 3.
pub const SEALED_FORMAT_VERSION: u32 = 4;
/// The newest version this build reads.
pub const MAX_FORMAT_VERSION: u32 = SEALED_FORMAT_VERSION;
/// Stored blocks are compressed together in frames of up to this many raw bytes
/// (128 KiB: 16 PostgreSQL pages, 4 blocks of 32 KiB), which compresses about a third
/// better than block by block; restore decompresses each frame once.
pub const FRAME_TARGET: usize = 128 * 1024;
/// The largest raw frame any set holds (bytes): a frame is closed before it passes
/// [`FRAME_TARGET`] by more than one block.
pub const MAX_FRAME_RAW: usize = FRAME_TARGET + MAX_BLOCK_RAW;
/// Datafiles are cut into blocks of this size (bytes) for checksums and incrementals.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// The block size of a PostgreSQL tenant's sets: PostgreSQL's page (`BLCKSZ`, 8 KiB
/// in every standard build), so an incremental stores the pages that changed.
pub const PG_BLOCK_SIZE: usize = 8 * 1024;

/// The largest raw size of a data block any set holds (bytes): every block size of
/// the format is at most this ([`BLOCK_SIZE`], [`PG_BLOCK_SIZE`]).
pub const MAX_BLOCK_RAW: usize = BLOCK_SIZE;
/// The largest raw size of an archived log object (bytes): the archive cuts log
/// objects at this size.
pub const MAX_LOG_OBJECT_RAW: usize = 8 * 1024 * 1024;

/// `end - start` of a byte range a manifest names, as a length.
///
/// Errors: `Corrupt` when `end < start` (a damaged manifest), naming `what`.
pub fn span(start: u64, end: u64, what: &str) -> Result<usize> {
    end.checked_sub(start)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            WorkerError::Corrupt(format!(
                "{what}: range ends ({end}) before it starts ({start})"
            ))
        })
}

/// The block size of a set of `source`'s tenant.
pub fn block_size_for(source: &str) -> usize {
    if backstop_common::source::is_postgresql(source) {
        PG_BLOCK_SIZE
    } else {
        BLOCK_SIZE
    }
}
/// Data objects are closed when they reach this size (bytes).
pub const OBJECT_TARGET: usize = 16 * 1024 * 1024;

/// Hex xxh3-64.
pub fn checksum(data: &[u8]) -> String {
    format!("{:016x}", xxh3_64(data))
}

/// Serializes a manifest.
pub fn to_json<T: Serialize>(v: &T) -> Result<Bytes> {
    serde_json::to_vec_pretty(v)
        .map(Bytes::from)
        .map_err(|e| WorkerError::Invalid(format!("encode manifest: {e}")))
}

/// zstd's frame magic (RFC 8878), little-endian: how a reader tells a compressed
/// manifest from plain JSON, which starts with `{`.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// The largest decompressed manifest a reader accepts (bytes, 4 GiB): a set manifest
/// takes about 130 bytes per block, so this is a set of some 250 GB of PostgreSQL
/// pages; a damaged or hostile object cannot make a reader allocate more.
pub const MAX_MANIFEST_RAW: u64 = 4 << 30;

/// Serializes a manifest with one entry per block (a set's or a part's) as compact
/// JSON compressed with zstd level 3, about 15 times smaller than pretty JSON (an
/// operator reads it with `zstd -dc manifest | jq`). [`from_json`] reads both forms.
pub fn to_json_zstd<T: Serialize>(v: &T) -> Result<Bytes> {
    let json =
        serde_json::to_vec(v).map_err(|e| WorkerError::Invalid(format!("encode manifest: {e}")))?;
    zstd::bulk::compress(&json, 3)
        .map(Bytes::from)
        .map_err(|e| WorkerError::Invalid(format!("zstd: {e}")))
}

/// Parses a manifest written by [`to_json`] or [`to_json_zstd`], naming the object
/// on failure.
///
/// Errors: `Corrupt` when the bytes are not a manifest of this shape, a zstd frame
/// does not decode, or it decodes to more than [`MAX_MANIFEST_RAW`] bytes.
pub fn from_json<T: DeserializeOwned>(data: &[u8], key: &str) -> Result<T> {
    let plain;
    let json = if data.starts_with(&ZSTD_MAGIC) {
        use std::io::Read;
        let bad =
            |e: std::io::Error| WorkerError::Corrupt(format!("{key}: cannot decompress: {e}"));
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(data)
            .map_err(bad)?
            .take(MAX_MANIFEST_RAW + 1)
            .read_to_end(&mut out)
            .map_err(bad)?;
        if out.len() as u64 > MAX_MANIFEST_RAW {
            return Err(WorkerError::Corrupt(format!(
                "{key}: decompresses to more than the format's {MAX_MANIFEST_RAW} bytes"
            )));
        }
        plain = out;
        plain.as_slice()
    } else {
        data
    };
    serde_json::from_slice(json)
        .map_err(|e| WorkerError::Corrupt(format!("{key}: not a valid manifest: {e}")))
}

/// Where stored bytes are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    /// Object key, relative to the tenant prefix (may be in a base set).
    pub object: String,
    /// Offset in the object.
    pub offset: u64,
    /// Stored length.
    pub len: u64,
    /// zstd-compressed.
    pub compressed: bool,
    /// When the stored bytes are a frame of several blocks: the raw length of the
    /// whole frame (bytes, at most [`MAX_FRAME_RAW`]); 0 (absent) when they are this
    /// block alone, as in every set of format versions 1 and 2.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub frame_len: u32,
    /// The block's offset in the raw frame (bytes); 0 when there is no frame.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub frame_offset: u32,
    /// The stored bytes are sealed (AES-256-GCM under the set's data key: nonce,
    /// ciphertext, tag; `backstop_common::seal`); absent (false) in the clear.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

fn is_zero32(v: &u32) -> bool {
    *v == 0
}

/// One block of a datafile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Raw length (the last block of a file may be short).
    pub raw_len: u32,
    /// xxh3-64 of the raw bytes.
    pub checksum: String,
    /// Where it is stored.
    pub loc: Loc,
}

/// A datafile in a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileManifest {
    /// Path relative to `data/`.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Blocks in order.
    pub blocks: Vec<BlockEntry>,
}

/// A stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Key relative to the tenant prefix.
    pub key: String,
    /// Stored bytes.
    pub size: u64,
    /// xxh3-64 of the stored bytes.
    pub checksum: String,
}

/// What one part of a set wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Set.
    pub backup_set_id: BackupSetId,
    /// Part.
    pub part: u32,
    /// Attempt that wrote it.
    pub attempt: u32,
    /// Files of the part.
    pub files: Vec<FileManifest>,
    /// Objects the part wrote.
    pub objects: Vec<ObjectEntry>,
    /// Source bytes read.
    pub input_bytes: u64,
    /// Bytes stored.
    pub output_bytes: u64,
}

/// A complete set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetManifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Tenant.
    pub tenant_id: u64,
    /// Set.
    pub backup_set_id: BackupSetId,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base of an incremental.
    pub base_set_id: Option<BackupSetId>,
    /// Log end before the copy: replay starts here.
    pub start_replay_scn: u64,
    /// Log end after the copy: the earliest restorable SCN.
    pub min_restore_scn: u64,
    /// The block size when written: [`BLOCK_SIZE`], or [`PG_BLOCK_SIZE`] for a
    /// PostgreSQL tenant.
    pub block_size: u64,
    /// Every datafile.
    pub files: Vec<FileManifest>,
    /// Objects this set wrote (blocks may also point into base sets).
    pub objects: Vec<ObjectEntry>,
    /// Source bytes.
    pub input_bytes: u64,
    /// Bytes this set stored.
    pub output_bytes: u64,
    /// For a PostgreSQL tenant: what `pg_backup_stop` returned and what a restore
    /// needs to make the files a data directory. Absent for `dir://` tenants (and
    /// not written, so their manifests are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg: Option<PgSetInfo>,
    /// An encrypted set's data key, wrapped, and those of the base sets its blocks
    /// point into. Absent for a set in the clear (whose manifest is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<SetEncryption>,
}

/// The keys of an encrypted set ([`SEALED_FORMAT_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetEncryption {
    /// This set's data key, wrapped (password or master key).
    pub wrap: backstop_common::seal::KeyWrap,
    /// The wrapped data keys of the base sets whose objects this set's blocks point
    /// into, by set directory (`data/backup_set_ID_full|inc`), so a restore reads one
    /// manifest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bases: std::collections::BTreeMap<String, backstop_common::seal::KeyWrap>,
}

/// The PostgreSQL side of a set (a base backup, PostgreSQL's low-level API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgSetInfo {
    /// The `backup_label` contents from `pg_backup_stop`; written into the restored
    /// data directory.
    pub backup_label: String,
    /// The `tablespace_map` contents (empty without tablespaces).
    pub tablespace_map: String,
    /// Directories of the data directory, relative, `/`-separated: recreated on
    /// restore (also the ones whose contents are left out, such as `pg_wal`).
    pub dirs: Vec<String>,
    /// The timeline the backup was taken on (`recovery_target_timeline`).
    pub timeline: u32,
    /// `wal_segment_size`, bytes.
    pub wal_segment_size: u64,
    /// `pg_control_system().system_identifier`.
    pub system_identifier: u64,
    /// The contents of `pg_wal/TTTTTTTT.history` for `timeline` (absent on timeline
    /// 1, which has no history): recovery with `recovery_target_timeline = T` needs
    /// it, so the restore writes it into `pg_wal/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_history: Option<String>,
}

/// Index entry of a complete set, under `info/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetIndex {
    /// Set.
    pub backup_set_id: BackupSetId,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base set.
    pub base_set_id: Option<BackupSetId>,
    /// Replay start.
    pub start_replay_scn: u64,
    /// Earliest restorable SCN.
    pub min_restore_scn: u64,
    /// `data/backup_set_…`.
    pub set_dir: String,
    /// Checksum of the set manifest.
    pub manifest_checksum: String,
}

/// One archived log object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogObject {
    /// Key relative to the tenant prefix.
    pub key: String,
    /// First SCN.
    pub start: u64,
    /// End SCN (exclusive).
    pub end: u64,
    /// Stored bytes.
    pub stored_len: u64,
    /// zstd-compressed.
    pub compressed: bool,
    /// xxh3-64 of the raw log bytes.
    pub checksum: String,
    /// xxh3-64 of the stored bytes.
    pub stored_checksum: String,
}

/// A piece's manifest. Frozen, it is whole. Open, the stored one is a base that the
/// journal of attempt `journal` continues ([`crate::piece_journal::read`] merges them);
/// in memory, after that merge, it is the whole piece so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceManifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Round.
    pub round_id: RoundId,
    /// Piece.
    pub piece_id: PieceId,
    /// First SCN.
    pub start_scn: u64,
    /// Archived below this SCN.
    pub checkpoint_scn: u64,
    /// No more objects will be added.
    pub frozen: bool,
    /// Objects in SCN order, contiguous from `start_scn` to `checkpoint_scn`.
    pub objects: Vec<LogObject>,
    /// (checkpoint SCN, ms since the epoch) of each checkpoint, for `--until-time`.
    pub checkpoints: Vec<(u64, u64)>,
    /// The attempt (`tTASK-aATTEMPT`) whose journal entries continue this base, from
    /// sequence `journal_seq` on; `None` when the manifest is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// First journal sequence number that continues this base.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_seq: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One checkpoint's additions to an open piece (`manifest.d/EPOCH_SEQ`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceDelta {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The checkpoint this delta continues from (the previous entry's, or the base's).
    pub from_scn: u64,
    /// Archived below this SCN once this delta is applied.
    pub checkpoint_scn: u64,
    /// Log objects added, in SCN order, contiguous from `from_scn` to `checkpoint_scn`.
    pub objects: Vec<LogObject>,
    /// Checkpoints added, (SCN, ms since the epoch).
    pub checkpoints: Vec<(u64, u64)>,
}
/// Tenant identity at a destination (`info/tenant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// Tenant id.
    pub tenant_id: u64,
    /// Tenant name.
    pub tenant_name: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Cluster id.
    pub cluster_id: u64,
    /// Incarnation.
    pub incarnation: u64,
}

/// Checks a manifest's version.
pub fn check_version(found: u32, key: &str) -> Result<()> {
    if found > MAX_FORMAT_VERSION {
        return Err(WorkerError::Corrupt(format!(
            "{key} has format version {found}, newer than this build's {MAX_FORMAT_VERSION}: upgrade backstop"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_range_that_ends_before_it_starts_is_damage() {
        // A range that ends before it starts is a damaged manifest, not an underflow.
        assert!(matches!(span(10, 4, "o"), Err(WorkerError::Corrupt(_))));
        assert_eq!(span(4, 10, "o").unwrap(), 6);
    }

    #[test]
    fn set_manifests_are_compressed_json_and_both_forms_read_back() {
        let index = SetIndex {
            backup_set_id: BackupSetId(7),
            backup_type: BackupType::Full,
            base_set_id: None,
            start_replay_scn: 1,
            min_restore_scn: 2,
            set_dir: "data/backup_set_7_full".into(),
            manifest_checksum: "x".into(),
        };
        let packed = to_json_zstd(&index).unwrap();
        assert!(packed.starts_with(&ZSTD_MAGIC));
        let a: SetIndex = from_json(&packed, "k").unwrap();
        let b: SetIndex = from_json(&to_json(&index).unwrap(), "k").unwrap();
        assert_eq!(a, index);
        assert_eq!(b, index);
        let mut broken = packed.to_vec();
        broken.truncate(6);
        let err = from_json::<SetIndex>(&broken, "k").unwrap_err();
        assert!(
            matches!(err, WorkerError::Corrupt(ref m) if m.starts_with("k:")),
            "{err}"
        );
    }
}
