//! Hostile-guest tests: the daemon's real `EventFs` (embedded catalog) behind the vhost-user
//! transport, driven by the fake guest of `vhost_user_tests` with malformed descriptor chains,
//! bogus requests and floods. Every request must get an answer (or its chain handed back with
//! length 0), the daemon must keep serving, and neither its per-lookup state nor its heap may
//! grow.

use super::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;

use fuse_backend_rs::abi::fuse_abi::{
    BatchForgetIn, Dirent, EntryOut, ForgetIn, ForgetOne, GetattrIn, InitIn, MkdirIn, OpenIn,
    OpenOut, ReadIn, WriteIn,
};

// ------------------------------------------------------------------------------------------
// Heap accounting: live bytes of the whole test process. Tests that compare it run alone in a
// child process of their own (`in_own_process`), so no other test allocates meanwhile.

struct CountingAlloc;

static LIVE_HEAP: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_HEAP.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_HEAP.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_heap() -> i64 {
    LIVE_HEAP.load(Ordering::Relaxed)
}

/// Environment variable naming the one test a child process runs.
const ISOLATED_ENV: &str = "EVENTFSD_ISOLATED_TEST";

/// Runs the test `name` (its path below this crate) alone in a child process and checks that
/// it ran and passed; returns true in that child, where the caller runs the test's body.
fn in_own_process(name: &str) -> bool {
    if std::env::var(ISOLATED_ENV).as_deref() == Ok(name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(ISOLATED_ENV, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Resident set size of the process in bytes.
fn rss() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

// ------------------------------------------------------------------------------------------
// Guest helpers. Requests here are synchronous (or batched and fully awaited), so the guest's
// bump allocator is rewound before each one: the 4 MiB of test memory are reused.

fn raw_request(g: &mut Guest, opcode: u32, nodeid: u64, body: &[u8]) -> (u64, Vec<u8>) {
    let unique = g.next_unique;
    g.next_unique += 1;
    let header = InHeader {
        len: (IN_HEADER_LEN + body.len()) as u32,
        opcode,
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

/// Sends `request` (already encoded) with a `reply_len`-byte writable buffer; returns the
/// used length and the reply header/body if the used length holds one.
fn exchange(g: &mut Guest, request: &[u8], reply_len: u32) -> (u32, Option<(OutHeader, Vec<u8>)>) {
    g.next_buf = BUF_BASE;
    let (head, reply_at) = g.submit(1, request, reply_len);
    let (id, len) = g.wait_used(1, true);
    assert_eq!(id, head as u32);
    if len as usize >= OUT_HEADER_LEN {
        (len, Some(g.read_reply(reply_at, len)))
    } else {
        (len, None)
    }
}

/// A request with a raw opcode and an 8 KiB reply buffer: (errno, body).
fn op(g: &mut Guest, opcode: u32, nodeid: u64, body: &[u8]) -> (i32, Vec<u8>) {
    let (unique, req) = raw_request(g, opcode, nodeid, body);
    let (len, reply) = exchange(g, &req, 8192);
    let (out, data) = reply.unwrap_or_else(|| panic!("opcode {opcode}: no reply (len {len})"));
    assert_eq!(out.unique, unique);
    (-out.error, data)
}

fn lookup(g: &mut Guest, parent: u64, name: &[u8]) -> Result<EntryOut, i32> {
    let mut body = name.to_vec();
    body.push(0);
    match op(g, Opcode::Lookup as u32, parent, &body) {
        (0, data) => Ok(parse::<EntryOut>(&data)),
        (errno, _) => Err(errno),
    }
}

fn walk(g: &mut Guest, path: &str) -> u64 {
    let mut ino = ROOT;
    for part in path.split('/') {
        ino = lookup(g, ino, part.as_bytes())
            .unwrap_or_else(|e| panic!("lookup {part}: errno {e}"))
            .nodeid;
    }
    ino
}

fn forget(g: &mut Guest, ino: u64, nlookup: u64) {
    g.next_buf = BUF_BASE;
    let (_, req) = raw_request(
        g,
        Opcode::Forget as u32,
        ino,
        ForgetIn { nlookup }.as_slice(),
    );
    let (head, _) = g.submit(0, &req, 0);
    assert_eq!(g.wait_used(0, true), (head as u32, 0));
}

/// Sends every request at once (at most 120: two descriptors each), then waits for all of
/// them; returns each one's errno (0 for success), in request order.
fn batch(g: &mut Guest, requests: &[Vec<u8>], reply_len: u32) -> Vec<i32> {
    assert!(requests.len() <= 120);
    g.next_buf = BUF_BASE;
    let mut slots = HashMap::new();
    for (i, req) in requests.iter().enumerate() {
        let (head, reply_at) = g.submit(1, req, reply_len);
        slots.insert(head as u32, (i, reply_at));
    }
    let mut errnos = vec![i32::MIN; requests.len()];
    let mut done = 0;
    let deadline = Instant::now() + WAIT;
    while done < requests.len() {
        if let Some((id, len)) = g.queues[1].pop_used(&g.mem) {
            let (i, reply_at) = slots[&id];
            let (out, _) = g.read_reply(reply_at, len);
            errnos[i] = -out.error;
            done += 1;
            continue;
        }
        // Ask for an interrupt at the next completion, re-check, then sleep on it.
        g.queues[1].arm(&g.mem);
        if g.queues[1].used_idx(&g.mem) != g.queues[1].last_used {
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "batch: {done} of {} done",
            requests.len()
        );
        let _ = poll_fds(&[g.calls[1].as_raw_fd()], 100);
        let _ = g.calls[1].read();
    }
    errnos
}

fn open(g: &mut Guest, ino: u64, flags: i32) -> u64 {
    let body = OpenIn {
        flags: flags as u32,
        fuse_flags: 0,
    };
    let (errno, data) = op(g, Opcode::Open as u32, ino, body.as_slice());
    assert_eq!(errno, 0, "OPEN {ino:#x}");
    parse::<OpenOut>(&data).fh
}

fn write_body(fh: u64, size: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = WriteIn {
        fh,
        size,
        ..Default::default()
    }
    .as_slice()
    .to_vec();
    body.extend_from_slice(payload);
    body
}

fn read_file(g: &mut Guest, ino: u64, fh: u64) -> Vec<u8> {
    let body = ReadIn {
        fh,
        size: 4096,
        ..Default::default()
    };
    let (errno, data) = op(g, Opcode::Read as u32, ino, body.as_slice());
    assert_eq!(errno, 0);
    data
}

/// (ino, cookie of the next entry, name, nodeid handed out by readdirplus).
type Listed = (u64, u64, Vec<u8>, u64);

fn parse_dirents(data: &[u8], plus: bool) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut pos = 0;
    let entry_len = std::mem::size_of::<EntryOut>();
    let dirent_len = std::mem::size_of::<Dirent>();
    while pos < data.len() {
        let nodeid = if plus {
            let e = parse::<EntryOut>(&data[pos..]);
            pos += entry_len;
            e.nodeid
        } else {
            0
        };
        let d = parse::<Dirent>(&data[pos..]);
        let name = data[pos + dirent_len..pos + dirent_len + d.namelen as usize].to_vec();
        pos += (dirent_len + d.namelen as usize + 7) & !7;
        out.push((d.ino, d.off, name, nodeid));
    }
    out
}

fn readdir(g: &mut Guest, plus: bool, ino: u64, offset: u64, size: u32) -> Vec<Listed> {
    let opcode = if plus {
        Opcode::Readdirplus
    } else {
        Opcode::Readdir
    };
    let body = ReadIn {
        fh: 0,
        offset,
        size,
        ..Default::default()
    };
    let (unique, req) = raw_request(g, opcode as u32, ino, body.as_slice());
    let (_, reply) = exchange(g, &req, size + 64);
    let (out, data) = reply.expect("READDIR reply");
    assert_eq!(
        (out.unique, out.error),
        (unique, 0),
        "READDIR {ino:#x} @ {offset}"
    );
    parse_dirents(&data, plus)
}

// ------------------------------------------------------------------------------------------

/// Malformed chains, lying headers and unknown opcodes against the real filesystem: each is
/// answered or handed back, no lookup reference leaks, and the daemon keeps serving.
#[test]
fn hostile_chains_against_eventfs() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();
    let mut g = Guest::connect(&d.path, true);
    g.init();
    let chains_before = d.stats.transport.chains_processed.load(Ordering::SeqCst);
    let mut sent = 0u64;

    // (a) readable part shorter than a request header: handed back, length 0.
    g.next_buf = BUF_BASE;
    let (short, reply) = (g.alloc(8), g.alloc(4096));
    let head = g.submit_raw(1, &[(short, 8, false), (reply, 4096, true)]);
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    sent += 1;

    // (b) a valid LOOKUP with no writable part at all: nothing can be answered, and the
    // reference the lookup would hand out must not be kept (the guest never saw it).
    let (_, req) = raw_request(&mut g, Opcode::Lookup as u32, ROOT, b"events\0");
    assert_eq!(exchange(&mut g, &req, 0).0, 0);
    sent += 1;
    assert_eq!(
        d.tree.materialised(),
        0,
        "unanswerable LOOKUP took a reference"
    );

    // (c) LOOKUP with room for an error header only: EIO, and again no reference.
    let (unique, req) = raw_request(&mut g, Opcode::Lookup as u32, ROOT, b"events\0");
    let (len, reply) = exchange(&mut g, &req, OUT_HEADER_LEN as u32);
    sent += 1;
    let (out, _) = reply.expect("error header");
    assert_eq!((len as usize, out.unique), (OUT_HEADER_LEN, unique));
    assert!(out.error < 0);
    assert_eq!(
        d.tree.materialised(),
        0,
        "LOOKUP without room took a reference"
    );

    // (d) readable descriptor claiming more bytes than guest memory has; (e) writable
    // descriptor outside guest memory; (f) readable descriptor entirely outside it.
    g.next_buf = BUF_BASE;
    let reply = g.alloc(4096);
    let head = g.submit_raw(
        1,
        &[(MEM_SIZE as u64 - 64, 1 << 20, false), (reply, 4096, true)],
    );
    let (id, _) = g.wait_used(1, true);
    assert_eq!(id, head as u32);
    sent += 1;
    let (_, req) = raw_request(
        &mut g,
        Opcode::Getattr as u32,
        ROOT,
        GetattrIn::default().as_slice(),
    );
    let at = g.alloc(req.len());
    g.mem.write_slice(&req, GuestAddress(at)).unwrap();
    let head = g.submit_raw(
        1,
        &[
            (at, req.len() as u32, false),
            (MEM_SIZE as u64 + 4096, 4096, true),
        ],
    );
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    sent += 1;
    let head = g.submit_raw(1, &[(u64::MAX - 100, 64, false), (reply, 4096, true)]);
    assert_eq!(g.wait_used(1, true), (head as u32, 0));
    sent += 1;

    // (g) header lengths that lie: longer than the chain, shorter than the header itself.
    for claimed in [4096u32, 1 << 30, 8, 0] {
        let (unique, mut req) = raw_request(&mut g, Opcode::Lookup as u32, ROOT, b"events\0");
        req[..4].copy_from_slice(&claimed.to_le_bytes());
        let (_, reply) = exchange(&mut g, &req, 4096);
        sent += 1;
        if let Some((out, _)) = reply {
            assert_eq!(out.unique, unique);
        }
    }
    // Whatever those did, a DESTROY-free reset must bring the state back.
    forget_all(&mut g, &d);

    // (h) unknown and unsupported opcodes: ENOSYS (or another error), never a crash.
    for opcode in [0u32, 7, 19, 50, 99, 4096, 1 << 20, u32::MAX] {
        let (errno, _) = op(&mut g, opcode, ROOT, &[0u8; 64]);
        sent += 1;
        assert_ne!(errno, 0, "opcode {opcode} answered with success");
    }
    for opcode in [
        Opcode::Bmap,
        Opcode::Ioctl,
        Opcode::Poll,
        Opcode::Lseek,
        Opcode::Getlk,
    ] {
        let (errno, _) = op(&mut g, opcode as u32, ROOT, &[0u8; 64]);
        sent += 1;
        assert_ne!(errno, 0, "{opcode:?} answered with success");
    }

    // (i) READ of a static file at absurd offsets and sizes.
    let format = walk(&mut g, "events/sched/sched_switch/format");
    for (offset, size) in [(u64::MAX, 4096u32), (1 << 40, 4096), (0, u32::MAX), (0, 0)] {
        let body = ReadIn {
            fh: 0,
            offset,
            size,
            ..Default::default()
        };
        let (errno, data) = op(&mut g, Opcode::Read as u32, format, body.as_slice());
        sent += 1;
        assert!(
            errno != 0 || data.is_empty() || size == u32::MAX,
            "{offset} {size}"
        );
    }

    // Still serving; every chain came back.
    assert_eq!(g.getattr(ROOT).attr.ino, ROOT);
    sent += 1;
    let processed = d.stats.transport.chains_processed.load(Ordering::SeqCst) - chains_before;
    assert!(
        processed >= sent,
        "{processed} chains processed, {sent} sent"
    );
    eprintln!(
        "hostile chains: {sent} sent, unanswerable {}, error replies {}",
        d.stats.transport.chains_unanswerable.load(Ordering::SeqCst),
        d.stats.transport.error_replies.load(Ordering::SeqCst)
    );
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}

/// Like `assert_clean`, but tolerant of sockets other tests of this binary close meanwhile.
fn assert_no_leftovers(sockets_before: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let threads = transport_threads();
        let sockets = socket_fds();
        if threads.is_empty() && sockets <= sockets_before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: threads {threads:?}, sockets {sockets} (before {sockets_before})"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// INIT resets every reference the guest holds (its recovery from whatever came before).
fn forget_all(g: &mut Guest, d: &EvDaemon) {
    g.init();
    assert_eq!(d.tree.materialised(), 0);
}

/// A 1 MiB write into `filter` is refused with EINVAL (as tracefs refuses a page or more), a
/// WRITE whose size field lies is refused, and the file keeps working.
#[test]
fn huge_filter_writes_are_refused() {
    if !in_own_process("transport::vhost_user::tests::hostile::huge_filter_writes_are_refused") {
        return;
    }
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();
    let mut g = Guest::connect(&d.path, true);
    g.init();
    let filter = walk(&mut g, "events/sched/sched_switch/filter");
    let fh = open(&mut g, filter, libc::O_WRONLY | libc::O_TRUNC);

    let mib = vec![b'x'; 1 << 20];
    let heap_before = live_heap();
    let (errno, _) = op(
        &mut g,
        Opcode::Write as u32,
        filter,
        &write_body(fh, 1 << 20, &mib),
    );
    assert_eq!(errno, libc::EINVAL, "1 MiB filter write");
    // Size field claims 1 MiB, 10 bytes follow.
    let (errno, _) = op(
        &mut g,
        Opcode::Write as u32,
        filter,
        &write_body(fh, 1 << 20, &mib[..10]),
    );
    assert_ne!(errno, 0);
    // Size field claims 10 bytes, 1 MiB follows: only 10 are taken (not a valid filter).
    let (errno, _) = op(
        &mut g,
        Opcode::Write as u32,
        filter,
        &write_body(fh, 10, &mib),
    );
    assert_eq!(errno, libc::EINVAL);
    // One byte over the kernel's limit, then exactly at it.
    let (errno, _) = op(
        &mut g,
        Opcode::Write as u32,
        filter,
        &write_body(fh, 4096, &mib[..4096]),
    );
    assert_eq!(errno, libc::EINVAL);
    for _ in 0..50 {
        let (errno, _) = op(
            &mut g,
            Opcode::Write as u32,
            filter,
            &write_body(fh, 1 << 20, &mib),
        );
        assert_eq!(errno, libc::EINVAL);
    }
    let grown = live_heap() - heap_before;
    assert!(
        grown < 256 << 10,
        "heap grew by {grown} bytes over 50 refused 1 MiB writes"
    );

    // The file still works.
    let text = b"prev_pid == 0\n";
    let (errno, _) = op(
        &mut g,
        Opcode::Write as u32,
        filter,
        &write_body(fh, text.len() as u32, text),
    );
    assert_eq!(errno, 0);
    let fh2 = open(&mut g, filter, libc::O_RDONLY);
    assert_eq!(read_file(&mut g, filter, fh2), b"prev_pid == 0\n");
    assert!(d.stats.errors.load(Ordering::Relaxed) >= 54);
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}

/// 100,000 (or EVENTFSD_FLOOD_LOOKUPS) lookups of names that do not exist (batched 100 at a time): all ENOENT, no node
/// materialised, no heap growth.
#[test]
fn negative_lookup_flood_keeps_memory_flat() {
    if !in_own_process(
        "transport::vhost_user::tests::hostile::negative_lookup_flood_keeps_memory_flat",
    ) {
        return;
    }
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();
    let mut g = Guest::connect(&d.path, true);
    g.init();
    let events = walk(&mut g, "events");
    let sched = walk(&mut g, "events/sched");
    let switch = walk(&mut g, "events/sched/sched_switch");
    let parents = [ROOT, events, sched, switch];
    let baseline_nodes = d.tree.materialised();
    // EVENTFSD_FLOOD_LOOKUPS raises the count for a long run (multiples of 1000).
    let total: usize = std::env::var("EVENTFSD_FLOOD_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    const BATCH: usize = 100;

    let run = |g: &mut Guest, from: usize, to: usize| {
        let mut i = from;
        while i < to {
            let reqs: Vec<Vec<u8>> = (i..i + BATCH)
                .map(|n| {
                    let name = format!("no-such-{n}-{}\0", "z".repeat(n % 200));
                    raw_request(g, Opcode::Lookup as u32, parents[n % 4], name.as_bytes()).1
                })
                .collect();
            for errno in batch(g, &reqs, 256) {
                assert_eq!(errno, libc::ENOENT);
            }
            i += BATCH;
        }
    };
    // Warm up (thread-local buffers, the stats, the allocator's caches), then measure.
    run(&mut g, 0, 2_000);
    let (heap_before, rss_before) = (live_heap(), rss());
    let started = Instant::now();
    run(&mut g, 2_000, total);
    let elapsed = started.elapsed();
    let (heap_grown, rss_grown) = (live_heap() - heap_before, rss() as i64 - rss_before as i64);
    eprintln!(
        "{} negative lookups in {elapsed:?}: heap {heap_grown:+} bytes, RSS {rss_grown:+} bytes, \
         materialised {}",
        total - 2_000,
        d.tree.materialised()
    );
    assert_eq!(
        d.tree.materialised(),
        baseline_nodes,
        "negative lookups stored nothing"
    );
    // 98,000 lookups: even 8 leaked bytes each would be 784 KB.
    assert!(heap_grown < 256 << 10, "heap grew by {heap_grown} bytes");
    assert!(rss_grown < 16 << 20, "RSS grew by {rss_grown} bytes");
    assert!(d.stats.requests(Opcode::Lookup as u32) >= total as u64);
    assert_eq!(g.getattr(events).attr.ino, events);
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}

/// Names of 255, 256 and 4096 bytes, names without a NUL, names the header cuts short.
#[test]
fn long_and_malformed_names() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();
    let mut g = Guest::connect(&d.path, true);
    g.init();
    let events = walk(&mut g, "events");
    let instances = walk(&mut g, "instances");

    assert_eq!(
        lookup(&mut g, events, &[b'a'; 255]).unwrap_err(),
        libc::ENOENT
    );
    assert_eq!(
        lookup(&mut g, events, &[b'a'; 256]).unwrap_err(),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        lookup(&mut g, events, &[b'a'; 4096]).unwrap_err(),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        lookup(&mut g, events, b"sched/sched_switch").unwrap_err(),
        libc::ENOENT
    );
    assert_eq!(lookup(&mut g, events, b"").unwrap_err(), libc::ENOENT);
    assert_eq!(
        lookup(&mut g, events, b"\xff\xfe").unwrap_err(),
        libc::ENOENT
    );

    // No NUL terminator: EINVAL from the server's name decoding.
    let (errno, _) = op(&mut g, Opcode::Lookup as u32, events, b"sched");
    assert_eq!(errno, libc::EINVAL);
    // The header's len cuts the name before its NUL: the body is what the header says.
    let (unique, mut req) = raw_request(&mut g, Opcode::Lookup as u32, events, b"sched\0");
    let cut = (IN_HEADER_LEN + 3) as u32;
    req[..4].copy_from_slice(&cut.to_le_bytes());
    let (_, reply) = exchange(&mut g, &req, 4096);
    let (out, _) = reply.expect("reply");
    assert_eq!(out.unique, unique);
    assert!(out.error < 0, "a name cut before its NUL was accepted");

    // mkdir of an instance with a too-long name.
    let mkdir = |g: &mut Guest, name: &[u8]| {
        let mut body = MkdirIn {
            mode: 0o755,
            umask: 0,
        }
        .as_slice()
        .to_vec();
        body.extend_from_slice(name);
        body.push(0);
        op(g, Opcode::Mkdir as u32, instances, &body).0
    };
    assert_eq!(mkdir(&mut g, &[b'i'; 256]), libc::ENAMETOOLONG);
    assert_eq!(mkdir(&mut g, &[b'i'; 4096]), libc::ENAMETOOLONG);
    assert!(d.tree.instances().is_empty());

    assert_eq!(
        lookup(&mut g, events, b"sched").unwrap().attr.ino,
        walk(&mut g, "events/sched")
    );
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}

/// READDIR and READDIRPLUS at random offsets and buffer sizes: no failure, every entry is one
/// of the directory's, a cookie taken from a listing resumes exactly after its entry, and the
/// references readdirplus hands out are exactly the ones the guest received.
#[test]
fn readdir_at_random_offsets() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();
    let mut g = Guest::connect(&d.path, true);
    g.init();
    let dirs = [
        ROOT,
        walk(&mut g, "events"),
        walk(&mut g, "events/sched"),
        walk(&mut g, "events/sched/sched_switch"),
        walk(&mut g, "options"),
        walk(&mut g, "instances"),
    ];
    let baseline = d.tree.materialised();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for &dir in &dirs {
        // The full listing, in pieces of 64 KiB.
        let mut full = Vec::new();
        let mut cookie = 0;
        loop {
            let part = readdir(&mut g, false, dir, cookie, 65536);
            let Some(last) = part.last() else { break };
            cookie = last.1;
            full.extend(part);
        }
        assert!(full.len() >= 2, "{dir:#x}: {} entries", full.len());
        for _ in 0..60 {
            let plus = rand() % 2 == 0;
            let size = [64u32, 100, 512, 4096, 65536][(rand() % 5) as usize];
            let (offset, expect_from) = match rand() % 3 {
                // A cookie from the listing: must resume right after that entry.
                0 => {
                    let i = (rand() % full.len() as u64) as usize;
                    (full[i].1, Some(i + 1))
                }
                1 => (rand() % 64, None),
                _ => (rand(), None),
            };
            let got = readdir(&mut g, plus, dir, offset, size);
            for (k, e) in got.iter().enumerate() {
                let known = full.iter().position(|f| f.0 == e.0 && f.2 == e.2);
                let at = known.unwrap_or_else(|| {
                    panic!(
                        "{dir:#x} @ {offset}: unknown entry {:?}",
                        String::from_utf8_lossy(&e.2)
                    )
                });
                if let Some(from) = expect_from {
                    assert_eq!(at, from + k, "{dir:#x}: cookie {offset} resumed elsewhere");
                }
                // Give back what readdirplus handed out, as the guest's dcache eventually does.
                if plus && e.3 != 0 {
                    forget(&mut g, e.3, 1);
                }
            }
            assert_eq!(
                d.tree.materialised(),
                baseline,
                "readdirplus references balance"
            );
        }
    }
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}

/// FORGET and BATCH_FORGET of unknown inodes, huge counts and lying counts; INIT twice; an
/// old protocol version; requests before INIT.
#[test]
fn hostile_forgets_and_init_sequences() {
    let _serial = serial();
    let sockets_before = socket_fds();
    let d = EvDaemon::start();

    // Requests before INIT (a guest never does this; the daemon must still answer).
    let mut g = Guest::connect(&d.path, true);
    let (errno, _) = op(
        &mut g,
        Opcode::Getattr as u32,
        ROOT,
        GetattrIn::default().as_slice(),
    );
    eprintln!("GETATTR before INIT: errno {errno}");
    let before_init = lookup(&mut g, ROOT, b"events");
    eprintln!(
        "LOOKUP before INIT: {:?}",
        before_init.as_ref().map(|e| e.nodeid)
    );
    g.init();
    assert_eq!(d.tree.materialised(), 0, "INIT drops what came before it");

    // INIT twice, then with an old major version, then truncated.
    g.init();
    let old = InitIn {
        major: 6,
        minor: 0,
        max_readahead: 0,
        flags: 0,
    };
    let (errno, _) = op(&mut g, Opcode::Init as u32, 0, old.as_slice());
    eprintln!("INIT 6.0: errno {errno}");
    let (errno, _) = op(&mut g, Opcode::Init as u32, 0, &[7, 0, 0, 0]);
    assert_ne!(errno, 0, "truncated INIT accepted");
    g.init();

    let events = walk(&mut g, "events");
    let sched = walk(&mut g, "events/sched");
    assert_eq!(d.tree.materialised(), 2);
    let over_before = d.stats.over_forgets.load(Ordering::Relaxed);
    forget(&mut g, 0xdead_beef_0000, 1);
    forget(&mut g, u64::MAX, u64::MAX);
    forget(&mut g, ROOT, u64::MAX);
    forget(&mut g, events, 0);
    assert_eq!(d.tree.materialised(), 2);
    forget(&mut g, events, u64::MAX);
    assert_eq!(d.tree.materialised(), 1);
    assert!(d.stats.over_forgets.load(Ordering::Relaxed) > over_before);

    // BATCH_FORGET (Linux sends it over /dev/fuse only; the server accepts it anywhere):
    // entries for unknown inodes, a count larger than the entries present, count 0.
    let batch_forget = |g: &mut Guest, count: u32, entries: &[(u64, u64)]| {
        let mut body = BatchForgetIn { count, dummy: 0 }.as_slice().to_vec();
        for &(nodeid, nlookup) in entries {
            body.extend_from_slice(ForgetOne { nodeid, nlookup }.as_slice());
        }
        g.next_buf = BUF_BASE;
        let (_, req) = raw_request(g, Opcode::BatchForget as u32, 0, &body);
        let (head, _) = g.submit(0, &req, 0);
        let (id, _) = g.wait_used(0, true);
        assert_eq!(id, head as u32);
    };
    batch_forget(&mut g, 3, &[(sched, 1), (12345, 7), (ROOT, 1)]);
    assert_eq!(d.tree.materialised(), 0);
    let sched = walk(&mut g, "events/sched");
    batch_forget(&mut g, 1_000_000, &[(sched, 1)]);
    batch_forget(&mut g, u32::MAX, &[]);
    batch_forget(&mut g, 0, &[(sched, 1)]);
    assert!(d.tree.materialised() <= 2);

    // Still serving, and a fresh INIT clears everything.
    assert_eq!(g.getattr(ROOT).attr.ino, ROOT);
    g.init();
    assert_eq!(d.tree.materialised(), 0);
    drop(g);
    d.stop();
    assert_no_leftovers(sockets_before);
}
