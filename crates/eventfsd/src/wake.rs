//! What the main thread sleeps on while a transport serves: SIGINT/SIGTERM, the end of the
//! transport, or the next rewrite of the stats file.
//!
//! One descriptor (the read end of a self-pipe) carries all three, so the main thread needs no
//! helper thread and no polling period: an idle daemon, one per guest on a host, sleeps until
//! there is something to do. The signal handlers (signal-hook's) only record the signal and
//! write a byte, which is async-signal-safe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Why [`MainWait::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// SIGINT or SIGTERM arrived (the number).
    Signal(i32),
    /// A [`Poke`]: the transport ended, or asks to be looked at.
    Poked,
    /// The timeout passed without either.
    TimedOut,
}

/// The main thread's sleep: a self-pipe that termination signals and [`Poke`]s write to.
#[derive(Debug)]
pub struct MainWait {
    read: OwnedFd,
    write: Arc<OwnedFd>,
    /// The last termination signal not yet reported (0: none).
    signal: Arc<AtomicUsize>,
}

/// Keeps the signals writing to an eventfd ([`MainWait::signals_also_write`]) until dropped:
/// drop it before the eventfd is closed, so that a late signal never writes to a reused
/// descriptor.
#[derive(Debug)]
pub struct SignalForward(Vec<signal_hook::SigId>);

impl Drop for SignalForward {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The termination signal a [`MainWait`] recorded, readable from any thread.
#[derive(Debug, Clone)]
pub struct SignalSeen(Arc<AtomicUsize>);

impl SignalSeen {
    /// The signal that came since the last wait or take, if any.
    pub fn take(&self) -> Option<i32> {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => None,
            sig => Some(sig as i32),
        }
    }
}

/// Wakes a [`MainWait`] from any thread.
#[derive(Debug, Clone)]
pub struct Poke(Arc<OwnedFd>);

impl Poke {
    /// Wakes the main thread (a full pipe already will: the error is not worth reporting).
    pub fn poke(&self) {
        // SAFETY: one byte from a valid buffer to our own pipe.
        unsafe { libc::write(self.0.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
}

impl MainWait {
    /// Makes the pipe and registers SIGINT and SIGTERM on it. Call it before the sandbox forks,
    /// so that the confined child has its handlers from birth (and the parent replaces them
    /// with its own forwarding).
    pub fn new() -> io::Result<MainWait> {
        let mut fds = [0; 2];
        // SAFETY: a valid array for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both were just returned by pipe2 and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wait = MainWait {
            read,
            write: Arc::new(write),
            signal: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            // The flag first: the byte may wake the main thread before the handler returns.
            signal_hook::flag::register_usize(sig, wait.signal.clone(), sig as usize)?;
            signal_hook::low_level::pipe::register_raw(sig, wait.write.as_raw_fd())?;
        }
        Ok(wait)
    }

    /// From now on, until the returned guard is dropped, SIGINT and SIGTERM also write to the
    /// eventfd `fd` (a transport's own stop request), which must stay open meanwhile. A signal
    /// that came before is the caller's to pass on ([`MainWait::seen`]).
    pub fn signals_also_write(&self, fd: RawFd) -> io::Result<SignalForward> {
        let mut ids = Vec::new();
        for sig in [SIGINT, SIGTERM] {
            let write_one = move || {
                let one = 1u64;
                // SAFETY: an 8-byte write from a local to an eventfd: async-signal-safe.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            };
            // SAFETY: the action only calls write(2), which is async-signal-safe.
            ids.push(unsafe { signal_hook::low_level::register(sig, write_one) }?);
        }
        Ok(SignalForward(ids))
    }

    /// Which termination signal came, for another thread to tell.
    pub fn seen(&self) -> SignalSeen {
        SignalSeen(self.signal.clone())
    }

    /// A handle that wakes this wait from another thread.
    pub fn poke(&self) -> Poke {
        Poke(self.write.clone())
    }

    /// Sleeps until a termination signal, a [`Poke`] or `timeout` (`None`: no timeout).
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Woken> {
        let millis = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        Ok(match self.sleep(None, millis)? {
            (Some(sig), _) => Woken::Signal(sig),
            (None, [true, _]) => Woken::Poked,
            (None, _) => Woken::TimedOut,
        })
    }

    /// Sleeps until `fd` is readable (`Ok(None)`; a listening socket: a connection is pending)
    /// or a termination signal comes (`Ok(Some(signal))`). Pokes do not end this wait.
    pub fn wait_readable(&self, fd: RawFd) -> io::Result<Option<i32>> {
        loop {
            match self.sleep(Some(fd), -1)? {
                (Some(sig), _) => return Ok(Some(sig)),
                (None, [_, true]) => return Ok(None),
                (None, _) => {}
            }
        }
    }

    /// One poll of the pipe (and `also`) for `millis` (-1: no timeout): the termination signal
    /// that came, if any, and which of the two descriptors were readable. The pipe is drained.
    fn sleep(&self, also: Option<RawFd>, millis: i32) -> io::Result<(Option<i32>, [bool; 2])> {
        let mut polls = [self.read.as_raw_fd(), also.unwrap_or(-1)].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        let count = if also.is_some() { 2 } else { 1 };
        // SAFETY: `count` valid pollfds (a negative fd is ignored by poll anyway).
        if unsafe { libc::poll(polls.as_mut_ptr(), count, millis) } < 0 {
            let error = io::Error::last_os_error();
            // A signal interrupts poll before its handler's byte is read: look at the flag.
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        self.drain();
        let signal = match self.signal.swap(0, Ordering::Relaxed) {
            0 => None,
            sig => Some(sig as i32),
        };
        Ok((signal, polls.map(|p| p.revents != 0)))
    }

    /// Empties the pipe, so that the next wait sleeps again.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer of the given length; the pipe is non-blocking.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
            == buf.len() as isize
        {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pokes_wake_and_timeouts_pass() {
        let wait = MainWait::new().unwrap();
        assert_eq!(
            wait.wait(Some(Duration::from_millis(1))).unwrap(),
            Woken::TimedOut
        );
        let poke = wait.poke();
        std::thread::spawn(move || poke.poke()).join().unwrap();
        assert_eq!(wait.wait(None).unwrap(), Woken::Poked);
        // Several pokes before a wait wake it once, and the pipe is empty after it.
        wait.poke().poke();
        wait.poke().poke();
        assert_eq!(wait.wait(None).unwrap(), Woken::Poked);
        assert_eq!(wait.wait(Some(Duration::ZERO)).unwrap(), Woken::TimedOut);
    }

    #[test]
    fn readable_descriptor_ends_the_wait_and_pokes_do_not() {
        let wait = MainWait::new().unwrap();
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let poke = wait.poke();
        let writer = std::thread::spawn(move || {
            poke.poke();
            std::thread::sleep(Duration::from_millis(50));
            std::io::Write::write_all(&mut ours, b"x").unwrap();
        });
        assert_eq!(wait.wait_readable(theirs.as_raw_fd()).unwrap(), None);
        // Had the poke ended the wait, the byte (50 ms later) would not be there yet.
        theirs.set_nonblocking(true).unwrap();
        let mut byte = [0u8];
        assert_eq!(std::io::Read::read(&mut &theirs, &mut byte).unwrap(), 1);
        writer.join().unwrap();
    }
}
