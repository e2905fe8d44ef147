//! In-process tests: a fake QEMU (vhost's `Frontend`) drives the transport over a real unix
//! socket, with memfd-backed guest memory and split virtqueues written by hand.

use super::*;
use std::fs;
use std::io::{self};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::pool::lock;
use super::shutdown::poll_fds;
use crate::stats::TransportStats;
use crate::transport::reply::{IN_HEADER_LEN, OUT_HEADER_LEN};
use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::Listener;
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vm_memory::{ByteValued, Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC, EFD_NONBLOCK};

use std::ffi::CStr;
use std::fs::File;
use std::os::unix::net::UnixStream;

use fuse_backend_rs::abi::fuse_abi::{
    AttrOut, EntryOut, ForgetIn, GetattrIn, InitIn, InitOut, OpenIn, OpenOut, ReadIn, WriteIn,
    WriteOut,
};
use fuse_backend_rs::api::filesystem::{
    Context, Entry, FsOptions, OpenOptions, ZeroCopyReader, ZeroCopyWriter,
};
use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Address, FileOffset, GuestAddress};
use vmm_sys_util::tempdir::TempDir;

// ------------------------------------------------------------------------------------------
// A tiny filesystem: "/" (1) with "hello" (2, "hello\n", writable) and "slow" (3, whose
// reads block until released).

const ROOT: u64 = 1;
const HELLO: u64 = 2;
const SLOW: u64 = 3;

#[derive(Default)]
struct TestFs {
    inits: AtomicUsize,
    destroys: AtomicUsize,
    forgets: Mutex<Vec<(u64, u64)>>,
    hello: Mutex<Vec<u8>>,
    slow_gate: (Mutex<bool>, Condvar),
}

impl TestFs {
    fn new() -> Self {
        TestFs {
            hello: Mutex::new(b"hello\n".to_vec()),
            ..Default::default()
        }
    }

    fn release_slow(&self) {
        *lock(&self.slow_gate.0) = true;
        self.slow_gate.1.notify_all();
    }

    fn stat(&self, ino: u64) -> io::Result<libc::stat64> {
        // SAFETY: stat64 is plain data.
        let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
        st.st_ino = ino;
        st.st_nlink = 1;
        match ino {
            ROOT => st.st_mode = libc::S_IFDIR | 0o755,
            HELLO => {
                st.st_mode = libc::S_IFREG | 0o644;
                st.st_size = lock(&self.hello).len() as i64;
            }
            SLOW => st.st_mode = libc::S_IFREG | 0o444,
            _ => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
        Ok(st)
    }
}

impl FileSystem for TestFs {
    type Inode = u64;
    type Handle = u64;

    fn init(&self, _capable: FsOptions) -> io::Result<FsOptions> {
        self.inits.fetch_add(1, Ordering::SeqCst);
        Ok(FsOptions::empty())
    }

    fn destroy(&self) {
        self.destroys.fetch_add(1, Ordering::SeqCst);
    }

    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        let ino = match (parent, name.to_bytes()) {
            (ROOT, b"hello") => HELLO,
            (ROOT, b"slow") => SLOW,
            _ => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        Ok(Entry {
            inode: ino,
            generation: 0,
            attr: self.stat(ino)?,
            attr_flags: 0,
            attr_timeout: Duration::from_secs(1),
            entry_timeout: Duration::from_secs(1),
        })
    }

    fn forget(&self, _ctx: &Context, inode: u64, count: u64) {
        lock(&self.forgets).push((inode, count));
    }

    fn getattr(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: Option<u64>,
    ) -> io::Result<(libc::stat64, Duration)> {
        Ok((self.stat(inode)?, Duration::from_secs(1)))
    }

    fn open(
        &self,
        _ctx: &Context,
        inode: u64,
        _flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        self.stat(inode)?;
        Ok((Some(inode), OpenOptions::DIRECT_IO, None))
    }

