//! Shared pieces of the fuzz targets and of the seed-corpus generator (`gen-corpus`).
//!
//! Input format of `fuse_requests`: a sequence of frames, each `u16 LE length` + that many
//! bytes, each frame one FUSE message exactly as /dev/fuse would deliver it (header first). The
//! header's own `len` field is left as the input says, so it may disagree with the frame.

use std::fs::File;
use std::sync::{Arc, Mutex, OnceLock};

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode};
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseBuf, FuseDevWriter, Reader};
use vm_memory::ByteValued;

use eventfs_core::catalog::{RawCatalog, EMBEDDED};
use eventfs_core::{Tree, TreeConfig};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::source::catalog::CatalogControl;
use eventfsd::stats::{Stats, StatsHook};
use ftrace_text::format::{self, Field};

/// Size of a FUSE request header.
pub const IN_HEADER_LEN: usize = std::mem::size_of::<InHeader>();
/// Most frames taken from one input (keeps one execution short).
pub const MAX_FRAMES: usize = 64;

// ------------------------------------------------------------------------------------------
// Events of the embedded catalog, for the parsers' field tables.

/// `(system, event, format)` of every event of the embedded catalog, in image order.
pub fn embedded_events() -> &'static [(&'static str, &'static str, &'static str)] {
    static EVENTS: OnceLock<Vec<(&'static str, &'static str, &'static str)>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let raw = RawCatalog::parse(EMBEDDED).expect("embedded catalog");
        let s = |span: eventfs_core::catalog::Span| {
            std::str::from_utf8(span.get(EMBEDDED)).expect("UTF-8 in the catalog")
        };
        let mut out = Vec::new();
        for sys in &raw.systems {
            for ev in &sys.events {
                out.push((s(sys.name), s(ev.name), s(ev.format)));
            }
        }
        out
    })
}

/// Events the seeds and the first selector values refer to: the usual filter/trigger
/// targets, covering ints, pids, strings, `__data_loc` strings, pointers and arrays.
pub const CURATED: &[(&str, &str)] = &[
    ("sched", "sched_switch"),
    ("sched", "sched_wakeup"),
    ("sched", "sched_process_exec"),
    ("irq", "irq_handler_entry"),
    ("syscalls", "sys_enter_openat"),
    ("kmem", "kmalloc"),
    ("block", "block_rq_issue"),
    ("signal", "signal_generate"),
    ("timer", "hrtimer_start"),
    ("raw_syscalls", "sys_enter"),
];

/// The event a selector byte picks: a curated one for small values, else any event.
pub fn select_event(selector: u8) -> (&'static str, &'static str, &'static str) {
    let all = embedded_events();
    if let Some((sys, ev)) = CURATED.get(selector as usize) {
        if let Some(found) = all.iter().find(|(s, e, _)| s == sys && e == ev) {
            return *found;
        }
    }
    all[(selector as usize * 9973) % all.len()]
}

/// The fields of an event's format.
pub fn fields_of(format: &'static str) -> Vec<Field<'static>> {
    format::fields(format).collect()
}

/// Whether `system/event` exists in the embedded catalog.
pub fn event_exists(system: &str, event: &str) -> bool {
    embedded_events()
        .iter()
        .any(|(s, e, _)| *s == system && *e == event)
}

/// Splits a fuzz input into text after a one-byte selector (lossy UTF-8, as the daemon never
/// sees anything but UTF-8 after its own check, yet the bytes still shape the text).
pub fn selector_and_text(data: &[u8]) -> Option<(u8, String)> {
    let (&sel, rest) = data.split_first()?;
    Some((sel, String::from_utf8_lossy(rest).into_owned()))
}

// ------------------------------------------------------------------------------------------
// FUSE requests

/// Builds one FUSE message: header (with a consistent `len`) + body.
pub fn message(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
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
    bytes
}

/// A NUL-terminated name, as LOOKUP/MKDIR/RMDIR carry it.
pub fn name_body(name: &[u8]) -> Vec<u8> {
    let mut v = name.to_vec();
    v.push(0);
    v
}

/// Frames `messages` in the `fuse_requests` input format.
pub fn frames(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        let m = &m[..m.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(m.len() as u16).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Splits an input into frames (at most [`MAX_FRAMES`]).
pub fn split_frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < MAX_FRAMES {
        let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        out.push(&data[2..2 + n]);
        data = &data[2 + n..];
    }
    out
}

/// The tree shared by every execution (parsing the 2 MB image per input would dominate).
/// Its state is kept bounded: each execution starts with INIT and ends with DESTROY (which drop
/// every lookup reference) and removes the instances it created.
pub fn shared_tree() -> &'static Arc<Tree> {
    static TREE: OnceLock<Arc<Tree>> = OnceLock::new();
    TREE.get_or_init(|| Arc::new(Tree::embedded(TreeConfig::default())))
}

/// The INIT a Linux 6.1 guest sends (flags trimmed to what matters here).
pub fn init_message(unique: u64) -> Vec<u8> {
    let init = fuse_backend_rs::abi::fuse_abi::InitIn {
        major: 7,
        minor: 31,
        max_readahead: 0x20000,
        flags: 0x73fffffb,
    };
    message(Opcode::Init as u32, unique, 0, init.as_slice())
}

struct Io {
    devnull: File,
    reply: Vec<u8>,
}

fn io() -> &'static Mutex<Io> {
    static IO: OnceLock<Mutex<Io>> = OnceLock::new();
    IO.get_or_init(|| {
        Mutex::new(Io {
            devnull: File::options().write(true).open("/dev/null").unwrap(),
            // Big enough for any reply the server builds (1 MiB max_read + header).
            reply: vec![0u8; (1 << 20) + 4096],
        })
    })
}

