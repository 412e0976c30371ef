//! `strata load`: a load generator against a running server or cluster
//! (`strata serve`): concurrent clients doing writes, reads or both over
//! the HTTP API, with ops/s and latency percentiles, so a single node and
//! a cluster are measured through the same API.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use strata_client::Client;

use super::Failure;

/// Arguments of `strata load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// A node's URL (`http://127.0.0.1:7001`); repeat for a cluster.
    #[arg(long = "remote", value_name = "URL", required = true)]
    remotes: Vec<String>,
    /// The bearer token.
    #[arg(long, value_name = "TOKEN")]
    token: String,
    /// The CA certificate (PEM) of `https://` nodes, when it is not one the
    /// system trusts.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Operations per workload (over all clients).
    #[arg(long, default_value_t = 2000)]
    ops: u64,
    /// Workloads to run, in order: `write`, `read`, `mixed` (half each).
    #[arg(long, value_delimiter = ',', default_value = "write,read")]
    workloads: Vec<String>,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
}

/// One workload's figures.
struct Figures {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    /// The longest time without a successful operation (a failover under
    /// load shows here).
    longest_gap: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

async fn run_workload(a: &LoadArgs, client: &Client, workload: &str) -> Result<Figures, Failure> {
    let value = Arc::new(vec![b'v'; a.value_size]);
    let per = a.ops / a.clients as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients as u64 {
        let (client, value, workload, keys) =
            (client.clone(), value.clone(), workload.to_owned(), a.keys);
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            let mut done = Vec::with_capacity(per as usize);
            let mut x = (c + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for i in 0..per {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("load/{:08}", x % keys);
                let write = match workload.as_str() {
                    "write" => true,
                    "read" => false,
                    _ => i % 2 == 0,
                };
                let t = Instant::now();
                let ok = if write {
                    client.put("resource", &key, &value).await.is_ok()
                } else {
                    client.get("resource", &key).await.is_ok()
                };
                let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                errors += u64::from(!ok);
                if ok {
                    done.push(Instant::now());
                }
            }
            (h, errors, done)
        }));
    }
    let mut latency = histogram();
    let mut errors = 0;
    let mut done = vec![started];
    for t in tasks {
        let (h, e, d) = t
            .await
            .map_err(|e| Failure(format!("a client task failed: {e}")))?;
        latency
            .add(&h)
            .map_err(|e| Failure(format!("histograms: {e}")))?;
        errors += e;
        done.extend(d);
    }
    done.sort();
    let longest_gap = done
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Ok(Figures {
        ops: per * a.clients as u64,
        errors,
        elapsed: started.elapsed(),
        latency,
        longest_gap,
    })
}

/// Runs the workloads and prints a line each.
pub(crate) fn run(a: &LoadArgs) -> Result<ExitCode, Failure> {
    if a.clients == 0 || a.ops < a.clients as u64 {
        return Err(Failure("--ops must be at least --clients, above 0".into()));
    }
    for w in &a.workloads {
        if !["write", "read", "mixed"].contains(&w.as_str()) {
            return Err(Failure(format!("no workload {w:?} (write, read, mixed)")));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let client = super::remote::connect(
            &a.remotes,
            &a.token,
            a.ca.as_deref(),
            Duration::from_secs(10),
        )?;
        println!(
            "{:<8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9}",
            "workload", "clients", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "gap ms"
        );
        for w in &a.workloads {
            let f = run_workload(a, &client, w).await?;
            let ms = |q: f64| f.latency.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{:<8} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>9.0}",
                w,
                a.clients,
                f.ops as f64 / f.elapsed.as_secs_f64(),
                ms(0.5),
                ms(0.99),
                f.latency.max() as f64 / 1000.0,
                f.errors,
                f.longest_gap.as_secs_f64() * 1000.0
            );
        }
        Ok::<_, Failure>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
