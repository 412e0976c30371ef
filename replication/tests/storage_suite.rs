//! openraft's own conformance suite for log storage and state machines,
//! run against the Strata-backed implementations.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use strata_engine::Options;
use strata_replication::{open_storage, LogStore, NodeId, StateMachine, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            history_retention: std::time::Duration::from_secs(3600),
            ..Options::default()
        };
        let (log, sm) = open_storage(dir.path(), opts).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
