//! The request worker pool: a blocking read never stalls the other requests.

use std::io::{self};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::warn;

pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Fixed-size pool of request threads fed through one channel.
pub(super) struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,

    /// Number of worker threads still running, to wait for them with a timeout.
    live: Arc<(Mutex<usize>, Condvar)>,
}

/// Decrements the live count when a worker exits, even by unwinding.
pub(super) struct LiveGuard(Arc<(Mutex<usize>, Condvar)>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let (count, cvar) = &*self.0;
        *lock(count) -= 1;
        cvar.notify_all();
    }
}

impl WorkerPool {
    pub(super) fn new(size: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let live = Arc::new((Mutex::new(0usize), Condvar::new()));
        let pool = WorkerPool {
            tx: Mutex::new(Some(tx)),
            handles: Mutex::new(Vec::new()),
            live: live.clone(),
        };
        for i in 0..size.max(1) {
            let rx = rx.clone();
            *lock(&live.0) += 1;
            let guard = LiveGuard(live.clone());
            let spawned = thread::Builder::new()
                .name(format!("vfs-worker-{i}"))
                .spawn(move || {
                    let _guard = guard;
                    loop {
                        // Hold the receiver lock only while waiting, not while working.
                        let job = lock(&rx).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break, // sender dropped: pool shut down
                        }
                    }
                });
            match spawned {
                Ok(handle) => lock(&pool.handles).push(handle),
                Err(e) => {
                    pool.shutdown(Duration::from_secs(1));
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Queue a job; gives it back if the pool is shut down.
    pub(super) fn submit(&self, job: Job) -> Result<(), Job> {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Stop accepting jobs, let queued ones finish, and join the workers if they all exit
    /// within `timeout`; otherwise detach them (their completions stay memory-safe because
    /// each job owns its guest-memory snapshot and vring handle).
    pub(super) fn shutdown(&self, timeout: Duration) -> bool {
        lock(&self.tx).take();
        let deadline = Instant::now() + timeout;
        let (count, cvar) = &*self.live;
        let mut live = lock(count);
        while *live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            live = cvar
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stuck = *live;
        drop(live);
        let handles = std::mem::take(&mut *lock(&self.handles));
        if stuck == 0 {
            for h in handles {
                let _ = h.join();
            }
            true
        } else {
            warn!(
                "vhost-user: {stuck} request worker(s) still busy in the filesystem {timeout:?} after disconnect; detaching them"
            );
            false
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the transport down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
