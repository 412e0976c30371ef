//! Helpers shared by the root crate's integration tests.
#![allow(dead_code)]

use std::process::Command;

/// Runs the `strata` binary as a user would: exit code, stdout, stderr.
pub fn strata(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Anonymous resident memory of this process (heap and stacks, not the
/// page cache of mapped files, which the kernel reclaims at will).
pub fn rss_anon() -> u64 {
    rss("RssAnon:")
}

/// Resident memory of files mapped by this process.
pub fn rss_file() -> u64 {
    rss("RssFile:")
}

/// The `/proc/self/status` figure `field` (in kB there), in bytes.
fn rss(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Samples [`rss_anon`] every few milliseconds until dropped; keeps the
/// peak.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl PeakSampler {
    pub fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_anon());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        });
        PeakSampler {
            stop,
            thread: Some(thread),
        }
    }

    pub fn peak(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A storage system in `dir` whose writes are not synced (tests that crash
/// nothing need no fsync).
pub fn open_unsynced(dir: &std::path::Path) -> strata::StorageSystem {
    let mut config = strata::StorageSystemConfig::default();
    config.engine.sync_writes = false;
    strata::StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .build()
        .unwrap()
}

/// A copy of this test binary running one test (`entry`) as a worker with
/// `env` set to `dir`; its stdout lines arrive on `lines`. The parent kills
/// it with [`Worker::kill`].
pub struct Worker {
    child: std::process::Child,
    /// The worker's stdout, line by line.
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker.
    pub fn spawn(entry: &str, env: &str, dir: &std::path::Path) -> Worker {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([entry, "--exact", "--nocapture", "--test-threads=1"])
            .env(env, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Worker {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Kills the worker (SIGKILL) and waits until its output is all read.
    pub fn kill(mut self) -> std::sync::mpsc::Receiver<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.lines
    }
}

/// A xorshift step: the kill tests' source of random delays.
pub fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}
