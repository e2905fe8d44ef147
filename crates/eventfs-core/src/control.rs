//! The seam between the tree and an event source: [`ControlFiles`].
//!
//! The tree knows which files exist and serves the immutable ones (`format`, `id`, headers)
//! itself; everything a read or write of any other file means (`enable`, `filter`, `trace` ...)
//! belongs to the source behind this trait, as the kernel's eventfs leaves it to
//! `kernel/trace/trace_events*.c`.

use crate::error::FsError;
use crate::tree::{NodeRef, Tree};

/// Longest write the kernel accepts into a control file (it refuses `cnt >= PAGE_SIZE`).
pub const MAX_CONTROL_WRITE: usize = 4095;

/// How a control file is opened.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// `O_TRUNC` was given (`echo > file`).
    pub truncate: bool,
    /// `O_NONBLOCK` was given (reads of `trace_pipe` must not wait).
    pub nonblock: bool,
}

impl OpenFlags {
    /// Decodes `open(2)` flags.
    pub fn from_bits(flags: i32) -> OpenFlags {
        let mode = flags & libc::O_ACCMODE;
        OpenFlags {
            read: mode == libc::O_RDONLY || mode == libc::O_RDWR,
            write: mode == libc::O_WRONLY || mode == libc::O_RDWR,
            truncate: flags & libc::O_TRUNC != 0,
            nonblock: flags & libc::O_NONBLOCK != 0,
        }
    }
}

/// Semantics of the non-static files of a tree, provided by an event source.
pub trait ControlFiles: Send + Sync {
    /// Opens a control file. Returns a handle the source may use for per-open state (a `trace`
    /// snapshot, a `trace_pipe` reader); 0 when it keeps none.
    fn open(&self, tree: &Tree, node: NodeRef, flags: OpenFlags) -> Result<u64, FsError>;
    /// Reads up to `size` bytes at `offset`. May block for files like `trace_pipe`, unless
    /// `nonblock`: the file's `O_NONBLOCK` as of this read (set with fcntl after open, as
    /// trace-cmd does when it stops recording).
    fn read(
        &self,
        tree: &Tree,
        node: NodeRef,
        handle: u64,
        offset: u64,
        size: u32,
        nonblock: bool,
    ) -> Result<Vec<u8>, FsError>;
    /// Applies one write (one `echo`); returns the number of bytes consumed.
    fn write(&self, tree: &Tree, node: NodeRef, handle: u64, data: &[u8])
        -> Result<usize, FsError>;
    /// The handle is closed.
    fn release(&self, handle: u64) {
        let _ = handle;
    }
    /// `mkdir` in a directory of the tree (instances).
    fn mkdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        let _ = (tree, parent, name);
        Err(FsError::Os(libc::EPERM))
    }
    /// `rmdir` in a directory of the tree (instances).
    fn rmdir(&self, tree: &Tree, parent: NodeRef, name: &str) -> Result<(), FsError> {
        let _ = (tree, parent, name);
        Err(FsError::Os(libc::EPERM))
    }
    /// The guest is about to look at `tree` (a lookup, an attribute, a listing or an open). A
    /// source whose events change behind the guest's back brings the tree up to date here,
    /// cheaply and at the pace it chooses; an idle guest then costs it nothing.
    fn observe(&self, tree: &Tree) {
        let _ = tree;
    }
    /// A new client session starts (FUSE INIT/DESTROY): drop per-open state and wake any
    /// blocked reader, whose requests the old session will never see answered.
    fn reset(&self) {}
}

/// Content `content[offset..offset+size]`, as a read of a whole-file snapshot returns it.
pub fn slice_at(content: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(content.len());
    let end = start.saturating_add(size as usize).min(content.len());
    content[start..end].to_vec()
}
