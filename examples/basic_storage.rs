//! The storage design's first usage example: basic storage operations.
//!
//! `cargo run --example basic_storage`

use serde::{Deserialize, Serialize};
use strata::{RetrieveOptions, StorageKey, StorageOptions, StorageSystem, StorageType};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Resource {
    id: u64,
    name: String,
    kind: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("strata-basic-{}", std::process::id()));
    let key_provider = std::sync::Arc::new(strata::engine::MemoryKeyProvider::new(1, [0x42; 32]));
    // Get a reference to the storage system (encrypted at rest).
    let storage = StorageSystem::builder()
        .path(&dir)
        .with_key_provider(key_provider)
        .build()?;

    // Get a provider for resource storage
    let resource_storage = storage.get_provider(StorageType::Resource)?;

    // Store a resource
    let resource_id = 42;
    let resource = Resource {
        id: resource_id,
        name: "ledger".into(),
        kind: "document".into(),
    };
    let resource_key = StorageKey::new(format!("resources/{resource_id}"));
    let resource_data = serde_json::to_vec(&resource)?;

    let options = StorageOptions::new()
        .with_encryption(true)
        .with_compression(true)
        .with_ttl(None);

    let metadata = resource_storage.store(&resource_key, &resource_data, &options)?;
    println!("Stored resource with metadata: {metadata:?}");

    // Retrieve the resource
    let retrieve_options = RetrieveOptions::new();
    let item = resource_storage.retrieve(&resource_key, &retrieve_options)?;

    let retrieved_resource: Resource = serde_json::from_slice(&item.value)?;
    println!("Retrieved resource: {retrieved_resource:?}");
    assert_eq!(retrieved_resource, resource);

    storage.close()?;
    drop(storage);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
