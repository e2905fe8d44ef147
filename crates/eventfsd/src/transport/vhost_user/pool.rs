//! The request worker pool: a blocking read never stalls the other requests.

use std::io::{self};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::warn;

pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Called on the last worker as it leaves for idleness: the guest has sent no request for
/// [`IDLE_EXIT`].
pub(super) type OnIdle = Box<dyn Fn() + Send + Sync + 'static>;

/// How long a worker waits for a job before it leaves: a guest that stopped reading holds no
/// pool thread again after this (the next READ starts one).
const IDLE_EXIT: Duration = Duration::from_secs(30);

/// Pool of request threads fed through one channel. It starts with no worker and starts one
/// when a job finds every worker busy (up to `max`), so that a blocking read never stalls the
/// other requests; a worker left without a job for [`IDLE_EXIT`] leaves, so that an idle
/// guest holds no thread here.
pub(super) struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
}

/// What the workers share with the pool.
struct Shared {
    rx: Mutex<mpsc::Receiver<Job>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    max: usize,
    /// [`IDLE_EXIT`], shorter in tests.
    idle_exit: Duration,
    /// Run when the last worker leaves for idleness.
    on_idle: Option<OnIdle>,
    /// The workers counted, to grow on demand and to wait for them with a timeout.
    crew: Mutex<Crew>,
    /// Notified when a worker exits.
    exited: Condvar,
}

/// The pool's workers, counted.
#[derive(Default)]
struct Crew {
    /// Workers running.
    live: usize,
    /// Workers waiting for a job that no submitted job has claimed yet.
    idle: usize,
    /// Jobs submitted that no idle worker was there for: the next workers to come back take them.
    backlog: usize,
}

/// Decrements the live count when a worker exits, even by unwinding.
struct LiveGuard {
    shared: Arc<Shared>,
    /// The worker leaves for idleness (not for shutdown or a panic).
    left_idle: bool,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut crew = lock(&self.shared.crew);
        crew.live -= 1;
        // An idle worker that leaves (shutdown) is no longer there to take a job.
        crew.idle = crew.idle.min(crew.live);
        // Decided under the lock that counts: exactly one worker is the last to leave.
        let pool_idle = self.left_idle && crew.live == 0;
        self.shared.exited.notify_all();
        drop(crew);
        if let (true, Some(on_idle)) = (pool_idle, &self.shared.on_idle) {
            on_idle();
        }
    }
}

impl Shared {
    /// Starts a worker; `crew` is the locked count.
    fn start_worker(self: &Arc<Self>, crew: &mut Crew) -> io::Result<()> {
        let shared = self.clone();
        crew.live += 1;
        let spawned = thread::Builder::new()
            .name(format!("vfs-worker-{}", crew.live - 1))
            .spawn(move || {
                let mut guard = LiveGuard {
                    shared: shared.clone(),
                    left_idle: false,
                };
                guard.left_idle = shared.work();
            });
        match spawned {
            Ok(handle) => {
                let mut handles = lock(&self.handles);
                // Workers that left for idleness are joined by nobody: forget them.
                handles.retain(|h| !h.is_finished());
                handles.push(handle);
                Ok(())
            }
            Err(e) => {
                crew.live -= 1;
                Err(e)
            }
        }
    }

    /// Runs jobs until the pool shuts down (false) or no job came for the idle period (true).
    fn work(self: &Arc<Self>) -> bool {
        loop {
            {
                let mut crew = lock(&self.crew);
                if crew.backlog > 0 {
                    crew.backlog -= 1;
                } else {
                    crew.idle += 1;
                }
            }
            // Idle workers queue for the receiver lock, so the time spent queueing counts too:
            // every worker idle since the last job leaves [`IDLE_EXIT`] after it, not one
            // worker per period.
            let mut leave_at = Instant::now() + self.idle_exit;
            let job = loop {
                // Hold the receiver lock only while waiting, not while working; the patience
                // left is measured once it is held.
                let rx = lock(&self.rx);
                let received = rx.recv_timeout(leave_at.saturating_duration_since(Instant::now()));
                match received {
                    Ok(job) => break Some(job),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break None, // pool shut down
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut crew = lock(&self.crew);
                        // `idle` counts waiting workers less the jobs on their way to them: if
                        // it is not zero, one waiting worker may leave.
                        if crew.idle > 0 {
                            crew.idle -= 1;
                            return true;
                        }
                        // A job is on its way to this worker: wait for it.
                        leave_at = Instant::now() + self.idle_exit;
                    }
                }
            };
            let Some(job) = job else {
                return false;
            };
            job();
        }
    }
}

impl WorkerPool {
    /// A pool of up to `max` workers; `on_idle` runs when the last one leaves for idleness.
    pub(super) fn new(max: usize, on_idle: Option<OnIdle>) -> io::Result<Self> {
        Self::with_idle_exit(max, IDLE_EXIT, on_idle)
    }

