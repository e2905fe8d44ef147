//! The vhost-user backend of one connection: the two virtio-fs queues, the EVENT_IDX loop,
//! and handing every chain back.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::{MetricsHook, Server};
use fuse_backend_rs::transport::{Reader, VirtioFsWriter, Writer};
use log::{debug, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddressSpace, GuestMemory, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::guest_ram;
use super::pool::{lock, Job, OnIdle, WorkerPool};
use super::vring::FsVring;
use super::watch::{Watch, STOP_EVENT, TICK_EVENT};
use super::{Chain, GuestMem, Metrics, HIPRIO_QUEUE, MAX_QUEUE_SIZE, NUM_QUEUES, REQUEST_QUEUE};
use crate::stats::TransportStats;
use crate::transport::reply::{self, IN_HEADER_LEN, OUT_HEADER_LEN};

/// vhost-user-backend implementation serving one vhost-user connection of virtio-fs.
///
/// Uses interior mutability ([`VhostUserBackend`], not the `Mut` variant) so the vring worker
/// thread and the request pool can use it concurrently. Create one per connection; the
/// [`Server`] (and so the filesystem) is shared between connections.
pub struct VhostUserFsBackend<F: FileSystem + Sync> {
    server: Arc<Server<F>>,
    stats: Arc<TransportStats>,
    metrics: Option<Metrics>,
    event_idx: AtomicBool,
    /// Shared with the pool's idle hook, which lets go of the guest RAM mappings.
    mem: Arc<Mutex<Option<GuestMem>>>,
    mem_regions: AtomicUsize,
    features_acked: AtomicBool,
    pool: WorkerPool,
    /// Read ends of the exit eventfds handed to vhost-user-backend, which registers them in
    /// its epoll with `into_raw_fd` and never closes them; closed in `Drop`.
    leaked_exit_fds: Mutex<Vec<RawFd>>,
    empty_kick_warned: AtomicBool,
    chains_seen: AtomicU64,
    /// The stop request and the stats pacing, watched on the vring thread.
    watch: Mutex<Option<Arc<Watch>>>,
}

impl<F: FileSystem + Send + Sync + 'static> VhostUserFsBackend<F> {
    /// Create a backend with `thread_pool_size` request workers (at least one).
    pub fn new(
        server: Arc<Server<F>>,
        thread_pool_size: usize,
        stats: Arc<TransportStats>,
        metrics: Option<Metrics>,
    ) -> io::Result<Self> {
        let mem: Arc<Mutex<Option<GuestMem>>> = Arc::new(Mutex::new(None));
        let idle_mem = mem.clone();
        // No request for the pool's idle period: the guest RAM replies were written into need
        // not stay mapped (nor their page tables allocated) while the guest sits idle, and the
        // heap the requests freed (FORGETs after a walk) can go back to the kernel.
        let on_idle: OnIdle = Box::new(move || {
            crate::heap::give_back_free_pages();
            let Some(mem) = lock(&idle_mem).clone() else {
                return;
            };
            let released = guest_ram::release_mappings(&mem.memory());
            debug!(
                "vhost-user: guest idle: released the mappings of {released} bytes of guest RAM"
            );
        });
        Ok(VhostUserFsBackend {
            server,
            stats,
            metrics,
            event_idx: AtomicBool::new(false),
            mem,
            mem_regions: AtomicUsize::new(0),
            features_acked: AtomicBool::new(false),
            pool: WorkerPool::new(thread_pool_size, Some(on_idle))?,
            leaked_exit_fds: Mutex::new(Vec::new()),
            empty_kick_warned: AtomicBool::new(false),
            chains_seen: AtomicU64::new(0),
            watch: Mutex::new(None),
        })
    }

    /// Whether the frontend has acknowledged the virtio features.
    pub fn features_acked(&self) -> bool {
        self.features_acked.load(Ordering::Acquire)
    }

    /// Number of guest memory regions currently mapped.
    pub fn memory_regions(&self) -> usize {
        self.mem_regions.load(Ordering::Acquire)
    }

    /// What the vring thread handles besides the queues ([`STOP_EVENT`], [`TICK_EVENT`]).
    pub(super) fn set_watch(&self, watch: Arc<Watch>) {
        *lock(&self.watch) = Some(watch);
    }

    /// Stop the request workers (see [`ServeOptions::drain_timeout`]); true if all were joined.
    pub fn shutdown_workers(&self, timeout: Duration) -> bool {
        self.pool.shutdown(timeout)
    }

    /// Pop every available chain of `vring` and pass it to `sink`, following the EVENT_IDX
    /// protocol. Never returns early with notifications disabled.
    fn drain_queue(&self, queue: u16, vring: &FsVring, mut sink: impl FnMut(Chain, u64)) {
        let Some(mem) = lock(&self.mem).clone() else {
            warn!("vhost-user: kick on queue {queue} before any guest memory was mapped");
            return;
        };
        let event_idx = self.event_idx.load(Ordering::Acquire);
        loop {
            let (chains, generation, avail_error) = {
                let mut state = vring.get_mut();
                if event_idx {
                    if let Err(e) = state.disable_notification() {
                        warn!("vhost-user: queue {queue}: cannot disable notifications: {e}");
                    }
                }
                let generation = vring.generation();
                let snapshot = mem.memory().into_inner();
                match state.get_queue_mut().iter(snapshot) {
                    Ok(iter) => (iter.collect::<Vec<_>>(), generation, false),
                    Err(e) => {
                        warn!("vhost-user: queue {queue}: cannot read the available ring: {e}");
                        (Vec::new(), generation, true)
                    }
                }
            };
            let popped = chains.len();
            if popped == 0 && !avail_error {
                self.note_empty_kick(queue);
            }
            self.chains_seen.fetch_add(popped as u64, Ordering::Relaxed);
            for chain in chains {
                sink(chain, generation);
            }
            if !event_idx {
                break;
            }
            match vring.enable_notification() {
                // More chains arrived while notifications were off: go round again, unless
                // this round made no progress (a broken avail ring would loop forever).
                Ok(true) if popped > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    warn!("vhost-user: queue {queue}: cannot re-enable notifications: {e}");
                    break;
                }
            }
        }
    }

    /// A kick that finds an empty ring before any chain was ever seen is what a guest whose
    /// RAM is mapped privately (memfd/file backend without share=on) looks like from here:
    /// its writes never reach the pages we map.
    fn note_empty_kick(&self, queue: u16) {
        if self.chains_seen.load(Ordering::Relaxed) == 0
            && !self.empty_kick_warned.swap(true, Ordering::Relaxed)
        {
            warn!(
                "vhost-user: queue {queue} was kicked but its available ring is empty; if the guest hangs on mount, its memory is probably not shared (QEMU memory backend needs share=on)"
            );
        }
    }
}

