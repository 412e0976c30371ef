//! `strata remote`: the data commands against a running server or cluster
//! (`strata serve`) through its HTTP API, as the identity of a token.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use strata_client::Client;

use super::{parse_time, ts_text, Failure};

/// Arguments of `strata remote`.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// A node's URL (`http://127.0.0.1:7001`); repeat for a cluster.
    #[arg(long = "remote", value_name = "URL", required = true)]
    remotes: Vec<String>,
    /// The bearer token (or the environment variable STRATA_TOKEN).
    #[arg(long, value_name = "TOKEN", env = "STRATA_TOKEN")]
    token: String,
    /// The CA certificate (PEM) of `https://` nodes, when it is not one the
    /// system trusts.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// Print a key's value (exit status 1 when absent).
    Get {
        /// The storage type (`resource`, `fact`, ...).
        storage_type: String,
        /// The key.
        key: String,
        /// Read as of this time (ISO-8601 or a raw timestamp).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<strata::engine::Timestamp>,
    },
    /// Store a value; print its commit timestamp.
    Put {
        /// The storage type.
        storage_type: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key.
    Delete {
        /// The storage type.
        storage_type: String,
        /// The key.
        key: String,
    },
    /// Print every version of a key.
    History {
        /// The storage type.
        storage_type: String,
        /// The key.
        key: String,
    },
    /// Store a file as a blob, streamed (never read whole); print its
    /// metadata.
    PutBlob {
        /// The blob's key.
        key: String,
        /// The file to read.
        file: PathBuf,
    },
    /// Write a blob into a file, streamed and checked against its hash
    /// (exit status 1 when absent). The file appears only once whole.
    GetBlob {
        /// The blob's key.
        key: String,
        /// The file to write.
        file: PathBuf,
        /// Read as of this time (ISO-8601 or a raw timestamp).
        #[arg(long, value_parser = parse_time)]
        at: Option<strata::engine::Timestamp>,
    },
    /// Print the cluster as the answering node sees it.
    Cluster,
}

/// A client of `remotes`, trusting the CA of the PEM file `ca` if given.
pub(crate) fn connect(
    remotes: &[String],
    token: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<Client, Failure> {
    let client = match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
            Client::with_ca(remotes.to_vec(), token, timeout, &pem)
        }
        None => Client::new(remotes.to_vec(), token, timeout),
    };
    client.map_err(|e| Failure(e.to_string()))
}

/// Runs the command.
pub(crate) fn run(a: &RemoteArgs) -> Result<ExitCode, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the runtime: {e}")))?;
    let client = connect(
        &a.remotes,
        &a.token,
        a.ca.as_deref(),
        Duration::from_secs(30),
    )?;
    let fail = |e: strata_client::ClientError| Failure(e.to_string());
    rt.block_on(async {
        match &a.command {
            RemoteCommand::Get {
                storage_type,
                key,
                at,
            } => {
                let got = match at {
                    Some(at) => client.get_at(storage_type, key, at.as_u64()).await,
                    None => client.get(storage_type, key).await,
                }
                .map_err(fail)?;
                match got {
                    Some((v, _)) => {
                        println!("{}", String::from_utf8_lossy(&v));
                        Ok(ExitCode::SUCCESS)
                    }
                    None => Ok(ExitCode::from(1)),
                }
            }
            RemoteCommand::Put {
                storage_type,
                key,
                value,
            } => {
                let ts = client
                    .put(storage_type, key, value.as_bytes())
                    .await
                    .map_err(fail)?;
                println!("{}", ts_text(strata::engine::Timestamp(ts)));
                Ok(ExitCode::SUCCESS)
            }
            RemoteCommand::Delete { storage_type, key } => {
                client.delete(storage_type, key).await.map_err(fail)?;
                Ok(ExitCode::SUCCESS)
            }
            RemoteCommand::History { storage_type, key } => {
                for v in client.history(storage_type, key).await.map_err(fail)? {
                    let shown = match (&v.value, &v.value_hex) {
                        _ if v.deleted => "(deleted)".to_owned(),
                        (Some(t), _) => t.clone(),
                        (None, Some(h)) => format!("0x{h}"),
                        (None, None) => "(expired)".to_owned(),
                    };
                    println!("{}  {shown}", ts_text(strata::engine::Timestamp(v.ts)));
                }
                Ok(ExitCode::SUCCESS)
            }
            RemoteCommand::PutBlob { key, file } => {
                let f = tokio::fs::File::open(file)
                    .await
                    .map_err(|e| Failure(format!("cannot open {}: {e}", file.display())))?;
                let meta = client.put_blob_stream(key, f).await.map_err(fail)?;
                println!("{meta}");
                Ok(ExitCode::SUCCESS)
            }
            RemoteCommand::GetBlob { key, file, at } => {
                // Written beside the target and renamed once checked, so a
                // broken download leaves no file that looks whole.
                let mut part = file.as_os_str().to_owned();
                part.push(".part");
                let part = PathBuf::from(part);
                let io = |e: std::io::Error| Failure(format!("{}: {e}", part.display()));
                let mut out = tokio::fs::File::create(&part).await.map_err(io)?;
                let got = client
                    .get_blob_to(key, at.map(|t| t.as_u64()), &mut out)
                    .await;
                drop(out);
                match got {
                    Ok(Some(_)) => {
                        tokio::fs::rename(&part, file).await.map_err(io)?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Ok(None) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        Err(fail(e))
                    }
                }
            }
            RemoteCommand::Cluster => {
                let s = client.cluster().await.map_err(fail)?;
                println!(
                    "node {} leader {:?} term {} applied index {:?} at {} voters {:?}",
                    s.node,
                    s.leader,
                    s.term,
                    s.last_applied_index,
                    ts_text(strata::engine::Timestamp(s.applied_ts)),
                    s.voters
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
