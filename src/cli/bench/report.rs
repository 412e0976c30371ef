//! Results: the printed table (with strata / peer ratios), the JSON file
//! and the SVG bar chart.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// The figures of one engine on one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkloadResult {
    pub engine: String,
    pub workload: String,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The longest operation: for fills, the longest stall.
    pub max_us: f64,
    /// Bytes the process wrote to disk per user byte written.
    pub write_amp: Option<f64>,
    /// Bytes on disk per live user byte, after the workload.
    pub space_amp: Option<f64>,
    pub peak_rss_mb: f64,
}

/// A whole run, as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub date: String,
    pub machine: String,
    pub command: String,
    pub num: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub threads: usize,
    /// MiB of block or page cache each engine had.
    pub cache_mb: usize,
    /// The engines raced, each as built and set up.
    pub engines: Vec<EngineInfo>,
    pub results: Vec<WorkloadResult>,
}

/// One engine of a run: its crate and version, and its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EngineInfo {
    pub name: String,
    pub version: String,
    pub settings: String,
}

/// What a child process running one engine hands back.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildReport {
    pub engine: EngineInfo,
    pub results: Vec<WorkloadResult>,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

/// The table: one line per engine and workload; with several engines, a
/// line of strata / peer ratios under each peer (throughput ratios above 1
/// favour strata; for latencies, amplification and memory, below 1 does).
pub(crate) fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<17} {:<8} {:>11} {:>8} {:>9} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}",
        "workload",
        "engine",
        "ops/s",
        "MB/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max ms",
        "w-amp",
        "s-amp",
        "RSS MB"
    );
    let workloads: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for x in &r.results {
            if !v.contains(&x.workload.as_str()) {
                v.push(&x.workload);
            }
        }
        v
    };
    for w in workloads {
        let rows: Vec<&WorkloadResult> = r.results.iter().filter(|x| x.workload == w).collect();
        let strata = rows.iter().find(|x| x.engine == "strata").copied();
        for x in &rows {
            let _ = writeln!(
                out,
                "{:<17} {:<8} {:>11.0} {:>8.1} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>7} {:>7} {:>8.0}",
                x.workload,
                x.engine,
                x.ops_per_sec,
                x.mb_per_sec,
                x.p50_us,
                x.p99_us,
                x.p999_us,
                x.max_us / 1000.0,
                fmt_opt(x.write_amp),
                fmt_opt(x.space_amp),
                x.peak_rss_mb
            );
            if let Some(s) = strata.filter(|_| x.engine != "strata") {
                let ratio = |a: f64, b: f64| {
                    if b > 0.0 {
                        format!("{:.2}", a / b)
                    } else {
                        "-".into()
                    }
                };
                let ratio_opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "{:<17} {:<8} {:>11} {:>8} {:>9} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}",
                    "",
                    format!("s/{}", &x.engine[..x.engine.len().min(6)]),
                    ratio(s.ops_per_sec, x.ops_per_sec),
                    ratio(s.mb_per_sec, x.mb_per_sec),
                    ratio(s.p50_us, x.p50_us),
                    ratio(s.p99_us, x.p99_us),
                    ratio(s.p999_us, x.p999_us),
                    ratio(s.max_us, x.max_us),
                    ratio_opt(s.write_amp, x.write_amp),
                    ratio_opt(s.space_amp, x.space_amp),
                    ratio(s.peak_rss_mb, x.peak_rss_mb)
                );
            }
        }
    }
    out
}

/// Writes the run as JSON.
pub(crate) fn write_json(r: &Report, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// Draws throughput per workload, one bar per engine, as an SVG file.
pub(crate) fn write_plot(r: &Report, path: &Path) -> Result<(), String> {
    let mut workloads: Vec<&str> = Vec::new();
    let mut engines: Vec<&str> = Vec::new();
    for x in &r.results {
        if !workloads.contains(&x.workload.as_str()) {
            workloads.push(&x.workload);
        }
        if !engines.contains(&x.engine.as_str()) {
            engines.push(&x.engine);
        }
    }
    let max = r
        .results
        .iter()
        .map(|x| x.ops_per_sec)
        .fold(1.0f64, f64::max);
    let width = (160 + workloads.len() * (30 + 22 * engines.len())) as u32;
    let root = SVGBackend::new(path, (width.max(800), 560)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let slots = engines.len() + 1;
    let n = (workloads.len() * slots) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "ops/s, {} keys of {} + {} bytes, {} thread(s)",
                r.num, r.key_size, r.value_size, r.threads
            ),
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(90)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..n, 0f64..max * 1.1)
        .map_err(e)?;
    let labels = workloads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(workloads.len() * 2)
        .x_label_formatter(&|x| {
            let slot = (*x / slots as f64).floor() as usize;
            let centre = slot as f64 * slots as f64 + engines.len() as f64 / 2.0;
            if (x - centre).abs() < 0.6 {
                labels.get(slot).map_or(String::new(), |w| (*w).to_owned())
            } else {
                String::new()
            }
        })
        .y_desc("operations per second")
        .draw()
        .map_err(e)?;
    for (ei, engine) in engines.iter().enumerate() {
        let color = COLORS[ei % COLORS.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = workloads
            .iter()
            .enumerate()
            .filter_map(|(wi, w)| {
                let x = r
                    .results
                    .iter()
                    .find(|x| x.engine == *engine && x.workload == *w)?;
                let left = (wi * slots + ei) as f64 + 0.1;
                Some(Rectangle::new(
                    [(left, 0.0), (left + 0.8, x.ops_per_sec)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(e)?
            .label(*engine)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}