/// Reads of `trace_pipe` block until records arrive, and in this single-threaded harness
/// nothing else runs meanwhile: make every OPEN and READ non-blocking, as a guest's `cat`
/// would need O_NONBLOCK not to wait.
fn patch_open_nonblock(msg: &mut [u8]) {
    if msg.len() < IN_HEADER_LEN + 4 {
        return;
    }
    let opcode = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    // OPEN/CREATE carry the flags first; READ carries the file's flags after fh, offset,
    // size, read_flags and lock_owner (`fuse_read_in`), and the daemon blocks on those.
    let at = if opcode == Opcode::Open as u32 || opcode == Opcode::Create as u32 {
        IN_HEADER_LEN
    } else if opcode == Opcode::Read as u32 && msg.len() >= IN_HEADER_LEN + 36 {
        IN_HEADER_LEN + 32
    } else {
        return;
    };
    let flags = u32::from_le_bytes(msg[at..at + 4].try_into().unwrap()) | O_NONBLOCK;
    msg[at..at + 4].copy_from_slice(&flags.to_le_bytes());
}

const O_NONBLOCK: u32 = 0o4000;

/// Serves one message, as the /dev/fuse loop does (reply written to /dev/null).
fn serve_one(server: &Server<EventFs>, hook: &StatsHook, msg: &mut [u8]) {
    let mut io = io().lock().unwrap_or_else(|p| p.into_inner());
    let Io { devnull, reply } = &mut *io;
    use std::os::fd::AsRawFd;
    let reader = Reader::<()>::from_fuse_buffer(FuseBuf::new(msg)).unwrap();
    let writer = FuseDevWriter::<()>::new(devnull.as_raw_fd(), reply).unwrap();
    // Errors are the server's answer to a bad message; only panics and hangs are findings.
    let _ = server.handle_message(reader, writer.into(), None, Some(hook));
}

/// Runs one `fuse_requests` input: INIT, the input's frames, DESTROY. Checks that DESTROY
/// leaves no per-lookup state behind, then removes the instances the input created.
pub fn run_fuse_input(data: &[u8]) {
    let tree = shared_tree();
    let stats = Arc::new(Stats::default());
    let fs = EventFs::new(
        tree.clone(),
        Arc::new(CatalogControl::new()),
        stats.clone(),
        CachePolicy::default(),
    );
    let server = Server::new(fs);
    let hook = StatsHook(stats);
    serve_one(&server, &hook, &mut init_message(1));
    for frame in split_frames(data) {
        let mut msg = frame.to_vec();
        patch_open_nonblock(&mut msg);
        serve_one(&server, &hook, &mut msg);
    }
    serve_one(
        &server,
        &hook,
        &mut message(Opcode::Destroy as u32, u64::MAX, 0, &[]),
    );
    assert_eq!(tree.materialised(), 0, "DESTROY left lookup state behind");
    for (_, name) in tree.instances() {
        let _ = tree.remove_instance(&name);
    }
}

// ------------------------------------------------------------------------------------------
// Catalog images

/// A catalog image around `body`: valid magic, version, length and checksum.
pub fn image_from_body(body: &[u8]) -> Vec<u8> {
    use eventfs_core::catalog::{fnv1a64, HEADER_LEN, MAGIC, VERSION};
    let mut image = Vec::with_capacity(HEADER_LEN + body.len());
    image.extend_from_slice(MAGIC);
    image.extend_from_slice(&VERSION.to_le_bytes());
    image.extend_from_slice(&0u32.to_le_bytes());
    image.extend_from_slice(&(body.len() as u64).to_le_bytes());
    image.extend_from_slice(&fnv1a64(body).to_le_bytes());
    image.extend_from_slice(body);
    image
}
