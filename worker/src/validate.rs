//! Validation: re-read a backup set or a piece from a destination and check every
//! checksum, naming each bad object (`VALIDATE BACKUPSET` semantics).

use backstop_common::{BackupSetId, PieceId, RoundId};
use std::collections::{BTreeSet, HashMap};

use backstop_common::layout;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::backup::read_set_manifest;
use crate::error::{Result, WorkerError};
use crate::manifest::{self, PieceManifest};
use crate::piece_journal;
use crate::storage::TenantStore;

/// Largest log object a manifest may describe (the archive writes at most 8 MiB).
const MAX_LOG_OBJECT: u64 = 64 * 1024 * 1024;

/// What a validation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Objects read.
    pub objects: u64,
    /// Bad objects: `key: what is wrong`.
    pub bad: Vec<String>,
}

/// Checks every object and block a set references (including base-set objects). It
/// needs no key: an encrypted set's own objects are checked against the checksums
/// of their stored (sealed) bytes; its sealed blocks' plaintext checksums are left
/// to restore, and base-set objects to the base set's validation.
pub async fn validate_set(
    store: &TenantStore,
    set_id: BackupSetId,
    cancel: &CancellationToken,
) -> Result<Validation> {
    let m = match read_set_manifest(store, set_id, cancel).await {
        Ok(m) => m,
        Err(WorkerError::Corrupt(what)) => {
            return Ok(Validation {
                objects: 1,
                bad: vec![what],
            });
        }
        Err(e) => return Err(e),
    };
    let own: HashMap<&str, &str> = m
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.checksum.as_str()))
        .collect();
    let mut by_object: HashMap<&str, Vec<(&str, &manifest::BlockEntry)>> = HashMap::new();
    for f in &m.files {
        for b in &f.blocks {
            by_object
                .entry(b.loc.object.as_str())
                .or_default()
                .push((f.path.as_str(), b));
        }
    }
    let mut keys: BTreeSet<&str> = by_object.keys().copied().collect();
    keys.extend(own.keys().copied());
    let mut bad = BTreeSet::new();
    let mut objects = 0;
    for key in keys {
        objects += 1;
        let data: Bytes = match store.get(key, cancel).await {
            Ok(d) => d,
            Err(WorkerError::Corrupt(what)) => {
                bad.insert(what);
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(want) = own.get(key)
            && manifest::checksum(&data) != *want
        {
            bad.insert(format!("{key}: object checksum mismatch"));
            continue;
        }
        let mut reader = crate::codec::BlockReader::default();
        for (path, b) in by_object.get(key).map(Vec::as_slice).unwrap_or(&[]) {
            if b.loc.sealed {
                continue;
            }
            if reader.block(&data, b).is_err() {
                bad.insert(format!("{key}: block of {path} fails its checksum"));
                break;
            }
        }
    }
    Ok(Validation {
        objects,
        bad: bad.into_iter().collect(),
    })
}

/// Checks every log object of a piece.
pub async fn validate_piece(
    store: &TenantStore,
    round_id: RoundId,
    piece_id: PieceId,
    cancel: &CancellationToken,
) -> Result<Validation> {
    let dir = layout::piece_dir(round_id, piece_id);
    let key = layout::piece_manifest(&dir);
    let m: PieceManifest = piece_journal::read_existing(store, &dir, cancel)
        .await?
        .manifest;
    let mut out = Validation::default();
    // Coverage: contiguous from the piece start to its checkpoint, nothing beyond.
    let mut pos = m.start_scn;
    for o in &m.objects {
        if o.end <= o.start || o.start != pos || o.end > m.checkpoint_scn {
            out.bad.push(format!(
                "{}: covers [{}, {}) but the piece continues at {pos} (checkpoint {})",
                o.key, o.start, o.end, m.checkpoint_scn
            ));
        }
        pos = o.end.max(pos);
    }
    if pos != m.checkpoint_scn {
        out.bad.push(format!(
            "{key}: objects end at {pos}, the checkpoint is {}",
            m.checkpoint_scn
        ));
    }
    for o in m
        .objects
        .iter()
        .filter(|o| o.end > o.start && o.end - o.start <= MAX_LOG_OBJECT)
    {
        out.objects += 1;
        match store.get(&o.key, cancel).await {
            Ok(data) => {
                if manifest::checksum(&data) != o.stored_checksum
                    || manifest::span(o.start, o.end, &o.key)
                        .and_then(|len| {
                            crate::codec::decompress(
                                &data,
                                o.compressed,
                                len,
                                manifest::MAX_LOG_OBJECT_RAW,
                                &o.checksum,
                                &o.key,
                            )
                        })
                        .is_err()
                {
                    out.bad.push(format!("{}: checksum mismatch", o.key));
                }
            }
            Err(WorkerError::Corrupt(what)) => out.bad.push(what),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
