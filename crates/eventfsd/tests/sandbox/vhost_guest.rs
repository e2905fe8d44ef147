//! A minimal QEMU + guest driver for the daemon binary: vhost's `Frontend` over the socket,
//! memfd guest memory, the request queue written by hand (no EVENT_IDX), FUSE requests on it.
//! Enough to walk the tree and read and write files through a sandboxed daemon.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use fuse_backend_rs::abi::fuse_abi::{
    EntryOut, InHeader, InitIn, Opcode, OpenIn, OpenOut, OutHeader, ReadIn, WriteIn,
};
use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use vm_memory::{Address, ByteValued, Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC, EFD_NONBLOCK};

const MEM_SIZE: usize = 8 << 20;
const QUEUE_SIZE: u16 = 256;
const BUF_BASE: u64 = 0x20000;
const REPLY_LEN: u32 = 64 * 1024;
/// Where the request queue lives (the hiprio queue, 0, is set up at 0x1000 and never used).
const REQUEST_QUEUE_AT: u64 = 0x9000;

struct Ring {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    next_desc: u16,
    avail_idx: u16,
    last_used: u16,
}

impl Ring {
    fn new(base: u64) -> Ring {
        let desc = GuestAddress(base);
        let avail = desc.unchecked_add(16 * u64::from(QUEUE_SIZE));
        let used = GuestAddress((avail.0 + 6 + 2 * u64::from(QUEUE_SIZE) + 3) & !3);
        Ring {
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }
}

/// A connected fake guest.
pub struct Guest {
    mem: GuestMemoryMmap,
    _memfd: File,
    _frontend: Frontend,
    ring: Ring,
    kick: EventFd,
    _calls: [EventFd; 2],
    next_buf: u64,
    unique: u64,
}

fn memfd() -> File {
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"sandbox-test-guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd we own.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(MEM_SIZE as u64).unwrap();
    file
}

fn efd() -> EventFd {
    EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC).unwrap()
}

