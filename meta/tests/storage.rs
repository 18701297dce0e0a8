//! The RocksDB log store and state machine against openraft's conformance suite,
//! plus restart and layout-version checks on real RocksDB in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_meta::command::{Command, Request};
use backstop_meta::store::{self, LogStore, StateMachineStore};
use backstop_meta::types::{StorageError, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = store::open(dir.path()).await.expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn rocksdb_store_passes_openraft_conformance_suite() {
    Suite::test_all(Builder).expect("suite");
}

fn create_tenant(index: u64, name: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request {
            time_ms: 1_000 + index,
            command: Command::CreateTenant {
                name: name.to_string(),
                source: "dir:///data/t".to_string(),
                comment: String::new(),
                if_not_exists: false,
                root_password: backstop_common::auth::PasswordHash::new(""),
            },
        }),
    }
}

#[tokio::test]
async fn applied_records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut sm) = store::open(dir.path()).await.unwrap();
        sm.apply(vec![create_tenant(1, "t1"), create_tenant(2, "t2")])
            .await
            .unwrap();
    }
    let (_log, mut sm) = store::open(dir.path()).await.unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    let state = sm.applied();
    let state = state.read().await;
    let names: Vec<&str> = state
        .state
        .tenants
        .values()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, vec!["sys", "t1", "t2"]);
    assert_eq!(state.state.next_tenant_id, 1003);
}

#[tokio::test]
async fn data_from_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(store::open(dir.path()).await.unwrap());
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), backstop_meta::keys::ALL_CFS).unwrap();
        let cf = db.cf_handle(backstop_meta::keys::CF_SM).unwrap();
        db.put_cf(cf, backstop_meta::keys::DATA_VERSION, 99u32.to_be_bytes())
            .unwrap();
    }
    let err = store::open(dir.path()).await.err().expect("must refuse");
    assert!(
        matches!(err, store::OpenError::TooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade backstop"));
}
