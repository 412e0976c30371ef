//! `strata serve --config node.toml`: runs one node of a cluster until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use strata::server::{Server, ServerConfig};

use super::Failure;

/// Arguments of `strata serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The node's configuration (TOML; unknown fields are refused).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs the node.
pub(crate) fn run(a: &ServeArgs) -> Result<ExitCode, Failure> {
    let config = ServerConfig::load(&a.config).map_err(|e| Failure(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let server = Server::start(config.clone())
            .await
            .map_err(|e| Failure(e.to_string()))?;
        eprintln!(
            "strata: node {} serving on {} ({})",
            config.node_id,
            config.listen,
            config.data_dir.display()
        );
        server
            .serve(stopped())
            .await
            .map_err(|e| Failure(e.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes at SIGINT or SIGTERM.
async fn stopped() {
    let int = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = int => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = int.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = int.await;
    }
}
