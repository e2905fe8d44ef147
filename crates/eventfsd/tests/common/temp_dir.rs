//! A temporary directory for a test, removed on drop (the tests that spawn the daemon binary
//! include this file alone, without the rest of `common`).

use std::path::PathBuf;

/// `$TMPDIR/eventfsd-<name>-<pid>`, made empty; removed with everything in it on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Makes the directory (removing what an earlier run left there).
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("eventfsd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
