//! The SQLite side of `strata docbench`: documents as JSON text with an
//! expression index on `json_extract` per queried field (and a compound
//! one on kind and ts), arrays in a side table indexed by (tag, id) as
//! SQLite's JSON has no multikey index, WAL and synchronous=FULL so each
//! commit is synced as Strata's is.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde_json::Value;

use super::{DocEngine, Failure};

fn fail(e: rusqlite::Error) -> Failure {
    Failure(format!("sqlite: {e}"))
}

/// A SQLite database of documents.
pub(crate) struct SqliteDocs {
    conn: Connection,
    dir: PathBuf,
}

impl SqliteDocs {
    /// A fresh database in `dir` with the benchmark's indexes, or with
    /// `reuse` the one an earlier run left there.
    pub(crate) fn open(dir: &Path, cache_mb: usize, reuse: bool) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir).map_err(|e| Failure(e.to_string()))?;
        let conn = Connection::open(dir.join("docs.db")).map_err(fail)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA cache_size=-{};",
            cache_mb * 1024
        ))
        .map_err(fail)?;
        if reuse {
            return Ok(SqliteDocs {
                conn,
                dir: dir.to_path_buf(),
            });
        }
        conn.execute_batch(
            "CREATE TABLE docs (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
             CREATE INDEX docs_user ON docs (json_extract(doc, '$.user'));
             CREATE INDEX docs_city ON docs (json_extract(doc, '$.city'));
             CREATE INDEX docs_score ON docs (json_extract(doc, '$.score'));
             CREATE INDEX docs_kind_ts ON docs (json_extract(doc, '$.kind'), json_extract(doc, '$.ts'));
             CREATE TABLE doc_tags (tag TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tag, id)) WITHOUT ROWID;",
        )
        .map_err(fail)?;
        Ok(SqliteDocs {
            conn,
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `sql` with `args` and parses every returned document into the
    /// page a caller gets, as Strata's query returns its documents.
    fn found(&self, sql: &str, args: impl rusqlite::Params) -> Result<usize, Failure> {
        let mut st = self.conn.prepare_cached(sql).map_err(fail)?;
        let mut rows = st.query(args).map_err(fail)?;
        let mut page = Vec::new();
        while let Some(r) = rows.next().map_err(fail)? {
            let text: String = r.get(0).map_err(fail)?;
            let doc: Value =
                serde_json::from_str(&text).map_err(|e| Failure(format!("sqlite doc: {e}")))?;
            page.push(doc);
        }
        Ok(page.len())
    }
}

impl DocEngine for SqliteDocs {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn load(&mut self, batch: &[Value]) -> Result<(), Failure> {
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO docs (id, doc) VALUES (?1, ?2)")
                .map_err(fail)?;
            let mut tag = tx
                .prepare_cached("INSERT OR IGNORE INTO doc_tags (tag, id) VALUES (?1, ?2)")
                .map_err(fail)?;
            for d in batch {
                let id = d["id"].as_str().unwrap_or_default();
                put.execute(params![id, d.to_string()]).map_err(fail)?;
                for t in d["tags"].as_array().into_iter().flatten() {
                    tag.execute(params![t.as_str().unwrap_or_default(), id])
                        .map_err(fail)?;
                }
            }
        }
        tx.commit().map_err(fail)
    }

    fn equality(&self, user: &str) -> Result<usize, Failure> {
        self.found(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.user') = ?1",
            params![user],
        )
    }

    fn range_sort_limit(&self, score: u64) -> Result<usize, Failure> {
        self.found(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.score') >= ?1
             ORDER BY json_extract(doc, '$.score'), id LIMIT 100",
            params![score as i64],
        )
    }

    fn compound(&self, kind: &str, lo: u64, hi: u64) -> Result<usize, Failure> {
        self.found(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.kind') = ?1
             AND json_extract(doc, '$.ts') >= ?2 AND json_extract(doc, '$.ts') < ?3",
            params![kind, lo as i64, hi as i64],
        )
    }

    fn membership(&self, tag: &str) -> Result<usize, Failure> {
        self.found(
            "SELECT d.doc FROM doc_tags t JOIN docs d ON d.id = t.id
             WHERE t.tag = ?1 ORDER BY t.id LIMIT 100",
            params![tag],
        )
    }

    fn or(&self, user: &str, city: &str) -> Result<usize, Failure> {
        self.found(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.user') = ?1
             OR json_extract(doc, '$.city') = ?2",
            params![user, city],
        )
    }

    fn count(&self, kind: &str) -> Result<u64, Failure> {
        self.conn
            .query_row(
                "SELECT count(*) FROM docs WHERE json_extract(doc, '$.kind') = ?1",
                params![kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(fail)
    }

    fn disk_bytes(&self) -> u64 {
        crate::cli::bench::disk_usage(&self.dir)
    }
}
