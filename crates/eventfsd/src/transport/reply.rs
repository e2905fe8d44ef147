//! The FUSE reply policy both transports follow: which requests wait for a reply, which
//! replies hand the guest a reference (and so need room), and running a request so that a
//! failing or panicking filesystem becomes an error the transport can answer, never a lost
//! request or a dead worker.

use std::panic::{catch_unwind, AssertUnwindSafe};

use fuse_backend_rs::abi::fuse_abi::{EntryOut, InHeader, Opcode, OpenOut, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::{MetricsHook, Server};
use fuse_backend_rs::transport::{Reader, Writer};

/// Size of a FUSE reply header.
pub const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();
/// Size of a FUSE request header.
pub const IN_HEADER_LEN: usize = std::mem::size_of::<InHeader>();

/// FORGET, BATCH_FORGET and INTERRUPT get no reply; everything else waits for one.
pub fn expects_reply(opcode: u32) -> bool {
    opcode != Opcode::Forget as u32
        && opcode != Opcode::BatchForget as u32
        && opcode != Opcode::Interrupt as u32
}

/// Whether a request may wait in the file system for long: a READ (`trace_pipe` and its kin
/// wait for records). Every other request is answered from memory or by a quick host call, so
/// the /dev/fuse transport keeps a spare worker waiting only while a READ runs: a client that
/// only walks the tree is served by one thread.
pub fn may_block(opcode: u32) -> bool {
    opcode == Opcode::Read as u32
}

/// Size of the success reply of requests that hand out an inode reference (LOOKUP and the
/// creating operations). A request without room for it must be refused before it runs:
/// otherwise the filesystem counts a reference the guest never receives and so never
/// forgets. READDIRPLUS needs no check: the server refuses a buffer smaller than the
/// request's size before the filesystem runs, and entries that do not fit are undone.
pub fn reference_reply_len(opcode: u32) -> Option<usize> {
    const LOOKUP: u32 = Opcode::Lookup as u32;
    const MKNOD: u32 = Opcode::Mknod as u32;
    const MKDIR: u32 = Opcode::Mkdir as u32;
    const SYMLINK: u32 = Opcode::Symlink as u32;
    const LINK: u32 = Opcode::Link as u32;
    const CREATE: u32 = Opcode::Create as u32;
    let entry = OUT_HEADER_LEN + std::mem::size_of::<EntryOut>();
    match opcode {
        LOOKUP | MKNOD | MKDIR | SYMLINK | LINK => Some(entry),
        CREATE => Some(entry + std::mem::size_of::<OpenOut>()),
        _ => None,
    }
}

/// A request header for log lines.
pub fn describe(h: Option<&InHeader>) -> String {
    match h {
        Some(h) => format!(
            "opcode {} unique {} nodeid {}",
            h.opcode, h.unique, h.nodeid
        ),
        None => "no readable request header".to_string(),
    }
}

/// A reply header without a body for request `unique`: an error, or success with errno 0.
pub fn error_header(unique: u64, errno: i32) -> OutHeader {
    OutHeader {
        len: OUT_HEADER_LEN as u32,
        error: -errno,
        unique,
    }
}

/// Runs one request through `server`. A panic in the filesystem is caught and reported like
/// an error, so the worker lives on and the transport can still answer the request.
pub fn run<F: FileSystem + Sync>(
    server: &Server<F>,
    reader: Reader<'_>,
    writer: Writer<'_>,
    metrics: Option<&(dyn MetricsHook + Send + Sync)>,
) -> Result<usize, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        server.handle_message(reader, writer, None, metrics.map(|m| m as &dyn MetricsHook))
    }));
    match result {
        Ok(Ok(len)) => Ok(len),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "filesystem panicked: {}",
            panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("?")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_references() {
        assert!(!expects_reply(Opcode::Forget as u32));
        assert!(!expects_reply(Opcode::BatchForget as u32));
        assert!(expects_reply(Opcode::Lookup as u32));
        assert!(expects_reply(Opcode::Destroy as u32));
        assert!(reference_reply_len(Opcode::Lookup as u32).unwrap() > OUT_HEADER_LEN);
        assert!(
            reference_reply_len(Opcode::Create as u32) > reference_reply_len(Opcode::Mkdir as u32)
        );
        assert_eq!(reference_reply_len(Opcode::Read as u32), None);
        let h = error_header(9, libc::EIO);
        assert_eq!(
            (h.unique, h.error, h.len as usize),
            (9, -libc::EIO, OUT_HEADER_LEN)
        );
    }
}
