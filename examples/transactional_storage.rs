//! The storage design's second usage example: a resource and a fact stored
//! atomically in one transaction.
//!
//! `cargo run --example transactional_storage`

use serde::{Deserialize, Serialize};
use strata::{RetrieveOptions, StorageKey, StorageOptions, StorageSystem, StorageType};

#[derive(Debug, Serialize, Deserialize)]
struct Resource {
    id: u64,
    owner: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Fact {
    id: u64,
    about: u64,
    statement: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("strata-tx-{}", std::process::id()));
    let key_provider = std::sync::Arc::new(strata::engine::MemoryKeyProvider::new(1, [0x42; 32]));
    let storage = StorageSystem::builder()
        .path(&dir)
        .with_key_provider(key_provider)
        .build()?;
    let (resource_id, fact_id) = (7, 9);
    let resource = Resource {
        id: resource_id,
        owner: "ada".into(),
    };
    let fact = Fact {
        id: fact_id,
        about: resource_id,
        statement: "created".into(),
    };

    // Get providers
    let resource_storage = storage.get_provider(StorageType::Resource)?;
    let fact_storage = storage.get_provider(StorageType::Fact)?;

    // Begin transaction
    let tx = storage.begin_transaction()?;

    // Store multiple items atomically
    let resource_key = StorageKey::new(format!("resources/{resource_id}"));
    let resource_data = serde_json::to_vec(&resource)?;

    let fact_key = StorageKey::new(format!("facts/{fact_id}"));
    let fact_data = serde_json::to_vec(&fact)?;

    let options = StorageOptions::new()
        .with_transaction(&tx)
        .with_encryption(true);

    // Store items within transaction
    resource_storage.store(&resource_key, &resource_data, &options)?;
    fact_storage.store(&fact_key, &fact_data, &options)?;

    // Nothing is visible outside the transaction before it commits.
    assert!(!resource_storage.exists(&resource_key)?);

    // Commit transaction
    let committed = storage.commit_transaction(tx.id)?;
    println!("Committed {} at {:?}", committed.id, committed.commit_time);

    let fact: Fact = serde_json::from_slice(
        &fact_storage
            .retrieve(&fact_key, &RetrieveOptions::new())?
            .value,
    )?;
    println!("Fact: {fact:?}");
    storage.close()?;
    drop(storage);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