    fn read(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _flags: u32,
    ) -> io::Result<usize> {
        let data = match inode {
            HELLO => lock(&self.hello).clone(),
            SLOW => {
                let (open, cvar) = &self.slow_gate;
                let guard = lock(open);
                let (guard, _) = cvar
                    .wait_timeout_while(guard, Duration::from_secs(20), |open| !*open)
                    .unwrap();
                if !*guard {
                    return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                b"slow\n".to_vec()
            }
            _ => return Err(io::Error::from_raw_os_error(libc::EBADF)),
        };
        let start = (offset as usize).min(data.len());
        let end = (start + size as usize).min(data.len());
        w.write_all(&data[start..end])?;
        Ok(end - start)
    }

    fn write(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _delayed_write: bool,
        _flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<usize> {
        if inode != HELLO {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let mut buf = vec![0u8; size as usize];
        r.read_exact(&mut buf)?;
        let mut hello = lock(&self.hello);
        let end = offset as usize + buf.len();
        if hello.len() < end {
            hello.resize(end, 0);
        }
        hello[offset as usize..end].copy_from_slice(&buf);
        Ok(buf.len())
    }

    fn release(
        &self,
        _ctx: &Context,
        _inode: u64,
        _flags: u32,
        _handle: u64,
        _flush: bool,
        _flock_release: bool,
        _lock_owner: Option<u64>,
    ) -> io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// The fake guest: memory, split rings and a vhost-user frontend.

const MEM_SIZE: usize = 4 << 20;
const QUEUE_SIZE: u16 = 256;
const BUF_BASE: u64 = 0x20000;
const WAIT: Duration = Duration::from_secs(10);

/// One split virtqueue laid out in guest memory, driven from the driver side.
struct TestQueue {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    next_desc: u16,
    avail_idx: u16,
    last_used: u16,
}

impl TestQueue {
    fn new(base: u64) -> Self {
        let desc = GuestAddress(base);
        let avail = desc.unchecked_add(16 * QUEUE_SIZE as u64);
        let used = GuestAddress((avail.0 + 6 + 2 * QUEUE_SIZE as u64 + 3) & !3);
        TestQueue {
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Write a chain of (addr, len, device-writable) descriptors and publish it.
    fn push(&mut self, mem: &GuestMemoryMmap, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let idx = (self.next_desc + i as u16) % QUEUE_SIZE;
            let mut flags = if writable { 2u16 } else { 0 };
            if i + 1 < bufs.len() {
                flags |= 1;
            }
            let next = (idx + 1) % QUEUE_SIZE;
            let at = self.desc.unchecked_add(16 * idx as u64);
            mem.write_obj(addr, at).unwrap();
            mem.write_obj(len, at.unchecked_add(8)).unwrap();
            mem.write_obj(flags, at.unchecked_add(12)).unwrap();
            mem.write_obj(next, at.unchecked_add(14)).unwrap();
        }
        self.next_desc = (self.next_desc + bufs.len() as u16) % QUEUE_SIZE;
        let slot = self.avail_idx % QUEUE_SIZE;
        mem.write_obj(head, self.avail.unchecked_add(4 + 2 * slot as u64))
            .unwrap();
        // Like Linux with EVENT_IDX: ask for an interrupt at the next used entry.
        mem.write_obj(
            self.last_used,
            self.avail.unchecked_add(4 + 2 * QUEUE_SIZE as u64),
        )
        .unwrap();
        std::sync::atomic::fence(Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, self.avail.unchecked_add(2))
            .unwrap();
        head
    }

    /// Ask for an interrupt at the next used entry (what Linux's virtqueue_enable_cb does).
    fn arm(&self, mem: &GuestMemoryMmap) {
        mem.write_obj(
            self.last_used,
            self.avail.unchecked_add(4 + 2 * QUEUE_SIZE as u64),
        )
        .unwrap();
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        std::sync::atomic::fence(Ordering::SeqCst);
        mem.read_obj(self.used.unchecked_add(2)).unwrap()
    }

    /// The next used element (id, len), if the device produced one.
    fn pop_used(&mut self, mem: &GuestMemoryMmap) -> Option<(u32, u32)> {
        if self.used_idx(mem) == self.last_used {
            return None;
        }
        let at = self
            .used
            .unchecked_add(4 + 8 * (self.last_used % QUEUE_SIZE) as u64);
        let id: u32 = mem.read_obj(at).unwrap();
        let len: u32 = mem.read_obj(at.unchecked_add(4)).unwrap();
        self.last_used = self.last_used.wrapping_add(1);
        Some((id, len))
    }
}

/// The fake QEMU + guest driver.
struct Guest {
    mem: GuestMemoryMmap,
    _memfd: File,
    frontend: Frontend,
    queues: [TestQueue; 2],
    kicks: [EventFd; 2],
    calls: [EventFd; 2],
    next_buf: u64,
    next_unique: u64,
    event_idx: bool,
}

fn memfd(size: usize) -> File {
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"vfs-test-guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: fresh fd we own.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size as u64).unwrap();
    file
}

/// Connect and negotiate like QEMU does, every message with NEED_REPLY (REPLY_ACK) so the
/// frontend waits for the backend to have applied it.
fn negotiate(path: &Path, event_idx: bool) -> Frontend {
    let mut fe = Frontend::connect(path, NUM_QUEUES as u64).expect("connect");
    fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    fe.set_owner().unwrap();
    let features = fe.get_features().unwrap();
    assert_ne!(features & (1 << VIRTIO_F_VERSION_1), 0);
    assert_ne!(features & (1 << VIRTIO_RING_F_INDIRECT_DESC), 0);
    assert_ne!(features & (1 << VIRTIO_RING_F_EVENT_IDX), 0);
    assert_ne!(
        features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(),
        0
    );
    let pf = fe.get_protocol_features().unwrap();
    assert!(pf.contains(
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::RESET_DEVICE
    ));
    assert!(!pf.contains(VhostUserProtocolFeatures::CONFIG));
    fe.set_protocol_features(pf).unwrap();
    assert_eq!(fe.get_queue_num().unwrap(), NUM_QUEUES as u64);
    let mut acked = features;
    if !event_idx {
        acked &= !(1 << VIRTIO_RING_F_EVENT_IDX);
    }
    fe.set_features(acked).unwrap();
    fe
}

impl Guest {
    fn connect(path: &Path, event_idx: bool) -> Guest {
        let file = memfd(MEM_SIZE);
        let mem = GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(0),
            MEM_SIZE,
            Some(FileOffset::new(file.try_clone().unwrap(), 0)),
        )])
        .unwrap();
        let mut frontend = negotiate(path, event_idx);
        // QEMU sends its own virtual addresses; any consistent value works for the test.
        let user_base = 0x7f00_0000_0000u64;
        frontend
            .set_mem_table(&[VhostUserMemoryRegionInfo {
                guest_phys_addr: 0,
                memory_size: MEM_SIZE as u64,
                userspace_addr: user_base,
                mmap_offset: 0,
                mmap_handle: file.as_raw_fd(),
            }])
            .unwrap();
        let queues = [TestQueue::new(0x1000), TestQueue::new(0x9000)];
        let kicks = [new_efd(), new_efd()];
        let calls = [new_efd(), new_efd()];
        for (i, q) in queues.iter().enumerate() {
            frontend.set_vring_num(i, QUEUE_SIZE).unwrap();
            frontend
                .set_vring_addr(
                    i,
                    &VringConfigData {
                        queue_max_size: QUEUE_SIZE,
                        queue_size: QUEUE_SIZE,
                        flags: 0,
                        desc_table_addr: user_base + q.desc.0,
                        used_ring_addr: user_base + q.used.0,
                        avail_ring_addr: user_base + q.avail.0,
                        log_addr: None,
                    },
                )
                .unwrap();
            frontend.set_vring_base(i, 0).unwrap();
            frontend.set_vring_call(i, &calls[i]).unwrap();
            frontend.set_vring_kick(i, &kicks[i]).unwrap();
            frontend.set_vring_enable(i, true).unwrap();
        }
        Guest {
            mem,
            _memfd: file,
            frontend,
            queues,
            kicks,
            calls,
            next_buf: BUF_BASE,
            next_unique: 1,
            event_idx,
        }
    }

    fn alloc(&mut self, len: usize) -> u64 {
        let at = self.next_buf;
        self.next_buf = (self.next_buf + len as u64 + 63) & !63;
        assert!(
            self.next_buf < MEM_SIZE as u64,
            "test guest memory exhausted"
        );
        at
    }

    fn request(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> (u64, Vec<u8>) {
        let unique = self.next_unique;
        self.next_unique += 1;
        let header = InHeader {
            len: (IN_HEADER_LEN + body.len()) as u32,
            opcode: opcode as u32,
            unique,
            nodeid,
            uid: 0,
            gid: 0,
            pid: 1,
            padding: 0,
        };
        let mut bytes = header.as_slice().to_vec();
        bytes.extend_from_slice(body);
        (unique, bytes)
    }

    /// Put raw descriptors on a queue and kick it if the device asks for kicks, the way Linux
    /// does (avail_event with EVENT_IDX, VRING_USED_F_NO_NOTIFY without): a device that leaves
    /// notifications disabled then hangs this driver too.
    fn submit_raw(&mut self, queue: usize, bufs: &[(u64, u32, bool)]) -> u16 {
        let q = &mut self.queues[queue];
        let old = q.avail_idx;
        let head = q.push(&self.mem, bufs);
        let new = q.avail_idx;
        std::sync::atomic::fence(Ordering::SeqCst);
        let kick = if self.event_idx {
            let avail_event: u16 = self
                .mem
                .read_obj(q.used.unchecked_add(4 + 8 * QUEUE_SIZE as u64))
                .unwrap();
            new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            let flags: u16 = self.mem.read_obj(q.used).unwrap();
            flags & 1 == 0
        };
        if kick {
            self.kicks[queue].write(1).unwrap();
        }
        head
    }

    /// Submit `request` with a device-writable buffer of `reply_len` bytes (none if 0).
    fn submit(&mut self, queue: usize, request: &[u8], reply_len: u32) -> (u16, u64) {
        let req_at = self.alloc(request.len());
        self.mem.write_slice(request, GuestAddress(req_at)).unwrap();
        let reply_at = self.alloc(reply_len as usize);
        let mut bufs = vec![(req_at, request.len() as u32, false)];
        if reply_len > 0 {
            bufs.push((reply_at, reply_len, true));
        }
        (self.submit_raw(queue, &bufs), reply_at)
    }

    /// Wait for the next used element of `queue`. With `want_call`, the call eventfd must have
    /// fired too (the used_event written by `push` asks for it).
    fn wait_used(&mut self, queue: usize, want_call: bool) -> (u32, u32) {
        let deadline = Instant::now() + WAIT;
        let mut called = false;
        loop {
            if poll_fds(&[self.calls[queue].as_raw_fd()], 0).unwrap()[0] {
                let _ = self.calls[queue].read();
                called = true;
            }
            if called || !want_call {
                if let Some(used) = self.queues[queue].pop_used(&self.mem) {
                    return used;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no completion on queue {queue} (called: {called}, used idx {})",
                self.queues[queue].used_idx(&self.mem)
            );
            let _ = poll_fds(&[self.calls[queue].as_raw_fd()], 10);
        }
    }

    /// Send a request on the request queue and return (out header, reply body).
    fn call(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> (OutHeader, Vec<u8>) {
        let (unique, req) = self.request(opcode, nodeid, body);
        let (head, reply_at) = self.submit(1, &req, 8192);
        let (id, len) = self.wait_used(1, true);
        assert_eq!(id, head as u32);
        let (out, data) = self.read_reply(reply_at, len);
        assert_eq!(out.unique, unique);
        (out, data)
    }

    fn read_reply(&self, at: u64, len: u32) -> (OutHeader, Vec<u8>) {
        assert!(len as usize >= OUT_HEADER_LEN, "used len {len} too short");
        let out: OutHeader = self.mem.read_obj(GuestAddress(at)).unwrap();
        assert_eq!(out.len, len, "out header len vs used len");
        let mut data = vec![0u8; len as usize - OUT_HEADER_LEN];
        self.mem
            .read_slice(&mut data, GuestAddress(at + OUT_HEADER_LEN as u64))
            .unwrap();
        (out, data)
    }

    fn init(&mut self) -> InitOut {
        let init_in = InitIn {
            major: 7,
            minor: 31,
            max_readahead: 0x20000,
            flags: 0,
        };
        let (out, data) = self.call(Opcode::Init, 0, init_in.as_slice());
        assert_eq!(out.error, 0, "INIT failed");
        parse::<InitOut>(&data)
    }

    fn getattr(&mut self, ino: u64) -> AttrOut {
        let (out, data) = self.call(Opcode::Getattr, ino, GetattrIn::default().as_slice());
        assert_eq!(out.error, 0, "GETATTR {ino} failed");
        parse::<AttrOut>(&data)
    }

    fn read(&mut self, ino: u64, fh: u64, size: u32) -> Vec<u8> {
        let read_in = ReadIn {
            fh,
            offset: 0,
            size,
            ..Default::default()
        };
        let (out, data) = self.call(Opcode::Read, ino, read_in.as_slice());
        assert_eq!(out.error, 0, "READ {ino} failed");
        data
    }
}

/// Decode a reply struct (copying: reply buffers need not be aligned).
fn parse<T: ByteValued + Default>(bytes: &[u8]) -> T {
    let mut v = T::default();
    let n = std::mem::size_of::<T>();
    assert!(bytes.len() >= n, "reply too short: {} < {n}", bytes.len());
    v.as_mut_slice().copy_from_slice(&bytes[..n]);
    v
}

fn new_efd() -> EventFd {
    EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC).unwrap()
}

// ------------------------------------------------------------------------------------------
// Daemon harness

/// Tests check process-wide threads and fds, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Minimal logger so transport warnings show up in failing tests' output.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Debug
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) && r.target().contains("vhost_user") {
            eprintln!("[{}] {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn serial() -> MutexGuard<'static, ()> {
    static LOGGER: StderrLogger = StderrLogger;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Debug));
    lock(&SERIAL)
}

struct Daemon {
    _dir: TempDir,
    path: PathBuf,
    fs: Arc<TestFs>,
    stats: Arc<TransportStats>,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), TransportError>>>,
}

impl Daemon {
    fn start(exit_on_disconnect: bool) -> Daemon {
        let dir = TempDir::new_with_prefix("/tmp/vfs-transport-test").unwrap();
        let path = dir.as_path().join("vfs.sock");
        let listener = listener_from_path(&path).unwrap();
        let fs = Arc::new(TestFs::new());
        let stats = Arc::new(TransportStats::default());
        let shutdown = Shutdown::new().unwrap();
        let opts = ServeOptions {
            thread_pool_size: 3,
            exit_on_disconnect,
            shutdown: Some(shutdown.clone()),
            stats: stats.clone(),
            drain_timeout: Duration::from_secs(5),
            ..ServeOptions::default()
        };
        let fs2 = fs.clone();
        let thread = thread::spawn(move || serve(fs2, listener, opts));
        Daemon {
            _dir: dir,
            path,
            fs,
            stats,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Wait for serve() to return (it must, within the test timeout).
    fn join(&mut self) -> Result<(), TransportError> {
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "serve() did not return");
            thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap()
    }

    fn stop(&mut self) {
        self.shutdown.trigger();
        self.join().expect("serve() failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown.trigger();
            let _ = self.join();
        }
    }
}

/// Transport threads still alive in this process.
fn transport_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(comm) = fs::read_to_string(task.path().join("comm")) {
            let comm = comm.trim().to_string();
            if comm.starts_with("vfs-") || comm == "vring_worker" {
                names.push(comm);
            }
        }
    }
    names
}

/// Number of socket fds open in this process.
fn socket_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_link(e.path())
                .map(|l| l.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}

fn assert_clean(sockets_before: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let threads = transport_threads();
        let sockets = socket_fds();
        if threads.is_empty() && sockets == sockets_before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: threads {threads:?}, sockets {sockets} (before {sockets_before})"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn expect_err(r: Result<Listener, TransportError>) -> TransportError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn name_body(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn full_session_errors_and_reconnect() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let mut daemon = Daemon::start(false);
    let mut g = Guest::connect(&daemon.path, true);

    // INIT
    let init = g.init();
    assert_eq!(init.major, 7);
    assert_eq!(daemon.fs.inits.load(Ordering::SeqCst), 1);

    // LOOKUP
    let (out, data) = g.call(Opcode::Lookup, ROOT, &name_body("hello"));
    assert_eq!(out.error, 0);
    let entry = parse::<EntryOut>(&data);
    assert_eq!(entry.nodeid, HELLO);
    assert_eq!(entry.attr.size, 6);
    let (out, _) = g.call(Opcode::Lookup, ROOT, &name_body("nope"));
    assert_eq!(out.error, -libc::ENOENT);

    // GETATTR
    assert_eq!(g.getattr(HELLO).attr.size, 6);
    assert_eq!(g.getattr(ROOT).attr.mode & libc::S_IFMT, libc::S_IFDIR);

    // OPEN
    let (out, data) = g.call(Opcode::Open, HELLO, OpenIn::default().as_slice());
    assert_eq!(out.error, 0);
    let open = parse::<OpenOut>(&data);
    assert_eq!(open.fh, HELLO);

    // READ
    assert_eq!(g.read(HELLO, open.fh, 4096), b"hello\n");

    // WRITE, then READ it back
    let payload = b"HELLO\n";
    let write_in = WriteIn {
        fh: open.fh,
        offset: 0,
        size: payload.len() as u32,
        ..Default::default()
    };
    let mut body = write_in.as_slice().to_vec();
    body.extend_from_slice(payload);
    let (out, data) = g.call(Opcode::Write, HELLO, &body);
    assert_eq!(out.error, 0);
    assert_eq!(parse::<WriteOut>(&data).size, 6);
    assert_eq!(g.read(HELLO, open.fh, 4096), b"HELLO\n");

    // FORGET on hiprio: no reply, chain handed back with len 0.
    let (_, req) = g.request(Opcode::Forget, HELLO, ForgetIn { nlookup: 1 }.as_slice());
    let (head, _) = g.submit(0, &req, 0);
    assert_eq!(g.wait_used(0, true), (head as u32, 0));
    assert_eq!(*lock(&daemon.fs.forgets), vec![(HELLO, 1)]);

    // A second INIT without DESTROY (guest reboot) is answered.
    g.init();
    assert_eq!(daemon.fs.inits.load(Ordering::SeqCst), 2);
    assert_eq!(g.getattr(HELLO).attr.size, 6);

    // --- malformed chains; each must come back and the next request must still work.
    let answered_before = daemon.stats.chains_processed.load(Ordering::SeqCst);

    // (a) readable part too short for a request header: nothing parseable -> len 0.
    let short = g.alloc(8);
    let reply = g.alloc(4096);
    let head = g.submit_raw(1, &[(short, 8, false), (reply, 4096, true)]);
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    assert_eq!(g.getattr(HELLO).attr.size, 6);

    // (b) valid GETATTR but no writable descriptor: no room for any reply -> len 0.
    let (_, req) = g.request(Opcode::Getattr, HELLO, GetattrIn::default().as_slice());
    let (head, _) = g.submit(1, &req, 0);
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    assert_eq!(g.getattr(HELLO).attr.size, 6);

    // (c) LOOKUP whose body is cut short (header.len claims more): error reply with unique.
    let (unique, mut req) = g.request(Opcode::Lookup, ROOT, &name_body("hello"));
    req.truncate(IN_HEADER_LEN + 2);
    let (head, reply_at) = g.submit(1, &req, 4096);
    let (id, len) = g.wait_used(1, true);
    assert_eq!(id, head as u32);
    let (out, _) = g.read_reply(reply_at, len);
    assert_eq!(out.unique, unique);
    assert!(out.error < 0, "expected an error reply, got {}", out.error);

    // (d) writable descriptor running past the end of guest memory -> handed back, len 0.
    let (_, req) = g.request(Opcode::Getattr, HELLO, GetattrIn::default().as_slice());
    let req_at = g.alloc(req.len());
    g.mem.write_slice(&req, GuestAddress(req_at)).unwrap();
    let head = g.submit_raw(
        1,
        &[
            (req_at, req.len() as u32, false),
            (MEM_SIZE as u64 - 16, 4096, true),
        ],
    );
    assert_eq!(g.wait_used(1, true), (head as u32, 0));

    // (e) readable descriptor outside guest memory: no header, no reply -> len 0.
    let reply = g.alloc(4096);
    let head = g.submit_raw(
        1,
        &[(MEM_SIZE as u64 + 0x1000, 64, false), (reply, 4096, true)],
    );
    assert_eq!(g.wait_used(1, true), (head as u32, 0));

    // (f) an unknown opcode gets ENOSYS from the server.
    let (out, _) = g.call(Opcode::Bmap, HELLO, &[0u8; 16]);
    assert_eq!(out.error, -libc::ENOSYS);

    assert_eq!(g.getattr(HELLO).attr.size, 6);
    let answered = daemon.stats.chains_processed.load(Ordering::SeqCst) - answered_before;
    assert_eq!(answered, 9, "every chain handed back");
    assert!(daemon.stats.chains_unanswerable.load(Ordering::SeqCst) >= 4);

    // --- disconnect, then a second frontend on the same daemon; state persists.
    drop(g);
    let mut g2 = Guest::connect(&daemon.path, false);
    g2.init();
    assert_eq!(daemon.fs.inits.load(Ordering::SeqCst), 3);
    assert_eq!(g2.read(HELLO, HELLO, 4096), b"HELLO\n");
    assert_eq!(daemon.stats.connections.load(Ordering::SeqCst), 2);

    // The first frontend's disconnect ended its FUSE session.
    assert_eq!(daemon.fs.destroys.load(Ordering::SeqCst), 1);

    // DESTROY gets a header back (fuse-backend-rs itself writes none).
    let (out, _) = g2.call(Opcode::Destroy, 0, &[]);
    assert_eq!(out.error, 0);
    assert_eq!(daemon.fs.destroys.load(Ordering::SeqCst), 2);

    // Shutdown while a frontend is still connected interrupts the connection.
    daemon.stop();
    assert!(!daemon.path.exists(), "socket file removed");
    drop(g2);
    drop(daemon);
    assert_clean(sockets_before);
}

#[test]
fn blocking_read_does_not_stall_other_requests() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let mut daemon = Daemon::start(false);
    let mut g = Guest::connect(&daemon.path, true);
    g.init();

