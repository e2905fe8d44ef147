//! The request worker pool: a blocking read never stalls the other requests.

use std::io::{self};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::warn;

pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Pool of request threads fed through one channel. It starts with one worker and starts
/// another when a job finds every worker busy (up to `max`), so that a blocking read never
/// stalls the other requests while an idle guest costs one thread. Workers stay once started.
pub(super) struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    max: usize,
    /// Live workers and who takes the next job, to grow on demand and to wait for the workers
    /// with a timeout.
    live: Arc<(Mutex<Crew>, Condvar)>,
}

/// The pool's workers, counted.
#[derive(Default)]
pub(super) struct Crew {
    /// Workers running.
    live: usize,
    /// Workers waiting for a job that no submitted job has claimed yet.
    idle: usize,
    /// Jobs submitted that no idle worker was there for: the next workers to come back take them.
    backlog: usize,
}

/// Decrements the live count when a worker exits, even by unwinding.
pub(super) struct LiveGuard(Arc<(Mutex<Crew>, Condvar)>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let (crew, cvar) = &*self.0;
        let mut crew = lock(crew);
        crew.live -= 1;
        // An idle worker that leaves (shutdown) is no longer there to take a job.
        crew.idle = crew.idle.min(crew.live);
        cvar.notify_all();
    }
}

impl WorkerPool {
    pub(super) fn new(max: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = WorkerPool {
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(Mutex::new(rx)),
            handles: Mutex::new(Vec::new()),
            max: max.max(1),
            live: Arc::new((Mutex::new(Crew::default()), Condvar::new())),
        };
        pool.start_worker(&mut lock(&pool.live.0))?;
        Ok(pool)
    }

    /// Starts a worker; `crew` is the locked count.
    fn start_worker(&self, crew: &mut Crew) -> io::Result<()> {
        let rx = self.rx.clone();
        let live = self.live.clone();
        crew.live += 1;
        let spawned = thread::Builder::new()
            .name(format!("vfs-worker-{}", crew.live - 1))
            .spawn(move || {
                let _guard = LiveGuard(live.clone());
                loop {
                    {
                        let mut crew = lock(&live.0);
                        if crew.backlog > 0 {
                            crew.backlog -= 1;
                        } else {
                            crew.idle += 1;
                        }
                    }
                    // Hold the receiver lock only while waiting, not while working.
                    let job = lock(&rx).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break, // sender dropped: pool shut down
                    }
                }
            });
        match spawned {
            Ok(handle) => {
                lock(&self.handles).push(handle);
                Ok(())
            }
            Err(e) => {
                crew.live -= 1;
                Err(e)
            }
        }
    }

    /// Queue a job; gives it back if the pool is shut down.
    pub(super) fn submit(&self, job: Job) -> Result<(), Job> {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else {
            return Err(job);
        };
        {
            let mut crew = lock(&self.live.0);
            if crew.idle > 0 {
                crew.idle -= 1;
            } else {
                crew.backlog += 1;
                if crew.live < self.max {
                    if let Err(e) = self.start_worker(&mut crew) {
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
        let (crew, cvar) = &*self.live;
        let mut live = lock(crew);
        while live.live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            live = cvar
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stuck = live.live;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn live(pool: &WorkerPool) -> usize {
        lock(&pool.live.0).live
    }

    /// Waits until the pool's workers are all back waiting for a job.
    fn settle(pool: &WorkerPool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while {
            let crew = lock(&pool.live.0);
            crew.idle < crew.live
        } {
            assert!(Instant::now() < deadline, "workers never came back");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn grows_only_when_every_worker_is_busy() {
        let pool = WorkerPool::new(3).unwrap();
        assert_eq!(live(&pool), 1, "an idle pool runs one worker");
        // Jobs that find the worker waiting never start another.
        for _ in 0..20 {
            settle(&pool);
            let (done_tx, done_rx) = mpsc::channel();
            assert!(pool
                .submit(Box::new(move || done_tx.send(()).unwrap()))
                .is_ok());
            done_rx.recv().unwrap();
        }
        assert_eq!(live(&pool), 1);
        // Two blocked jobs (trace_pipe reads): a third job still runs, on a third worker.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            let release = release_rx.clone();
            assert!(pool
                .submit(Box::new(move || {
                    let _ = lock(&release).recv();
                }))
                .is_ok());
        }
        let (done_tx, done_rx) = mpsc::channel();
        assert!(pool
            .submit(Box::new(move || done_tx.send(()).unwrap()))
            .is_ok());
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a job waited behind blocked ones");
        assert_eq!(live(&pool), 3);
        // At the limit, a job waits for a worker instead of starting a fourth.
        let (late_tx, late_rx) = mpsc::channel();
        let release = release_rx.clone();
        assert!(pool
            .submit(Box::new(move || {
                let _ = lock(&release).recv();
            }))
            .is_ok());
        assert!(pool
            .submit(Box::new(move || late_tx.send(()).unwrap()))
            .is_ok());
        assert_eq!(live(&pool), 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        late_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(pool.shutdown(Duration::from_secs(10)));
        assert_eq!(live(&pool), 0);
    }
}
