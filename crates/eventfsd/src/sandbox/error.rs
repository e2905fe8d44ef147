//! The sandbox's errors, and the helpers that turn a failed system call into one.

use std::io;

/// Errors while building the sandbox, phrased for the daemon's user.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel (or a container around us) refuses unprivileged user namespaces.
    #[error(
        "sandbox: cannot create a user namespace as an unprivileged user ({0}); \
         allow them (sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces), \
         run as root, or pass --sandbox none"
    )]
    UserNamespace(io::Error),
    /// One step failed; `step` says which.
    #[error("sandbox: {step}: {source}")]
    Step {
        /// What was being done.
        step: String,
        /// The system's error.
        source: io::Error,
    },
}

/// A failed step as a [`SandboxError`], with the current `errno`.
pub(crate) fn last_error(step: impl Into<String>) -> SandboxError {
    SandboxError::Step {
        step: step.into(),
        source: io::Error::last_os_error(),
    }
}

/// `rc` (a libc return value) as a result: negative is the current `errno`.
pub(crate) fn check(rc: libc::c_int, step: impl FnOnce() -> String) -> Result<(), SandboxError> {
    if rc < 0 {
        Err(last_error(step()))
    } else {
        Ok(())
    }
}