    // A READ of "slow" blocks in a worker...
    let read_in = ReadIn {
        fh: SLOW,
        offset: 0,
        size: 4096,
        ..Default::default()
    };
    let (slow_unique, req) = g.request(Opcode::Read, SLOW, read_in.as_slice());
    let (slow_head, slow_reply) = g.submit(1, &req, 8192);

    // ...while other requests on the same queue keep completing.
    for _ in 0..5 {
        assert_eq!(g.getattr(HELLO).attr.size, 6);
    }
    assert_eq!(g.read(HELLO, HELLO, 100), b"hello\n");

    // The guest re-arms its interrupt before sleeping on the outstanding READ.
    g.queues[1].arm(&g.mem);
    daemon.fs.release_slow();
    let (id, len) = g.wait_used(1, true);
    assert_eq!(id, slow_head as u32);
    let (out, data) = g.read_reply(slow_reply, len);
    assert_eq!((out.unique, out.error), (slow_unique, 0));
    assert_eq!(data, b"slow\n");

    daemon.stop();
    drop(g);
    drop(daemon);
    assert_clean(sockets_before);
}

#[test]
fn completion_after_ring_stop_is_dropped() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let mut daemon = Daemon::start(false);
    let mut g = Guest::connect(&daemon.path, false);
    g.init();

    let read_in = ReadIn {
        fh: SLOW,
        offset: 0,
        size: 4096,
        ..Default::default()
    };
    let (_, req) = g.request(Opcode::Read, SLOW, read_in.as_slice());
    g.submit(1, &req, 8192);
    // Let the worker pick it up and block, then stop the ring as QEMU does on guest reset.
    thread::sleep(Duration::from_millis(100));
    let used_before = g.queues[1].used_idx(&g.mem);
    g.frontend.get_vring_base(1).unwrap();
    daemon.fs.release_slow();

    let deadline = Instant::now() + WAIT;
    while daemon.stats.stale_completions.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "stale completion not detected");
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(g.queues[1].used_idx(&g.mem), used_before);

    daemon.stop();
    drop(g);
    drop(daemon);
    assert_clean(sockets_before);
}

