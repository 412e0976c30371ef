//! A small tmpfs mounted for one test: a real file system that fills up,
//! or turns read-only, when a test says so. Mounting needs root; without
//! it the constructor says why and returns `None`, and the test skips.

use std::path::Path;
use std::process::Command;

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
#[derive(Debug)]
pub struct TmpfsMount {
    dir: tempfile::TempDir,
}

impl TmpfsMount {
    /// Mounts a 16 MiB tmpfs, or prints why not and returns `None`.
    pub fn new() -> Option<Self> {
        Self::with_size_mib(16)
    }

    /// Mounts a tmpfs of `mib` MiB, or prints why not and returns `None`.
    pub fn with_size_mib(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(TmpfsMount { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the mount read-only; false if the remount failed.
    pub fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