impl Guest {
    /// Connects and negotiates as QEMU does, and sends FUSE INIT.
    pub fn connect(path: &Path) -> Guest {
        let file = memfd();
        let mem = GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(0),
            MEM_SIZE,
            Some(FileOffset::new(file.try_clone().unwrap(), 0)),
        )])
        .unwrap();
        let mut fe = Frontend::connect(path, 2).expect("connect to the daemon");
        fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        fe.set_owner().unwrap();
        let features = fe.get_features().unwrap();
        let protocol = fe.get_protocol_features().unwrap();
        fe.set_protocol_features(protocol).unwrap();
        fe.set_features(features & !(1 << VIRTIO_RING_F_EVENT_IDX))
            .unwrap();
        let user_base = 0x7f00_0000_0000u64;
        fe.set_mem_table(&[VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: MEM_SIZE as u64,
            userspace_addr: user_base,
            mmap_offset: 0,
            mmap_handle: file.as_raw_fd(),
        }])
        .unwrap();
        let rings = [Ring::new(0x1000), Ring::new(REQUEST_QUEUE_AT)];
        let kicks = [efd(), efd()];
        let calls = [efd(), efd()];
        for (i, ring) in rings.iter().enumerate() {
            fe.set_vring_num(i, QUEUE_SIZE).unwrap();
            fe.set_vring_addr(
                i,
                &VringConfigData {
                    queue_max_size: QUEUE_SIZE,
                    queue_size: QUEUE_SIZE,
                    flags: 0,
                    desc_table_addr: user_base + ring.desc.0,
                    used_ring_addr: user_base + ring.used.0,
                    avail_ring_addr: user_base + ring.avail.0,
                    log_addr: None,
                },
            )
            .unwrap();
            fe.set_vring_base(i, 0).unwrap();
            fe.set_vring_call(i, &calls[i]).unwrap();
            fe.set_vring_kick(i, &kicks[i]).unwrap();
            fe.set_vring_enable(i, true).unwrap();
        }
        let [_, ring] = rings;
        let [_, kick] = kicks;
        let mut guest = Guest {
            mem,
            _memfd: file,
            _frontend: fe,
            ring,
            kick,
            _calls: calls,
            next_buf: BUF_BASE,
            unique: 1,
        };
        let init = InitIn {
            major: 7,
            minor: 31,
            max_readahead: 0x20000,
            flags: 0,
        };
        let (out, _) = guest.call(Opcode::Init, 0, init.as_slice());
        assert_eq!(out.error, 0, "INIT");
        guest
    }

    fn alloc(&mut self, len: u32) -> u64 {
        // Buffers are reused from the start once memory runs out: requests are sequential.
        if self.next_buf + u64::from(len) + 64 > MEM_SIZE as u64 {
            self.next_buf = BUF_BASE;
        }
        let at = self.next_buf;
        self.next_buf = (self.next_buf + u64::from(len) + 63) & !63;
        at
    }

    /// Sends one request and waits for its reply: (out header, body).
    pub fn call(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> (OutHeader, Vec<u8>) {
        let unique = self.unique;
        self.unique += 1;
        let header = InHeader {
            len: (std::mem::size_of::<InHeader>() + body.len()) as u32,
            opcode: opcode as u32,
            unique,
            nodeid,
            ..InHeader::default()
        };
        let mut request = header.as_slice().to_vec();
        request.extend_from_slice(body);
        let req_at = self.alloc(request.len() as u32);
        self.mem
            .write_slice(&request, GuestAddress(req_at))
            .unwrap();
        let reply_at = self.alloc(REPLY_LEN);
        let bufs = [
            (req_at, request.len() as u32, 0u16),
            (reply_at, REPLY_LEN, 2u16),
        ];
        let ring = &mut self.ring;
        let head = ring.next_desc;
        for (i, &(addr, len, flags)) in bufs.iter().enumerate() {
            let idx = (ring.next_desc + i as u16) % QUEUE_SIZE;
            let more = if i + 1 < bufs.len() { 1 } else { 0 };
            let at = ring.desc.unchecked_add(16 * u64::from(idx));
            self.mem.write_obj(addr, at).unwrap();
            self.mem.write_obj(len, at.unchecked_add(8)).unwrap();
            self.mem
                .write_obj(flags | more, at.unchecked_add(12))
                .unwrap();
            self.mem
                .write_obj((idx + 1) % QUEUE_SIZE, at.unchecked_add(14))
                .unwrap();
        }
        ring.next_desc = (ring.next_desc + bufs.len() as u16) % QUEUE_SIZE;
        let slot = ring.avail_idx % QUEUE_SIZE;
        self.mem
            .write_obj(head, ring.avail.unchecked_add(4 + 2 * u64::from(slot)))
            .unwrap();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        ring.avail_idx = ring.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(ring.avail_idx, ring.avail.unchecked_add(2))
            .unwrap();
        self.kick.write(1).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let used_idx: u16 = self.mem.read_obj(ring.used.unchecked_add(2)).unwrap();
            if used_idx != ring.last_used {
                break;
            }
            assert!(Instant::now() < deadline, "no reply to {opcode:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = ring
            .used
            .unchecked_add(4 + 8 * u64::from(ring.last_used % QUEUE_SIZE));
        let len: u32 = self.mem.read_obj(at.unchecked_add(4)).unwrap();
        ring.last_used = ring.last_used.wrapping_add(1);
        let out: OutHeader = self.mem.read_obj(GuestAddress(reply_at)).unwrap();
        assert_eq!(out.unique, unique);
        let header_len = std::mem::size_of::<OutHeader>();
        let mut data = vec![0u8; (len as usize).saturating_sub(header_len)];
        self.mem
            .read_slice(&mut data, GuestAddress(reply_at + header_len as u64))
            .unwrap();
        (out, data)
    }

    /// LOOKUP `name` in `parent`: the node id, or the (positive) errno.
    pub fn lookup(&mut self, parent: u64, name: &str) -> Result<u64, i32> {
        let name = CString::new(name).unwrap();
        let (out, data) = self.call(Opcode::Lookup, parent, name.as_bytes_with_nul());
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(parse::<EntryOut>(&data).nodeid)
    }

    /// Walks `path` from the root.
    pub fn walk(&mut self, path: &str) -> Result<u64, i32> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(1, |ino, name| self.lookup(ino, name))
    }

    fn open(&mut self, ino: u64, flags: u32) -> Result<u64, i32> {
        let open_in = OpenIn {
            flags,
            ..OpenIn::default()
        };
        let (out, data) = self.call(Opcode::Open, ino, open_in.as_slice());
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(parse::<OpenOut>(&data).fh)
    }

    fn release(&mut self, ino: u64, fh: u64) {
        // fuse_release_in: fh, flags, release_flags, lock_owner.
        let mut body = fh.to_ne_bytes().to_vec();
        body.extend_from_slice(&[0u8; 16]);
        self.call(Opcode::Release, ino, &body);
    }

    /// Reads up to 64 KiB of the file at `path`.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>, i32> {
        let ino = self.walk(path)?;
        let fh = self.open(ino, libc::O_RDONLY as u32)?;
        let read_in = ReadIn {
            fh,
            size: REPLY_LEN - 4096,
            ..ReadIn::default()
        };
        let (out, data) = self.call(Opcode::Read, ino, read_in.as_slice());
        self.release(ino, fh);
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(data)
    }

    /// Writes `text` to the file at `path` (opened O_WRONLY | O_TRUNC, as `echo >` does).
    pub fn write_file(&mut self, path: &str, text: &str) -> Result<(), i32> {
        let ino = self.walk(path)?;
        let fh = self.open(ino, (libc::O_WRONLY | libc::O_TRUNC) as u32)?;
        let write_in = WriteIn {
            fh,
            size: text.len() as u32,
            ..WriteIn::default()
        };
        let mut body = write_in.as_slice().to_vec();
        body.extend_from_slice(text.as_bytes());
        let (out, _) = self.call(Opcode::Write, ino, &body);
        self.release(ino, fh);
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(())
    }

    /// mkdir `name` in the directory at `parent` (mode 0755).
    pub fn mkdir(&mut self, parent: &str, name: &str) -> Result<(), i32> {
        let ino = self.walk(parent)?;
        // fuse_mkdir_in: mode, umask; then the name.
        let mut body = 0o755u32.to_ne_bytes().to_vec();
        body.extend_from_slice(&0u32.to_ne_bytes());
        body.extend_from_slice(CString::new(name).unwrap().as_bytes_with_nul());
        let (out, _) = self.call(Opcode::Mkdir, ino, &body);
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(())
    }

    /// rmdir `name` in the directory at `parent`.
    pub fn rmdir(&mut self, parent: &str, name: &str) -> Result<(), i32> {
        let ino = self.walk(parent)?;
        let name = CString::new(name).unwrap();
        let (out, _) = self.call(Opcode::Rmdir, ino, name.as_bytes_with_nul());
        if out.error != 0 {
            return Err(-out.error);
        }
        Ok(())
    }
}

fn parse<T: ByteValued + Default>(bytes: &[u8]) -> T {
    let mut value = T::default();
    let n = std::mem::size_of::<T>();
    assert!(bytes.len() >= n, "reply too short: {} < {n}", bytes.len());
    value.as_mut_slice().copy_from_slice(&bytes[..n]);
    value
}
