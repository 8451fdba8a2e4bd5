//! A directory under the system temp dir that is removed when its guard is
//! dropped, so a test run leaves nothing behind (a gateway's state and
//! results are ~120 MB per end-to-end run).

use std::{
    ops::Deref,
    path::{Path, PathBuf},
};

/// A fresh, empty directory `{tmp}/{prefix}-{random}`, removed (with all it
/// holds) on drop. Keep the guard alive as long as anything uses the path.
/// A test that fails keeps it: dropped while the thread panics, the
/// directory (logs, state) stays for a look afterwards.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory; panics if it cannot (a test cannot go on).
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{:032x}", rand_u128()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for a look: {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unique enough for a directory name without another dependency: the
/// clock, the process and a counter.
fn rand_u128() -> u128 {
    use std::{
        hash::{BuildHasher, RandomState},
        sync::atomic::{AtomicU64, Ordering},
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let h = RandomState::new().hash_one((n, std::process::id(), nanos));
    (u128::from(h) << 64) | u128::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_removed_on_drop() {
        let d = TempDir::new("testkit-temp");
        std::fs::write(d.join("f"), b"x").unwrap();
        let path = d.path().to_owned();
        let other = TempDir::new("testkit-temp");
        assert_ne!(path, other.path());
        drop(d);
        assert!(!path.exists());
    }
}