#[test]
fn exit_on_disconnect_and_idle_shutdown() {
    let _serial = serial();
    let sockets_before = socket_fds();

    let mut daemon = Daemon::start(true);
    let mut g = Guest::connect(&daemon.path, true);
    g.init();
    drop(g);
    daemon.join().expect("clean disconnect is Ok");
    drop(daemon);

    // Shutdown with no connection: serve() returns from its accept wait.
    let mut daemon = Daemon::start(false);
    thread::sleep(Duration::from_millis(50));
    daemon.stop();
    drop(daemon);
    assert_clean(sockets_before);
}

#[test]
fn unshared_memory_is_reported() {
    let _serial = serial();
    let sockets_before = socket_fds();

    // QEMU with plain anonymous RAM and CONFIGURE_MEM_SLOTS sends no memory region at all;
    // the first ring address then cannot be translated.
    let mut daemon = Daemon::start(false);
    let fe = negotiate(&daemon.path, true);
    fe.set_vring_num(0, QUEUE_SIZE).unwrap();
    let res = fe.set_vring_addr(
        0,
        &VringConfigData {
            queue_max_size: QUEUE_SIZE,
            queue_size: QUEUE_SIZE,
            flags: 0,
            desc_table_addr: 0x7f00_0000_1000,
            used_ring_addr: 0x7f00_0000_3000,
            avail_ring_addr: 0x7f00_0000_2000,
            log_addr: None,
        },
    );
    assert!(res.is_err());
    let err = daemon.join().unwrap_err();
    assert!(
        matches!(err, TransportError::GuestMemoryNotShared { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("share=on"), "{err}");
    drop(fe);
    drop(daemon);

    // A region whose fd cannot be mapped shared and writable (here: opened read-only) fails
    // at mmap.
    let mut daemon = Daemon::start(false);
    let fe = negotiate(&daemon.path, true);
    let ram = memfd(MEM_SIZE);
    let read_only = File::open(format!("/proc/self/fd/{}", ram.as_raw_fd())).unwrap();
    let res = fe.set_mem_table(&[VhostUserMemoryRegionInfo {
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: 0x7f00_0000_0000,
        mmap_offset: 0,
        mmap_handle: read_only.as_raw_fd(),
    }]);
    assert!(res.is_err());
    let err = daemon.join().unwrap_err();
    assert!(
        matches!(err, TransportError::GuestMemoryNotShared { .. }),
        "{err}"
    );
    eprintln!("reported as: {err}");
    drop(fe);
    drop(daemon);
    assert_clean(sockets_before);
}

#[test]
fn listener_errors() {
    let _serial = serial();
    let dir = TempDir::new_with_prefix("/tmp/vfs-listener-test").unwrap();

    let missing = dir.as_path().join("no/such/dir/vfs.sock");
    let err = expect_err(listener_from_path(&missing));
    assert!(
        matches!(err, TransportError::SocketDirMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");

    let path = dir.as_path().join("vfs.sock");
    let live = listener_from_path(&path).unwrap();
    let err = expect_err(listener_from_path(&path));
    assert!(matches!(err, TransportError::SocketInUse { .. }), "{err}");
    assert!(path.exists(), "a live socket must not be unlinked");
    drop(live);

    // A stale socket (its listener is gone) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    drop(listener_from_path(&path).unwrap());

    let file = dir.as_path().join("regular");
    fs::write(&file, b"x").unwrap();
    let err = expect_err(listener_from_path(&file));
    assert!(matches!(err, TransportError::NotASocket { .. }), "{err}");

    // --fd: a regular file and a connected socket are refused, a listener is adopted.
    let f = File::open(&file).unwrap();
    let err = expect_err(listener_from_fd(f.as_raw_fd()));
    assert!(err.to_string().contains("not a socket"), "{err}");
    let (a, _b) = UnixStream::pair().unwrap();
    let err = expect_err(listener_from_fd(a.as_raw_fd()));
    assert!(err.to_string().contains("not listening"), "{err}");
    let inherited = UnixListener::bind(dir.as_path().join("inherited.sock")).unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(inherited);
    let listener = listener_from_fd(fd).unwrap();
    assert_eq!(listener.as_raw_fd(), fd);
}

// ------------------------------------------------------------------------------------------
// The daemon with the real filesystem (used here and by the hostile-guest tests)

use crate::fs::{CachePolicy, EventFs};
use crate::source::catalog::CatalogControl;
use crate::stats::{Stats, StatsHook};
use eventfs_core::{Tree, TreeConfig};

struct EvDaemon {
    _dir: TempDir,
    path: PathBuf,
    tree: Arc<Tree>,
    stats: Arc<Stats>,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), TransportError>>>,
}

impl EvDaemon {
    fn start() -> EvDaemon {
        let dir = TempDir::new_with_prefix("/tmp/vfs-hostile-test").unwrap();
        let path = dir.as_path().join("vfs.sock");
        let listener = listener_from_path(&path).unwrap();
        let tree = Arc::new(Tree::embedded(TreeConfig::default()));
        let stats = Arc::new(Stats::default());
        let fs = Arc::new(EventFs::new(
            tree.clone(),
            Arc::new(CatalogControl::new()),
            stats.clone(),
            CachePolicy::default(),
        ));
        let shutdown = Shutdown::new().unwrap();
        let opts = ServeOptions {
            thread_pool_size: 2,
            shutdown: Some(shutdown.clone()),
            metrics: Some(Arc::new(StatsHook(stats.clone()))),
            stats: stats.transport.clone(),
            ..ServeOptions::default()
        };
        let thread = thread::spawn(move || serve(fs, listener, opts));
        EvDaemon {
            _dir: dir,
            path,
            tree,
            stats,
            shutdown,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.shutdown.trigger();
        let result = self.thread.take().unwrap().join().unwrap();
        result.expect("daemon ends cleanly");
    }
}

/// The daemon's real filesystem over the real transport: the session a guest's `mount`, `cat`
/// and `echo` produce, plus FORGET freeing the per-node state and INIT resetting it.
#[test]
fn eventfs_session_over_vhost_user() {
    let _serial = serial();
    let daemon = EvDaemon::start();
    let (tree, stats) = (daemon.tree.clone(), daemon.stats.clone());
    let mut g = Guest::connect(&daemon.path, true);
    g.init();

    let lookup = |g: &mut Guest, parent: u64, name: &str| {
        let (out, data) = g.call(Opcode::Lookup, parent, &name_body(name));
        assert_eq!(out.error, 0, "LOOKUP {name}");
        parse::<EntryOut>(&data)
    };
    let events = lookup(&mut g, ROOT, "events").nodeid;
    let sched = lookup(&mut g, events, "sched").nodeid;
    let switch = lookup(&mut g, sched, "sched_switch").nodeid;
    let format = lookup(&mut g, switch, "format");
    let enable = lookup(&mut g, switch, "enable").nodeid;
    assert_eq!(tree.materialised(), 5);
    assert!(
        format.attr.size > 0,
        "immutable files report their real size"
    );
    assert_eq!(g.getattr(enable).attr.mode & 0o7777, 0o640);

    // OPEN + READ of the format file: the catalog's bytes.
    let (out, _) = g.call(Opcode::Open, format.nodeid, OpenIn::default().as_slice());
    assert_eq!(out.error, 0);
    let text = g.read(format.nodeid, 0, 65536);
    assert!(text.starts_with(b"name: sched_switch\nID: "));
    assert_eq!(text.len() as u64, format.attr.size);

    // OPEN (O_TRUNC) + WRITE "1" to enable, READ it back; a bad value is EINVAL.
    let open_in = OpenIn {
        flags: (libc::O_WRONLY | libc::O_TRUNC) as u32,
        ..Default::default()
    };
    let (out, data) = g.call(Opcode::Open, enable, open_in.as_slice());
    assert_eq!(out.error, 0);
    assert_ne!(
        parse::<OpenOut>(&data).open_flags & 1,
        0,
        "control files use direct I/O"
    );
    let write = |g: &mut Guest, payload: &[u8]| {
        let write_in = WriteIn {
            size: payload.len() as u32,
            ..Default::default()
        };
        let mut body = write_in.as_slice().to_vec();
        body.extend_from_slice(payload);
        g.call(Opcode::Write, enable, &body).0.error
    };
    assert_eq!(write(&mut g, b"1\n"), 0);
    assert_eq!(g.read(enable, 0, 4096), b"1\n");
    assert_eq!(write(&mut g, b"7\n"), -libc::EINVAL);

    // FORGET on the hiprio queue frees the node's state; the metadata stays.
    let (_, req) = g.request(
        Opcode::Forget,
        format.nodeid,
        ForgetIn { nlookup: 1 }.as_slice(),
    );
    let (head, _) = g.submit(0, &req, 0);
    assert_eq!(g.wait_used(0, true), (head as u32, 0));
    assert_eq!(tree.materialised(), 4);
    assert_eq!(lookup(&mut g, switch, "format").nodeid, format.nodeid);

    // A malformed chain gets its reply and the daemon keeps serving.
    let short = g.alloc(8);
    let reply = g.alloc(4096);
    let head = g.submit_raw(1, &[(short, 8, false), (reply, 4096, true)]);
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    assert_eq!(g.getattr(enable).attr.mode & 0o7777, 0o640);

    // A second INIT without DESTROY (guest reboot) drops every lookup reference.
    g.init();
    assert_eq!(tree.materialised(), 0);
    assert_eq!(stats.sessions.load(Ordering::Relaxed), 2);
    assert!(stats.requests(Opcode::Lookup as u32) >= 6);
    assert!(stats.errors.load(Ordering::Relaxed) >= 1);

    // A guest that goes away without FORGET or DESTROY (QEMU killed) leaves nothing behind.
    lookup(&mut g, ROOT, "events");
    assert_eq!(tree.materialised(), 1);
    drop(g);
    let deadline = Instant::now() + WAIT;
    while tree.materialised() != 0 {
        assert!(
            Instant::now() < deadline,
            "lookup state kept after the frontend left"
        );
        thread::sleep(Duration::from_millis(10));
    }
    daemon.stop();
}

/// Hostile-guest tests with the real filesystem, reusing this fake guest.
#[path = "hostile_tests.rs"]
mod hostile;
