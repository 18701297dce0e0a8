//! Compression of the stored bytes: zstd for data blocks, frames of blocks and log
//! objects, and [`BlockReader`], which reads a block back out of its stored object
//! (decompressing its frame once for all the blocks in it), checking sizes against the
//! format's bounds and checksums against the manifest. An encrypted set's frames are
//! sealed after compression ([`seal_frame`]) and opened before it, with the data key
//! of the set that wrote them ([`BlockReader::with_keys`]).

use std::borrow::Cow;
use std::collections::HashMap;

use backstop_common::seal::{self, DataKey, SealError};

use crate::error::{Result, WorkerError};
use crate::manifest::{BlockEntry, Loc, MAX_BLOCK_RAW, MAX_FRAME_RAW, checksum};

/// Compresses with zstd at `level` (0 = store raw). Returns the stored bytes and
/// whether they are compressed.
pub fn compress(level: i32, raw: &[u8]) -> Result<(Vec<u8>, bool)> {
    if level == 0 {
        return Ok((raw.to_vec(), false));
    }
    let out =
        zstd::bulk::compress(raw, level).map_err(|e| WorkerError::Invalid(format!("zstd: {e}")))?;
    if out.len() >= raw.len() {
        return Ok((raw.to_vec(), false));
    }
    Ok((out, true))
}

/// A reusable compressor: one zstd context for many blocks (creating a context per
/// 32 KiB block costs more than compressing it).
pub struct BlockCompressor {
    inner: Option<zstd::bulk::Compressor<'static>>,
}

impl BlockCompressor {
    /// zstd at `level`; 0 stores blocks raw.
    pub fn new(level: i32) -> Result<BlockCompressor> {
        let inner = if level == 0 {
            None
        } else {
            Some(
                zstd::bulk::Compressor::new(level)
                    .map_err(|e| WorkerError::Invalid(format!("zstd: {e}")))?,
            )
        };
        Ok(BlockCompressor { inner })
    }

    /// Like [`compress`], reusing the context.
    pub fn compress(&mut self, raw: &[u8]) -> Result<(Vec<u8>, bool)> {
        let Some(c) = self.inner.as_mut() else {
            return Ok((raw.to_vec(), false));
        };
        let out = c
            .compress(raw)
            .map_err(|e| WorkerError::Invalid(format!("zstd: {e}")))?;
        if out.len() >= raw.len() {
            return Ok((raw.to_vec(), false));
        }
        Ok((out, true))
    }
}

/// Reverses [`compress`], checking the raw size and checksum.
///
/// `raw_len` comes from a manifest, that is from storage, so it is trusted only up
/// to `limit` (the format's bound for this kind of object: [`MAX_BLOCK_RAW`] or
/// [`MAX_LOG_OBJECT_RAW`]); the output buffer is never larger.
///
/// Errors: `Corrupt` for a `raw_len` over `limit`, data zstd cannot decode, or a size
/// or checksum that does not match.
pub fn decompress(
    stored: &[u8],
    compressed: bool,
    raw_len: usize,
    limit: usize,
    want: &str,
    what: &str,
) -> Result<Vec<u8>> {
    if raw_len > limit {
        return Err(WorkerError::Corrupt(format!(
            "{what}: the manifest says {raw_len} bytes, more than the format's {limit}"
        )));
    }
    let raw = if compressed {
        zstd::bulk::decompress(stored, raw_len)
            .map_err(|e| WorkerError::Corrupt(format!("{what}: cannot decompress: {e}")))?
    } else {
        stored.to_vec()
    };
    if raw.len() != raw_len || checksum(&raw) != want {
        return Err(WorkerError::Corrupt(format!("{what}: checksum mismatch")));
    }
    Ok(raw)
}

