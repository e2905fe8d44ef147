//! What the vring thread watches besides the two queues while a connection lasts: the stop
//! request and the stats file's pacing.
//!
//! With both on the vring thread's epoll, the thread that serves connections only waits for
//! the current one to end (`VhostUserDaemon::wait`), and a connection needs no thread of its
//! own to notice a stop: one thread fewer per guest, about 30 KiB of host kernel memory.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::timerfd::TimerFd;

use super::conn_fd::{accepted_sockets, dup_fd};
use super::pool::lock;
use super::NUM_QUEUES;

/// Epoll data of the stop request ([`super::Shutdown`]'s eventfd), past the queues and the
/// exit event, which vhost-user-backend reserves.
pub(super) const STOP_EVENT: u16 = NUM_QUEUES as u16 + 1;
/// Epoll data of the stats file's pacing timer.
pub(super) const TICK_EVENT: u16 = NUM_QUEUES as u16 + 2;

/// A callback of [`super::ServeOptions`].
type Callback = Arc<dyn Fn() + Send + Sync>;

/// One connection's watch: how to interrupt it, and what to run on a stop or a tick.
pub(super) struct Watch {
    /// A dup of the connection socket vhost-user-backend keeps private, for shutdown(2).
    conn: Mutex<Option<OwnedFd>>,
    /// To find the connection again at stop time, had it not been found at the start.
    listen_fd: RawFd,
    before: HashSet<(RawFd, u64)>,
    on_shutdown: Option<Callback>,
    tick: Option<(TimerFd, Callback)>,
    stopped: AtomicBool,
}

impl Watch {
    /// A watch of the connection `conn` (accepted on `listen_fd` after `before` was taken),
    /// with a pacing timer if `tick` asks for one.
    pub(super) fn new(
        conn: Option<OwnedFd>,
        listen_fd: RawFd,
        before: HashSet<(RawFd, u64)>,
        on_shutdown: Option<Callback>,
        tick: Option<(Duration, Callback)>,
    ) -> io::Result<Watch> {
        let tick = match tick {
            Some((period, tick)) => {
                let mut timer = TimerFd::new()?;
                timer.reset(period, Some(period))?;
                Some((timer, tick))
            }
            None => None,
        };
        Ok(Watch {
            conn: Mutex::new(conn),
            listen_fd,
            before,
            on_shutdown,
            tick,
            stopped: AtomicBool::new(false),
        })
    }

    /// The descriptors to add to the vring thread's epoll: (fd, events, data). The stop
    /// eventfd stays readable once written, so it is watched once (EPOLLONESHOT).
    pub(super) fn events(&self, stop_fd: RawFd) -> Vec<(RawFd, EventSet, u64)> {
        let mut events = vec![(
            stop_fd,
            EventSet::IN | EventSet::ONE_SHOT,
            u64::from(STOP_EVENT),
        )];
        if let Some((timer, _)) = &self.tick {
            events.push((timer.as_raw_fd(), EventSet::IN, u64::from(TICK_EVENT)));
        }
        events
    }

    /// Handles [`STOP_EVENT`] or [`TICK_EVENT`] on the vring thread.
    pub(super) fn handle(&self, event: u16) {
        match event {
            STOP_EVENT => self.stop(),
            TICK_EVENT => {
                if let Some((timer, tick)) = &self.tick {
                    let mut expirations = 0u64;
                    // SAFETY: an 8-byte read into a local from our own timerfd, which epoll
                    // reported readable.
                    unsafe {
                        libc::read(timer.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8)
                    };
                    tick();
                }
            }
            _ => warn!("vhost-user: unexpected watch event {event}"),
        }
    }

    /// Wakes what holds a worker, then ends the connection: its request loop sees the socket
    /// shut down and returns, and with it `VhostUserDaemon::wait`.
    pub(super) fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(on_shutdown) = &self.on_shutdown {
            on_shutdown();
        }
        info!("vhost-user: shutdown requested, closing the connection");
        let conn = lock(&self.conn);
        match conn.as_ref() {
            Some(fd) => shut_down(fd.as_raw_fd()),
            None => {
                // Not told apart at the start: every socket accepted since is this connection's
                // (connections are served one at a time), so end them all.
                for (fd, _) in accepted_sockets(self.listen_fd).difference(&self.before) {
                    if let Some(dup) = dup_fd(*fd) {
                        shut_down(dup.as_raw_fd());
                    }
                }
            }
        }
    }

    /// Whether the connection ended because of [`Watch::stop`].
    pub(super) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Closes the dup of the connection socket once its request loop is over, so that the
    /// frontend sees it closed.
    pub(super) fn release_connection(&self) {
        lock(&self.conn).take();
    }
}

fn shut_down(fd: RawFd) {
    // SAFETY: shutdown(2) on a socket fd we own (a dup).
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