impl<F: FileSystem + Sync> Drop for VhostUserFsBackend<F> {
    fn drop(&mut self) {
        // Runs after vhost-user-backend dropped every VringEpollHandler (they hold clones of
        // the Arc'd backend), so the epoll instances using these fds are gone.
        for fd in lock(&self.leaked_exit_fds).drain(..) {
            // SAFETY: the fd was leaked by vhost-user-backend (into_raw_fd) and is owned by
            // nobody else; closing it exactly once here.
            unsafe { libc::close(fd) };
        }
    }
}

impl<F: FileSystem + Send + Sync + 'static> VhostUserBackend for VhostUserFsBackend<F> {
    type Bitmap = ();
    type Vring = FsVring;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, _features: u64) {
        self.features_acked.store(true, Ordering::Release);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // Never CONFIG (QEMU 7.1-8.0 crash on it) and never packed rings (split only).
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        self.event_idx.store(false, Ordering::Release);
        self.features_acked.store(false, Ordering::Release);
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Release);
    }

    fn update_memory(&self, mem: GuestMem) -> io::Result<()> {
        let regions = mem.memory().num_regions();
        self.mem_regions.store(regions, Ordering::Release);
        if regions == 0 {
            warn!(
                "vhost-user: frontend mapped no guest memory (QEMU memory backend needs share=on)"
            );
        } else {
            debug!("vhost-user: {regions} guest memory region(s) mapped");
        }
        *lock(&self.mem) = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without an exit event, dropping the VhostUserDaemon would join a vring worker that
        // never returns. A new pair per call: each connection gets fresh epoll handlers.
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok((consumer, notifier)) => {
                lock(&self.leaked_exit_fds).push(consumer.as_raw_fd());
                Some((consumer, notifier))
            }
            Err(e) => {
                warn!("vhost-user: cannot create vring worker exit event: {e}");
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[FsVring],
        _thread_id: usize,
    ) -> io::Result<()> {
        // Errors are logged, never returned: an Err here ends the vring worker thread for the
        // rest of the connection and the guest hangs.
        if evset != EventSet::IN {
            warn!("vhost-user: unexpected event set {evset:?} for event {device_event}");
            return Ok(());
        }
        if let STOP_EVENT | TICK_EVENT = device_event {
            if let Some(watch) = lock(&self.watch).clone() {
                watch.handle(device_event);
            }
            return Ok(());
        }
        let Some(vring) = vrings.get(device_event as usize) else {
            warn!("vhost-user: event for unknown queue {device_event}");
            return Ok(());
        };
        match device_event {
            HIPRIO_QUEUE => {
                // FORGETs are quick and must not queue behind blocked reads: inline.
                self.drain_queue(device_event, vring, |chain, generation| {
                    let head = chain.head_index();
                    let len =
                        process_chain(&self.server, &chain, &self.stats, self.metrics.as_deref());
                    complete(vring, head, len, generation, &self.stats);
                });
            }
            REQUEST_QUEUE => {
                // Every request goes to the pool, so that the queue keeps moving while one
                // runs. (Running all but READs inline here, as virtiofsd does without a pool,
                // made the host source's warm `find` about 40% slower in the guest benchmark:
                // 51 against 35 µs per entry over five passes.)
                self.drain_queue(device_event, vring, |chain, generation| {
                    let server = self.server.clone();
                    let stats = self.stats.clone();
                    let metrics = self.metrics.clone();
                    let vring2 = vring.clone();
                    let job: Job = Box::new(move || {
                        let head = chain.head_index();
                        let len = process_chain(&server, &chain, &stats, metrics.as_deref());
                        complete(&vring2, head, len, generation, &stats);
                    });
                    if let Err(job) = self.pool.submit(job) {
                        // Pool already stopped (disconnect in progress): still answer.
                        job();
                    }
                });
            }
            _ => warn!("vhost-user: event for unexpected queue {device_event}"),
        }
        Ok(())
    }
}

