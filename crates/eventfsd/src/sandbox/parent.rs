//! The parent's side of the sandbox: it forwards termination signals to the confined child and
//! waits for it. It never serves anything and runs no thread.

use std::sync::atomic::{AtomicI32, Ordering};

use super::error::{check, SandboxError};

/// Pid of the child the signal handler forwards to (0: none yet).
static CHILD_PID: AtomicI32 = AtomicI32::new(0);

/// The signals that stop the daemon; the parent passes them on.
const TERMINATION: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// The confined daemon, seen from its parent.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    /// The signal mask from before [`super::enter`] blocked the termination signals.
    saved_mask: libc::sigset_t,
}

/// Blocks SIGTERM and SIGINT; returns the previous mask.
pub(super) fn block_termination_signals() -> Result<libc::sigset_t, SandboxError> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to our own sigsets.
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in TERMINATION {
            libc::sigaddset(&mut set, sig);
        }
    }
    // SAFETY: as above; no thread exists that could race on the mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if rc != 0 {
        return Err(SandboxError::Step {
            step: "block SIGTERM/SIGINT".into(),
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    Ok(old)
}

/// Puts back the mask [`block_termination_signals`] returned; pending signals arrive now.
pub(super) fn restore_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: a valid sigset obtained from pthread_sigmask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

impl Child {
    pub(super) fn new(pid: libc::pid_t, saved_mask: libc::sigset_t) -> Child {
        Child { pid, saved_mask }
    }

    /// The child's pid (in the parent's pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Forwards SIGTERM and SIGINT to the child until it exits, and returns its exit status as
    /// a shell reports it: the exit code, or 128 + the signal that killed it.
    pub fn wait(self) -> Result<u8, SandboxError> {
        CHILD_PID.store(self.pid, Ordering::Relaxed);
        for sig in TERMINATION {
            // SAFETY: sigaction is plain data; the handler only calls kill (async-signal-safe).
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: valid sigaction; the old action is not needed.
            check(
                unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) },
                || format!("install the handler of signal {sig}"),
            )?;
        }
        // Signals that came in since the fork are delivered (and forwarded) here.
        restore_signal_mask(&self.saved_mask);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child into a local status word.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINTR) {
                return Err(SandboxError::Step {
                    step: "wait for the sandboxed daemon".into(),
                    source: error,
                });
            }
        }
        CHILD_PID.store(0, Ordering::Relaxed);
        Ok(exit_code(status))
    }
}

/// A wait status as a shell's exit code (128 + signal for a killed process).
fn exit_code(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        if sig == libc::SIGSYS {
            log::error!(
                "the sandboxed daemon was killed by SIGSYS: it made a syscall outside the \
                 seccomp allow-list (--seccomp log reports which, in the kernel log)"
            );
        } else {
            log::error!("the sandboxed daemon was killed by signal {sig}");
        }
        128u8.saturating_add(sig as u8)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // Wait statuses as the kernel encodes them: exit code in bits 8..16, signal in 0..7.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGTERM), 128 + 15);
        assert_eq!(exit_code(libc::SIGSYS), 128 + 31);
    }
}
