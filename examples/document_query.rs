//! The design's third usage example: documents of the Resource storage
//! type, queried by field equality and a time range, newest first, at
//! most 100. Run with `cargo run --example document_query`.

use serde::{Deserialize, Serialize};
use strata::document::{DocumentOptions, DocumentQuery, QueryOptions, SortOrder};
use strata::{StorageSystem, StorageType, Timestamp};

/// A resource document.
#[derive(Debug, Serialize, Deserialize)]
struct Document {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    created_at: Timestamp,
}

fn main() -> strata::Result<()> {
    let dir = std::env::temp_dir().join(format!("strata-document-query-{}", std::process::id()));
    let storage = StorageSystem::open(&dir)?;

    // Some documents, before and after the cut-off, of two types.
    let doc_storage = storage.get_document_storage(StorageType::Resource)?;
    doc_storage.create_index("resources", "created_at")?;
    let start = Timestamp::from_iso8601("2022-12-01T00:00:00Z")?;
    for i in 0..400u64 {
        let doc = Document {
            kind: if i % 3 == 0 { "note" } else { "document" }.into(),
            title: format!("resource {i}"),
            created_at: start.saturating_add(std::time::Duration::from_secs(i * 6 * 3600)),
        };
        doc_storage.store_document(
            "resources",
            &format!("r{i:04}"),
            &doc,
            &DocumentOptions::new(),
        )?;
    }

    // Get document storage
    let doc_storage = storage.get_document_storage(StorageType::Resource)?;

    // Query documents
    let query = DocumentQuery::new()
        .with_field_equals("type", "document")
        .with_field_greater_than(
            "created_at",
            Timestamp::from_iso8601("2023-01-01T00:00:00Z")?,
        )
        .with_limit(100);

    let options = QueryOptions::new().with_sort_field("created_at", SortOrder::Descending);

    let documents: Vec<Document> = doc_storage.query_documents("resources", &query, &options)?;

    println!("Found {} documents", documents.len());
    println!(
        "plan: {}",
        doc_storage.explain("resources", &query, &options)?
    );
    if let (Some(first), Some(last)) = (documents.first(), documents.last()) {
        println!(
            "newest {} ({}), oldest {} ({})",
            first.title,
            first.created_at.to_iso8601(),
            last.title,
            last.created_at.to_iso8601()
        );
    }
    storage.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