/// `stored` (a compressed frame) sealed for its place: `object` at `offset`, as frame
/// number `frame` of attempt `attempt` of part `part` (the nonce,
/// `seal::frame_nonce`). Errors: `Invalid` if the cipher refuses.
pub fn seal_frame(
    key: &DataKey,
    (part, attempt, frame): (u32, u32, u32),
    object: &str,
    offset: u64,
    stored: &[u8],
) -> Result<Vec<u8>> {
    seal::seal(
        key,
        seal::frame_nonce(part, attempt, frame),
        &seal::frame_aad(object, offset),
        stored,
    )
    .map_err(|e| WorkerError::Invalid(e.to_string()))
}

/// A [`SealError`] met while reading, as the worker reports it: a frame or wrap that
/// does not open or parse is damage (`Corrupt`), a missing or wrong key is `Key`, a
/// failing random source (never met reading) is `Invalid`.
pub fn seal_error(e: SealError) -> WorkerError {
    match e {
        SealError::Tampered { .. } | SealError::Invalid(_) => WorkerError::Corrupt(e.to_string()),
        SealError::WrongKey { .. } => WorkerError::Key(e.to_string()),
        SealError::Random => WorkerError::Invalid(e.to_string()),
    }
}

/// The data keys an encrypted set's blocks need, by set directory: its own and its
/// bases', unwrapped with `ring`; empty for a set in the clear. `set_dir` is the
/// set's own directory.
///
/// Errors: `Key` naming the set when no password or master key given opens a key;
/// `Corrupt` for a malformed wrap.
pub fn set_keys(
    encryption: Option<&crate::manifest::SetEncryption>,
    set_dir: &str,
    ring: &seal::Keyring,
) -> Result<HashMap<String, DataKey>> {
    let Some(e) = encryption else {
        return Ok(HashMap::new());
    };
    let mut keys = HashMap::new();
    keys.insert(
        set_dir.to_string(),
        seal::unwrap(&e.wrap, ring, set_dir).map_err(seal_error)?,
    );
    for (dir, wrap) in &e.bases {
        keys.insert(
            dir.clone(),
            seal::unwrap(wrap, ring, dir).map_err(seal_error)?,
        );
    }
    Ok(keys)
}

/// The set directory (`data/backup_set_ID_full|inc`) of an object key.
pub fn set_dir_of(object: &str) -> &str {
    match object.match_indices('/').nth(1) {
        Some((i, _)) => &object[..i],
        None => object,
    }
}

/// Reads blocks out of their stored objects, keeping the last raw frame, so the
/// blocks of one frame (read one after another by restore and validate) cost one
/// decompression.
#[derive(Default)]
pub struct BlockReader {
    frame: Option<(String, u64, Vec<u8>)>,
    /// Data keys of encrypted sets, by set directory.
    keys: HashMap<String, DataKey>,
}

impl BlockReader {
    /// A reader of encrypted sets' blocks too: `keys` holds the data key of each set
    /// directory whose sealed frames it may meet.
    pub fn with_keys(keys: HashMap<String, DataKey>) -> BlockReader {
        BlockReader { frame: None, keys }
    }

