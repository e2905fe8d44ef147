//! The vring type: vhost-user-backend's mutex vring plus a generation counter.

use std::fs;
use std::io::{self};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

use vhost_user_backend::{VringMutex, VringState, VringStateGuard, VringStateMutGuard, VringT};
use virtio_queue::Error as VirtQueueError;

use super::GuestMem;

/// The vring type used by [`VhostUserFsBackend`]: a [`VringMutex`] plus a generation counter
/// bumped whenever the frontend stops, resizes or re-addresses the ring.
///
/// A request popped before such a change (e.g. a trace_pipe read blocked across a guest
/// reboot) must not be completed into the new ring: the head index would belong to some
/// other request of the new driver instance and Linux marks the virtqueue broken.
#[derive(Clone)]
pub struct FsVring {
    inner: VringMutex<GuestMem>,
    generation: Arc<AtomicU64>,
}

impl FsVring {
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl<'a> VringStateGuard<'a, GuestMem> for FsVring {
    type G = MutexGuard<'a, VringState<GuestMem>>;
}

impl<'a> VringStateMutGuard<'a, GuestMem> for FsVring {
    type G = MutexGuard<'a, VringState<GuestMem>>;
}

impl VringT<GuestMem> for FsVring {
    fn new(mem: GuestMem, max_queue_size: u16) -> Result<Self, VirtQueueError> {
        Ok(FsVring {
            inner: VringMutex::new(mem, max_queue_size)?,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }
    fn get_ref(&self) -> MutexGuard<'_, VringState<GuestMem>> {
        self.inner.get_ref()
    }
    fn get_mut(&self) -> MutexGuard<'_, VringState<GuestMem>> {
        self.inner.get_mut()
    }
    fn add_used(&self, desc_index: u16, len: u32) -> Result<(), VirtQueueError> {
        self.inner.add_used(desc_index, len)
    }
    fn signal_used_queue(&self) -> io::Result<()> {
        self.inner.signal_used_queue()
    }
    fn enable_notification(&self) -> Result<bool, VirtQueueError> {
        self.inner.enable_notification()
    }
    fn disable_notification(&self) -> Result<(), VirtQueueError> {
        self.inner.disable_notification()
    }
    fn needs_notification(&self) -> Result<bool, VirtQueueError> {
        self.inner.needs_notification()
    }
    fn set_enabled(&self, enabled: bool) {
        // Disabled-but-started rings may still complete requests (vhost-user spec), so no bump.
        self.inner.set_enabled(enabled)
    }
    fn set_queue_info(
        &self,
        desc_table: u64,
        avail_ring: u64,
        used_ring: u64,
    ) -> Result<(), VirtQueueError> {
        // Bump before the change: a completion that sees the old generation under the state
        // lock ran entirely before the change.
        self.bump();
        self.inner.set_queue_info(desc_table, avail_ring, used_ring)
    }
    fn queue_next_avail(&self) -> u16 {
        self.inner.queue_next_avail()
    }
    fn set_queue_next_avail(&self, base: u16) {
        self.bump();
        self.inner.set_queue_next_avail(base)
    }
    fn set_queue_next_used(&self, idx: u16) {
        self.bump();
        self.inner.set_queue_next_used(idx)
    }
    fn queue_used_idx(&self) -> Result<u16, VirtQueueError> {
        self.inner.queue_used_idx()
    }
    fn set_queue_size(&self, num: u16) {
        self.bump();
        self.inner.set_queue_size(num)
    }
    fn set_queue_event_idx(&self, enabled: bool) {
        self.inner.set_queue_event_idx(enabled)
    }
    fn set_queue_ready(&self, ready: bool) {
        self.bump();
        self.inner.set_queue_ready(ready)
    }
    fn set_kick(&self, file: Option<fs::File>) {
        self.inner.set_kick(file)
    }
    fn read_kick(&self) -> io::Result<bool> {
        self.inner.read_kick()
    }
    fn set_call(&self, file: Option<fs::File>) {
        self.inner.set_call(file)
    }
    fn set_err(&self, file: Option<fs::File>) {
        self.inner.set_err(file)
    }
}
