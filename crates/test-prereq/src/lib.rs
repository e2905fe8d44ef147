//! test-prereq: what a privileged test needs, checked the same way by every test.
//!
//! libtest has no run-time skip: a test that returns early counts as passed. So a test whose
//! prerequisite is missing calls [`skip`], which
//! - fails the test when `EVENTFSD_REQUIRE_PREREQS=1` (CI, where everything must run);
//! - otherwise prints `SKIPPED <test>: <reason>` and appends that line to the file named by
//!   `EVENTFSD_SKIP_LOG`, so that `scripts/test.sh` counts it as skipped, not passed.
//!
//! A check that a passing test could not make on this machine is recorded with [`note_skip`]
//! (`SKIPPED-CHECK`): counted as skipped, never required.

#![warn(missing_docs)]

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Environment variable: `1` turns every skip into a failure.
pub const REQUIRE_ENV: &str = "EVENTFSD_REQUIRE_PREREQS";
/// Environment variable: a file that collects one line per skipped test.
pub const SKIP_LOG_ENV: &str = "EVENTFSD_SKIP_LOG";

/// Whether this run must not skip anything.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Records that `test` could not run because of `reason`; panics when the run requires
/// every test. Call it and return from the test.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !required(),
        "{test}: {reason}, and this run requires it ({REQUIRE_ENV}=1)"
    );
    log_line(&format!("SKIPPED {test}: {reason}"));
}

/// Records a check that a test which otherwise ran could not make on this machine (one that
/// depends on which kernel it runs, say): counted as skipped, never a failure.
pub fn note_skip(test: &str, reason: &str) {
    log_line(&format!("SKIPPED-CHECK {test}: {reason}"));
}

fn log_line(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // One short O_APPEND write per line: lines from parallel tests do not interleave.
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot record {line:?} in {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// True when the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when `/dev/fuse` is the FUSE character device (10, 229), not a stand-in.
pub fn has_fuse() -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::metadata("/dev/fuse")
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == libc::makedev(10, 229))
}

/// Whether `test` can mount FUSE file systems (root and `/dev/fuse`); records a skip if not.
pub fn root_and_fuse(test: &str) -> bool {
    let reason = match (is_root(), has_fuse()) {
        (true, true) => return true,
        (false, _) => "needs root",
        (true, false) => "needs /dev/fuse",
    };
    skip(test, reason);
    false
}

/// A private tracefs mount for one test (never the host's own mount, which tests must not
/// change): unmounted and its directory removed on drop.
pub struct PrivateTracefs {
    path: PathBuf,
}

impl PrivateTracefs {
    /// Mounts tracefs in a fresh directory named after `test`; records a skip (or fails, where
    /// the run requires it) when tracefs cannot be mounted.
    pub fn mount(test: &str) -> Option<PrivateTracefs> {
        let path = std::env::temp_dir().join(format!("tracefs-{test}-{}", std::process::id()));
        if let Err(e) = fs::create_dir_all(&path) {
            skip(test, &format!("cannot create {}: {e}", path.display()));
            return None;
        }
        let target = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // SAFETY: valid NUL-terminated strings; mounting tracefs has no memory-safety impact.
        let rc = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                target.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            let _ = fs::remove_dir(&path);
            skip(test, &format!("cannot mount tracefs: {error}"));
            return None;
        }
        Some(PrivateTracefs { path })
    }
}

impl std::ops::Deref for PrivateTracefs {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTracefs {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: unmounting the mount this value made.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_logged_one_line_each() {
        let log = std::env::temp_dir().join(format!("test-prereq-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        // Only this test touches these variables in this process.
        std::env::set_var(SKIP_LOG_ENV, &log);
        std::env::remove_var(REQUIRE_ENV);
        skip("a", "needs x");
        note_skip("b", "needs y");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "SKIPPED a: needs x\nSKIPPED-CHECK b: needs y\n");
        std::env::set_var(REQUIRE_ENV, "1");
        let refused = std::panic::catch_unwind(|| skip("c", "needs z"));
        assert!(
            refused.is_err(),
            "a required run must fail instead of skipping"
        );
        note_skip("d", "kernel-dependent");
        std::env::remove_var(REQUIRE_ENV);
        std::env::remove_var(SKIP_LOG_ENV);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        std::fs::remove_file(&log).unwrap();
    }
}