    /// The stored bytes of `loc`'s frame, opened when sealed. Errors: `Key` when the
    /// set's key is not known here, `Corrupt` when the frame does not open.
    fn opened<'a>(&self, stored: &'a [u8], loc: &Loc) -> Result<Cow<'a, [u8]>> {
        if !loc.sealed {
            return Ok(Cow::Borrowed(stored));
        }
        let dir = set_dir_of(&loc.object);
        let key = self.keys.get(dir).ok_or_else(|| {
            WorkerError::Key(format!(
                "{dir} is encrypted and its key was not given (a password or master key)"
            ))
        })?;
        let what = format!("{} at offset {}", loc.object, loc.offset);
        seal::open(
            key,
            &seal::frame_aad(&loc.object, loc.offset),
            stored,
            &what,
        )
        .map(Cow::Owned)
        .map_err(seal_error)
    }

    /// The raw bytes of block `b`, whose object's stored bytes are `object`.
    ///
    /// Errors: `Corrupt` when the object is shorter than the manifest says, a length
    /// is over the format's bound ([`MAX_BLOCK_RAW`], [`MAX_FRAME_RAW`]), zstd cannot
    /// decode the bytes, or the block's size or checksum does not match.
    pub fn block(&mut self, object: &[u8], b: &BlockEntry) -> Result<Vec<u8>> {
        let loc = &b.loc;
        let what = &loc.object;
        let stored = usize::try_from(loc.offset)
            .ok()
            .zip(usize::try_from(loc.offset.saturating_add(loc.len)).ok())
            .and_then(|(s, e)| object.get(s..e))
            .ok_or_else(|| {
                WorkerError::Corrupt(format!("{what}: shorter than the manifest says"))
            })?;
        if loc.frame_len == 0 {
            let stored = self.opened(stored, loc)?;
            return decompress(
                &stored,
                loc.compressed,
                b.raw_len as usize,
                MAX_BLOCK_RAW,
                &b.checksum,
                what,
            );
        }
        let cached =
            matches!(&self.frame, Some((o, off, _)) if *o == loc.object && *off == loc.offset);
        if !cached {
            let frame_len = loc.frame_len as usize;
            if frame_len > MAX_FRAME_RAW {
                return Err(WorkerError::Corrupt(format!(
                    "{what}: the manifest says a frame of {frame_len} bytes, more than the format's {MAX_FRAME_RAW}"
                )));
            }
            let stored = self.opened(stored, loc)?;
            let raw = if loc.compressed {
                zstd::bulk::decompress(&stored, frame_len)
                    .map_err(|e| WorkerError::Corrupt(format!("{what}: cannot decompress: {e}")))?
            } else {
                stored.to_vec()
            };
            if raw.len() != frame_len {
                return Err(WorkerError::Corrupt(format!(
                    "{what}: frame at {} is {} bytes, the manifest says {frame_len}",
                    loc.offset,
                    raw.len()
                )));
            }
            self.frame = Some((loc.object.clone(), loc.offset, raw));
        }
        let raw = self
            .frame
            .as_ref()
            .map(|(_, _, raw)| raw.as_slice())
            .unwrap_or_default();
        let start = loc.frame_offset as usize;
        let block = raw
            .get(start..start.saturating_add(b.raw_len as usize))
            .ok_or_else(|| {
                WorkerError::Corrupt(format!("{what}: block outside its frame at {}", loc.offset))
            })?;
        if checksum(block) != b.checksum {
            return Err(WorkerError::Corrupt(format!("{what}: checksum mismatch")));
        }
        Ok(block.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::manifest::{BLOCK_SIZE, PG_BLOCK_SIZE};

    #[test]
    fn a_raw_length_from_storage_is_trusted_only_up_to_the_formats_bound() {
        let raw = vec![5u8; BLOCK_SIZE];
        let (stored, compressed) = compress(3, &raw).unwrap();
        let sum = checksum(&raw);
        let back = decompress(&stored, compressed, raw.len(), MAX_BLOCK_RAW, &sum, "b").unwrap();
        assert_eq!(back, raw);
        // A manifest claiming an exabyte gets an error, not an allocation.
        let err = decompress(&stored, compressed, 1 << 60, MAX_BLOCK_RAW, &sum, "b").unwrap_err();
        assert!(
            matches!(err, WorkerError::Corrupt(ref m) if m.contains("more than the format's")),
            "{err}"
        );
        let err = decompress(
            &stored,
            compressed,
            MAX_BLOCK_RAW + 1,
            MAX_BLOCK_RAW,
            &sum,
            "b",
        );
        assert!(err.is_err());
    }

    #[test]
    fn an_encrypted_sets_keys_open_with_its_password_before_anything_is_read() {
        use crate::manifest::SetEncryption;
        use backstop_common::seal::{Keyring, wrap_with_password};
        let (own, base) = (DataKey::random().unwrap(), DataKey::random().unwrap());
        let e = SetEncryption {
            wrap: wrap_with_password(&own, "pw").unwrap(),
            bases: [(
                "data/backup_set_1_full".to_string(),
                wrap_with_password(&base, "pw").unwrap(),
            )]
            .into(),
        };
        let ring = Keyring::with_passwords(["pw".to_string()]);
        let keys = set_keys(Some(&e), "data/backup_set_2_inc", &ring).unwrap();
        assert_eq!(keys["data/backup_set_2_inc"], own);
        assert_eq!(keys["data/backup_set_1_full"], base);
        let err = set_keys(Some(&e), "data/backup_set_2_inc", &Keyring::default()).unwrap_err();
        assert!(
            matches!(&err, WorkerError::Key(m) if m.contains("backup_set_2_inc")),
            "{err}"
        );
        assert!(set_keys(None, "d", &Keyring::default()).unwrap().is_empty());
        assert_eq!(
            set_dir_of("data/backup_set_1_full/part_0/a1/obj_0"),
            "data/backup_set_1_full"
        );
    }

    fn framed(raw: &[u8], at: usize, len: usize, frame_len: usize) -> BlockEntry {
        BlockEntry {
            raw_len: len as u32,
            checksum: checksum(&raw[at..at + len]),
            loc: Loc {
                object: "o".into(),
                offset: 3,
                len: 0,
                compressed: true,
                frame_len: frame_len as u32,
                frame_offset: at as u32,
                sealed: false,
            },
        }
    }

    #[test]
    fn blocks_of_one_frame_read_back_and_a_frame_is_trusted_only_up_to_the_bound() {
        let raw: Vec<u8> = (0..3 * PG_BLOCK_SIZE).map(|i| (i / 97) as u8).collect();
        let (stored, compressed) = compress(3, &raw).unwrap();
        assert!(compressed);
        let mut object = vec![0u8; 3];
        object.extend_from_slice(&stored);
        let mut reader = BlockReader::default();
        for k in 0..3 {
            let mut b = framed(&raw, k * PG_BLOCK_SIZE, PG_BLOCK_SIZE, raw.len());
            b.loc.len = stored.len() as u64;
            let back = reader.block(&object, &b).unwrap();
            assert_eq!(back, &raw[k * PG_BLOCK_SIZE..(k + 1) * PG_BLOCK_SIZE]);
        }
        // A frame length over the bound is an error, not an allocation.
        let mut b = framed(&raw, 0, PG_BLOCK_SIZE, raw.len());
        b.loc.len = stored.len() as u64;
        b.loc.frame_len = u32::MAX;
        let mut fresh = BlockReader::default();
        let err = fresh.block(&object, &b).unwrap_err();
        assert!(
            matches!(err, WorkerError::Corrupt(ref m) if m.contains("more than the format's")),
            "{err}"
        );
        // A block outside its frame, or a wrong frame length, is named as damage.
        let mut b = framed(&raw, 0, PG_BLOCK_SIZE, raw.len());
        b.loc.len = stored.len() as u64;
        b.loc.frame_offset = (3 * PG_BLOCK_SIZE - 10) as u32;
        assert!(matches!(
            BlockReader::default().block(&object, &b),
            Err(WorkerError::Corrupt(_))
        ));
        let mut b = framed(&raw, 0, PG_BLOCK_SIZE, raw.len() - 1);
        b.loc.len = stored.len() as u64;
        assert!(matches!(
            BlockReader::default().block(&object, &b),
            Err(WorkerError::Corrupt(_))
        ));
        // An object shorter than the manifest says.
        let mut b = framed(&raw, 0, PG_BLOCK_SIZE, raw.len());
        b.loc.len = stored.len() as u64 + 1;
        assert!(matches!(
            BlockReader::default().block(&object, &b),
            Err(WorkerError::Corrupt(_))
        ));
    }
}