/// Hand a chain back: add_used + notify when the EVENT_IDX rules (or their absence) say so.
pub(super) fn complete(
    vring: &FsVring,
    head: u16,
    len: u32,
    generation: u64,
    stats: &TransportStats,
) {
    let mut state = vring.get_mut();
    if vring.generation() != generation || !state.get_queue().ready() {
        stats.stale_completions.fetch_add(1, Ordering::Relaxed);
        debug!("vhost-user: dropping completion of chain {head}: ring was stopped or reset");
        return;
    }
    if let Err(e) = state.add_used(head, len) {
        warn!("vhost-user: cannot return chain {head} (len {len}) to the used ring: {e}");
        return;
    }
    stats.chains_processed.fetch_add(1, Ordering::Relaxed);
    // When unsure, notify: a spurious interrupt is harmless, a missing one hangs the guest.
    let notify = state.needs_notification().unwrap_or_else(|e| {
        warn!("vhost-user: cannot read used_event: {e}");
        true
    });
    if notify {
        if let Err(e) = state.signal_used_queue() {
            warn!("vhost-user: cannot signal the guest: {e}");
        }
    }
}

/// Run one FUSE request and return the used length to report for the chain.
pub(super) fn process_chain<F: FileSystem + Sync>(
    server: &Server<F>,
    chain: &Chain,
    stats: &TransportStats,
    metrics: Option<&(dyn MetricsHook + Send + Sync)>,
) -> u32 {
    let mem: &GuestMemoryMmap = chain.memory();
    let header = peek_in_header(mem, chain);
    let reader = Reader::from_descriptor_chain(mem, chain.clone());
    let writer = VirtioFsWriter::new(mem, chain.clone());
    let (reader, writer) = match (reader, writer) {
        (Ok(r), Ok(w)) => (r, w),
        (r, w) => {
            warn!(
                "vhost-user: malformed descriptor chain {} ({}): reader: {}, writer: {}",
                chain.head_index(),
                reply::describe(header.as_ref()),
                r.err().map_or("ok".to_string(), |e| e.to_string()),
                w.as_ref().err().map_or("ok".to_string(), |e| e.to_string())
            );
            return match (header, w) {
                (Some(h), Ok(w)) if reply::expects_reply(h.opcode) => {
                    error_reply(w, h.unique, libc::EIO, stats)
                }
                _ => unanswerable(stats),
            };
        }
    };

    // A request whose success reply hands the guest a reference (a lookup count) must have
    // room for that reply: otherwise the filesystem counts a reference the guest never
    // receives and so never forgets. Refuse it before it runs.
    if let Some(h) = header {
        if let Some(need) = reply::reference_reply_len(h.opcode) {
            if writer.available_bytes() < need {
                warn!(
                    "vhost-user: chain {} ({}) has {} writable bytes, its reply needs {need}",
                    chain.head_index(),
                    reply::describe(Some(&h)),
                    writer.available_bytes()
                );
                return error_reply(writer, h.unique, libc::EIO, stats);
            }
        }
    }

    if header.is_some_and(|h| reply::expects_reply(h.opcode)) {
        // Clear the reply header so that, if handle_message fails, we can tell from guest
        // memory whether it already wrote an error reply.
        let _ = writer.clone().write_all(&[0u8; OUT_HEADER_LEN]);
    }
    let spare = writer.clone();
    let err = match reply::run(server, reader, Writer::VirtioFs(writer), metrics) {
        Ok(len) => {
            return match header {
                // fuse-backend-rs answers DESTROY with nothing; the guest waits for a header.
                Some(h) if len == 0 && h.opcode == Opcode::Destroy as u32 => {
                    ok_reply(spare, h.unique)
                }
                _ => len as u32,
            };
        }
        Err(e) => e,
    };
    warn!(
        "vhost-user: request failed on chain {} ({}): {err}",
        chain.head_index(),
        reply::describe(header.as_ref())
    );
    match header {
        Some(h) if reply::expects_reply(h.opcode) => {
            // Keep an error reply the server already wrote (e.g. EINVAL for a bad name).
            if let Some(out) = peek_out_header(mem, chain) {
                if out.unique == h.unique && out.error < 0 && out.len as usize == OUT_HEADER_LEN {
                    return OUT_HEADER_LEN as u32;
                }
            }
            error_reply(spare, h.unique, libc::EIO, stats)
        }
        _ => unanswerable(stats),
    }
}

