//! The object writer of a data backup's copy task, in the clear and encrypted.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use backstop_common::seal::DataKey;
use backstop_common::{TenantId, task::TenantDest};

use super::*;
use crate::codec::BlockReader;
use crate::manifest::{BlockEntry, PG_BLOCK_SIZE};

fn writer<'a>(store: &'a TenantStore, seal: Option<DataKey>) -> ObjectWriter<'a> {
    ObjectWriter {
        store,
        set_dir: "data/backup_set_7_full".into(),
        part: 2,
        attempt: 3,
        seq: 0,
        buf: Vec::new(),
        objects: Vec::new(),
        output_bytes: 0,
        compressor: crate::codec::BlockCompressor::new(3).unwrap(),
        frame: Vec::new(),
        members: Vec::new(),
        seal,
        frames: 0,
    }
}

fn page(i: usize) -> Vec<u8> {
    (0..PG_BLOCK_SIZE)
        .map(|b| ((b / 61 + i * 7) % 251) as u8)
        .collect()
}

/// 40 pages (three frames) through the writer; returns the stored object and
/// the blocks' manifest entries.
fn write_pages(seal: Option<DataKey>) -> (Vec<u8>, Vec<BlockEntry>) {
    let dir = tempfile::tempdir().unwrap();
    let dest = TenantDest {
        uri: format!("file://{}", dir.path().display()),
        cluster_name: "c".into(),
        cluster_id: 1,
        incarnation: 1,
        tenant_id: TenantId(1001),
        tenant_name: "t".into(),
    };
    let store = TenantStore::open(&dest).unwrap();
    let mut w = writer(&store, seal);
    let mut files = vec![FileManifest {
        path: "f".into(),
        size: 0,
        blocks: Vec::new(),
    }];
    for i in 0..40 {
        let raw = page(i);
        files[0].blocks.push(BlockEntry {
            raw_len: raw.len() as u32,
            checksum: manifest::checksum(&raw),
            loc: Loc::default(),
        });
        w.add(&mut files, 0, i, &raw).unwrap();
    }
    w.write_frame(&mut files).unwrap();
    (w.buf, files.remove(0).blocks)
}

#[test]
fn an_encrypted_part_reads_back_only_with_its_key_and_names_tampering() {
    let key = DataKey::random().unwrap();
    let (object, blocks) = write_pages(Some(key.clone()));
    assert!(blocks.iter().all(|b| b.loc.sealed));
    let keys = HashMap::from([("data/backup_set_7_full".to_string(), key)]);
    let mut reader = BlockReader::with_keys(keys.clone());
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(reader.block(&object, b).unwrap(), page(i), "page {i}");
    }
    // Without the key: a key error naming the set, not garbage.
    let err = BlockReader::default()
        .block(&object, &blocks[0])
        .unwrap_err();
    assert!(
        matches!(&err, WorkerError::Key(m) if m.contains("backup_set_7_full")),
        "{err}"
    );
    // A flipped byte inside the first frame is named with its object and offset.
    let mut flipped = object.clone();
    flipped[40] ^= 0x10;
    let err = BlockReader::with_keys(keys.clone())
        .block(&flipped, &blocks[0])
        .unwrap_err();
    assert!(
        matches!(&err, WorkerError::Corrupt(m) if m.contains("obj_0 at offset 0")),
        "{err}"
    );
    // Two frames swapped in place (their locations swapped with them) do not open.
    let (a, b) = (&blocks[0].loc, &blocks[39].loc);
    assert_ne!(a.offset, b.offset);
    let mut swapped_entry = blocks[0].clone();
    swapped_entry.loc.offset = b.offset;
    swapped_entry.loc.len = b.len;
    assert!(matches!(
        BlockReader::with_keys(keys).block(&object, &swapped_entry),
        Err(WorkerError::Corrupt(_))
    ));
}

#[test]
fn a_part_in_the_clear_is_unchanged_by_encryption_support() {
    let (object, blocks) = write_pages(None);
    assert!(blocks.iter().all(|b| !b.loc.sealed));
    let mut reader = BlockReader::default();
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(reader.block(&object, b).unwrap(), page(i));
    }
    let json = serde_json::to_string(&blocks[0].loc).unwrap();
    assert!(!json.contains("sealed"), "{json}");
}
