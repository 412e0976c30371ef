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
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
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