pub(super) fn unanswerable(stats: &TransportStats) -> u32 {
    stats.chains_unanswerable.fetch_add(1, Ordering::Relaxed);
    0
}

pub(super) fn error_reply(
    mut w: VirtioFsWriter<'_, ()>,
    unique: u64,
    errno: i32,
    stats: &TransportStats,
) -> u32 {
    match w.write_all(reply::error_header(unique, errno).as_slice()) {
        Ok(()) => {
            stats.error_replies.fetch_add(1, Ordering::Relaxed);
            OUT_HEADER_LEN as u32
        }
        Err(e) => {
            warn!("vhost-user: no room for an error reply to unique {unique}: {e}");
            unanswerable(stats)
        }
    }
}

pub(super) fn ok_reply(mut w: VirtioFsWriter<'_, ()>, unique: u64) -> u32 {
    match w.write_all(reply::error_header(unique, 0).as_slice()) {
        Ok(()) => OUT_HEADER_LEN as u32,
        Err(_) => 0,
    }
}

/// Read the first `N` bytes of the readable (or writable) part of a chain, if all of it is
/// inside guest memory.
pub(super) fn read_chain_prefix<const N: usize>(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    writable: bool,
) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    let mut filled = 0;
    let descs = if writable {
        chain.clone().writable()
    } else {
        chain.clone().readable()
    };
    for desc in descs {
        let take = (desc.len() as usize).min(N - filled);
        mem.read_slice(&mut buf[filled..filled + take], desc.addr())
            .ok()?;
        filled += take;
        if filled == N {
            return Some(buf);
        }
    }
    None
}

pub(super) fn peek_in_header(mem: &GuestMemoryMmap, chain: &Chain) -> Option<InHeader> {
    let bytes = read_chain_prefix::<IN_HEADER_LEN>(mem, chain, false)?;
    // Copy instead of ByteValued::from_slice, which rejects the byte array's alignment.
    let mut header = InHeader::default();
    header.as_mut_slice().copy_from_slice(&bytes);
    Some(header)
}

pub(super) fn peek_out_header(mem: &GuestMemoryMmap, chain: &Chain) -> Option<OutHeader> {
    let bytes = read_chain_prefix::<OUT_HEADER_LEN>(mem, chain, true)?;
    let mut header = OutHeader::default();
    header.as_mut_slice().copy_from_slice(&bytes);
    Some(header)
}
