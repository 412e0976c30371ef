//! A node's configuration file (`strata serve --config node.toml`): its
//! id, data directory, address, peers, tokens and limits. Unknown fields
//! are refused, so a misspelt setting is an error rather than a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::access::AccessPolicy;
use crate::error::{Result, StorageError};

/// One node of the cluster, as every node's configuration lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The node's id (above 0).
    pub id: u64,
    /// Where it listens (`host:port`), for clients and for the others.
    pub addr: String,
}

/// A bearer token and the identity a request carrying it acts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The secret the client sends (`Authorization: Bearer <token>`).
    pub token: String,
    /// The identity the access policies see.
    pub identity: String,
    /// The identity's attributes (policies may match them).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Bounds on what a request may cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// How long a request may take before it is answered 503.
    pub request_timeout_ms: u64,
    /// The most keys a scan returns.
    pub max_scan_keys: usize,
    /// The largest blob an upload may stream, in bytes (413 above it).
    pub max_blob_bytes: u64,
    /// How long a blob upload or download may take.
    pub blob_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            request_timeout_ms: 10_000,
            max_scan_keys: 10_000,
            max_blob_bytes: 64 << 30,
            blob_timeout_ms: 3_600_000,
        }
    }
}

/// A certificate and key (PEM files) to serve HTTPS with. Every node of a
/// cluster serves HTTPS or none does: the nodes reach each other by the
/// same scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, the node's own first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates the peers' certificates must be signed by;
    /// without it, the roots the system trusts.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// Raft's timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTiming {
    /// The leader's heartbeat period.
    pub heartbeat_ms: u64,
    /// The shortest election timeout; each node draws its own between this
    /// and twice it.
    pub election_timeout_ms: u64,
    /// Entries applied between snapshots.
    pub snapshot_every: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            election_timeout_ms: 500,
            snapshot_every: 5000,
        }
    }
}

/// The configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This node's id: one of `peers`.
    pub node_id: u64,
    /// Where the node keeps its data (created if new).
    pub data_dir: PathBuf,
    /// The address to listen on (`host:port`).
    pub listen: String,
    /// Every node of the cluster, this one included. The node with the
    /// lowest id starts the cluster when none of them has any state.
    pub peers: Vec<Peer>,
    /// The secret the nodes authenticate Raft traffic with (the same on
    /// every node, unknown to clients).
    pub cluster_token: String,
    /// Client tokens: a request without one of them is refused (401).
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// Access policies stored at the first start (the storage system's
    /// rules: deny by default, deny wins).
    #[serde(default)]
    pub access_policies: Vec<AccessPolicy>,
    /// A directory of encryption keys (`<id>.key`, 32 bytes each; the
    /// highest id encrypts), for encryption at rest.
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
    /// The key of `key_dir` new files are encrypted with (default 1).
    #[serde(default)]
    pub key_id: Option<u32>,
    /// Serve HTTPS with this certificate (HTTP without it).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Request bounds.
    #[serde(default)]
    pub limits: Limits,
    /// Raft's timing.
    #[serde(default)]
    pub raft: RaftTiming,
}

impl ServerConfig {
    /// Parses a TOML configuration and checks it.
    pub fn from_toml(text: &str) -> Result<ServerConfig> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| StorageError::Configuration(format!("server configuration: {e}")))?;
        let c: ServerConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            StorageError::Configuration(format!(
                "server configuration: {}: {}",
                e.path(),
                e.inner()
            ))
        })?;
        c.check()?;
        Ok(c)
    }

    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<ServerConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StorageError::Configuration(format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml(&text)
    }

    /// Refuses what cannot work: this node not among the peers, ids
    /// repeated or 0, tokens empty or repeated, a cluster token too short
    /// to be a secret.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(StorageError::Configuration(m));
        let mut ids = std::collections::BTreeSet::new();
        for p in &self.peers {
            if p.id == 0 || !ids.insert(p.id) {
                return bad(format!("peer id {} is 0 or repeated", p.id));
            }
        }
        if !ids.contains(&self.node_id) {
            return bad(format!("node_id {} is not among the peers", self.node_id));
        }
        if self.cluster_token.len() < 16 {
            return bad("cluster_token must be at least 16 characters".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tokens {
            if t.token.len() < 8 || !seen.insert(&t.token) {
                return bad(format!(
                    "the token of {:?} is shorter than 8 characters or repeated",
                    t.identity
                ));
            }
            if t.token == self.cluster_token {
                return bad("a client token equals the cluster token".into());
            }
        }
        if self.limits.max_body_bytes == 0
            || self.limits.request_timeout_ms == 0
            || self.limits.blob_timeout_ms == 0
        {
            return bad("limits must be above 0".into());
        }
        if self.raft.heartbeat_ms == 0 || self.raft.election_timeout_ms <= self.raft.heartbeat_ms {
            return bad("raft.election_timeout_ms must exceed raft.heartbeat_ms".into());
        }
        Ok(())
    }

    /// The address of node `id`.
    pub fn addr_of(&self, id: u64) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.addr.as_str())
    }
}