    fn with_idle_exit(
        max: usize,
        idle_exit: Duration,
        on_idle: Option<OnIdle>,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            rx: Mutex::new(rx),
            handles: Mutex::new(Vec::new()),
            max: max.max(1),
            idle_exit,
            on_idle,
            crew: Mutex::new(Crew::default()),
            exited: Condvar::new(),
        });
        Ok(WorkerPool {
            tx: Mutex::new(Some(tx)),
            shared,
        })
    }

    /// Queue a job, starting a worker if every one is busy; gives it back if the pool is shut
    /// down.
    pub(super) fn submit(&self, job: Job) -> Result<(), Job> {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else {
            return Err(job);
        };
        {
            let mut crew = lock(&self.shared.crew);
            if crew.idle > 0 {
                crew.idle -= 1;
            } else {
                crew.backlog += 1;
                if crew.live < self.shared.max {
                    if let Err(e) = self.shared.start_worker(&mut crew) {
                        warn!("vhost-user: cannot start another request worker: {e}");
                    }
                }
            }
        }
        tx.send(job).map_err(|e| e.0)
    }

    /// Stop accepting jobs, let queued ones finish, and join the workers if they all exit
    /// within `timeout`; otherwise detach them (their completions stay memory-safe because
    /// each job owns its guest-memory snapshot and vring handle).
    pub(super) fn shutdown(&self, timeout: Duration) -> bool {
        lock(&self.tx).take();
        let deadline = Instant::now() + timeout;
        let mut live = lock(&self.shared.crew);
        while live.live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            live = self
                .shared
                .exited
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stuck = live.live;
        drop(live);
        let handles = std::mem::take(&mut *lock(&self.shared.handles));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn live(pool: &WorkerPool) -> usize {
        lock(&pool.shared.crew).live
    }

    /// A job that waits for `release`, as a read of an empty `trace_pipe` does.
    fn blocked(release: &Arc<Mutex<mpsc::Receiver<()>>>) -> Job {
        let release = release.clone();
        Box::new(move || {
            let _ = lock(&release).recv();
        })
    }

    /// Waits until every worker is back waiting for a job.
    fn settle(pool: &WorkerPool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while {
            let crew = lock(&pool.shared.crew);
            crew.idle < crew.live
        } {
            assert!(Instant::now() < deadline, "workers never came back");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn grows_only_when_every_worker_is_busy() {
        let pool = WorkerPool::new(3, None).unwrap();
        assert_eq!(live(&pool), 0, "an idle pool runs no thread");
        // Jobs that find a worker waiting never start another.
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..20 {
            let done = done_tx.clone();
            assert!(pool
                .submit(Box::new(move || done.send(()).unwrap()))
                .is_ok());
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            settle(&pool);
        }
        assert_eq!(live(&pool), 1);
        // Two blocked reads: a third job still runs, on a third worker.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            assert!(pool.submit(blocked(&release_rx)).is_ok());
        }
        let done = done_tx.clone();
        assert!(pool
            .submit(Box::new(move || done.send(()).unwrap()))
            .is_ok());
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a job waited behind blocked reads");
        assert_eq!(live(&pool), 3);
        // At the limit, a job waits for a worker instead of starting a fourth.
        assert!(pool.submit(blocked(&release_rx)).is_ok());
        let done = done_tx.clone();
        assert!(pool
            .submit(Box::new(move || done.send(()).unwrap()))
            .is_ok());
        assert_eq!(live(&pool), 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(pool.shutdown(Duration::from_secs(10)));
        assert_eq!(live(&pool), 0);
    }

    #[test]
    fn idle_workers_leave_and_come_back() {
        let pool = WorkerPool::with_idle_exit(3, Duration::from_millis(50), None).unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..3 {
            assert!(pool.submit(blocked(&release_rx)).is_ok());
        }
        assert_eq!(live(&pool), 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while live(&pool) > 0 {
            assert!(Instant::now() < deadline, "idle workers stayed");
            thread::sleep(Duration::from_millis(10));
        }
        // Jobs submitted while workers leave are all run, by a worker that stayed or a new one.
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..200 {
            let done = done_tx.clone();
            assert!(pool
                .submit(Box::new(move || done.send(()).unwrap()))
                .is_ok());
            if i % 20 == 0 {
                thread::sleep(Duration::from_millis(60));
            }
        }
        for _ in 0..200 {
            done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a job was left without a worker");
        }
        assert!(pool.shutdown(Duration::from_secs(10)));
    }

    #[test]
    fn idle_workers_leave_together() {
        let idle_exit = Duration::from_secs(1);
        let idled = Arc::new(AtomicUsize::new(0));
        let counter = idled.clone();
        let on_idle: OnIdle = Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let pool = WorkerPool::with_idle_exit(3, idle_exit, Some(on_idle)).unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..3 {
            assert!(pool.submit(blocked(&release_rx)).is_ok());
        }
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        let released = Instant::now();
        while live(&pool) > 0 {
            thread::sleep(Duration::from_millis(10));
        }
        // One after the other, the three would need three periods (each waits a whole one
        // once it holds the receiver).
        let took = released.elapsed();
        assert!(
            took < idle_exit * 5 / 2,
            "idle workers left one per period: {took:?}"
        );
        assert!(pool.shutdown(Duration::from_secs(10)));
    }
}
