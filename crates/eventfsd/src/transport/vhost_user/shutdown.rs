//! Stopping [`super::serve`] from any thread: an eventfd that, once written, every poller sees
//! readable.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC, EFD_NONBLOCK};

/// A cloneable stop request for [`serve`], safe to trigger from any thread.
///
/// It is an eventfd that is written once and never read, so every poller sees it readable
/// from then on. [`Shutdown::as_raw_fd`] exposes it for an async-signal-safe `write(2)`.
#[derive(Clone)]
pub struct Shutdown {
    efd: Arc<EventFd>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("fd", &self.efd.as_raw_fd())
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// Create an untriggered shutdown handle.
    pub fn new() -> io::Result<Self> {
        Ok(Shutdown {
            efd: Arc::new(EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC)?),
        })
    }

    /// Ask [`serve`] to stop: it returns after closing the current connection (if any).
    pub fn trigger(&self) {
        // The counter only saturates after 2^64-2 writes; an EAGAIN then still leaves it readable.
        let _ = self.efd.write(1);
    }

    /// Whether [`Shutdown::trigger`] (or a raw write to the fd) has happened.
    pub fn is_triggered(&self) -> bool {
        matches!(poll_fds(&[self.efd.as_raw_fd()], 0), Ok(r) if r[0])
    }

    /// The eventfd; writing an 8-byte non-zero value to it triggers the shutdown. This is
    /// async-signal-safe, so a signal handler may do it.
    pub fn as_raw_fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }
}

/// poll(2) on `fds` for readability (EINTR retried); returns which ones are ready.
pub(super) fn poll_fds(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if ret >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
