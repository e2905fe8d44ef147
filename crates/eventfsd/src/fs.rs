//! FUSE semantics: fuse-backend-rs's `FileSystem` over an eventfs-core [`Tree`].
//!
//! This layer only translates: node identity, lookup counts and content come from the tree,
//! control-file semantics from a [`ControlFiles`] source. It is used directly by the server (not
//! through `Vfs`, which refuses the second INIT that a rebooted guest sends).

use std::ffi::CStr;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// How long an rmdir that finds files open waits for the RELEASEs of files the guest has
/// just closed (FUSE sends them after close() returns) before it answers EBUSY.
const RELEASE_GRACE: Duration = Duration::from_millis(300);

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64, CreateIn};
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry as FuseDirEntry, Entry, FileSystem, FsOptions, OpenOptions, SetattrValid,
    ZeroCopyReader, ZeroCopyWriter,
};

use eventfs_core::control::{ControlFiles, OpenFlags, MAX_CONTROL_WRITE};
use eventfs_core::layout::DirKind;
use eventfs_core::{Attr, FsError, NodeKind, SetAttr, Tree};

use crate::stats::Stats;

/// How long the guest may cache what we tell it.
#[derive(Copy, Clone, Debug)]
pub struct CachePolicy {
    /// Entry/attr timeout of nodes that never change (static catalog events and their files).
    pub static_timeout: Duration,
    /// Entry/attr timeout of nodes that may come and go (dynamic events, host-changing parts).
    pub dynamic_timeout: Duration,
    /// Whether directory listings can change behind the guest's back (events added or removed
    /// by the daemon, as the host source's rescan does). Then `events/` and the systems get the
    /// short attribute timeout, so that the guest notices their new mtime and re-reads the
    /// listing it caches: see [`EventFs::opendir`].
    pub external_dir_changes: bool,
    /// Entry/attr timeout of dynamic events (made at run time by a write elsewhere, so the
    /// guest's dentries cannot follow their removal).
    pub runtime_event_timeout: Duration,
    /// Whether the guest can add systems to `events/` with its own writes (dynamic events:
    /// `echo 'p ...' > uprobe_events` makes `events/uprobes/`). FUSE over virtio-fs has no
    /// invalidation to send, so `events/` then keeps the short attribute timeout too.
    pub guest_adds_systems: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            static_timeout: Duration::from_secs(24 * 3600),
            dynamic_timeout: Duration::from_secs(1),
            external_dir_changes: true,
            runtime_event_timeout: Duration::from_secs(1),
            guest_adds_systems: true,
        }
    }
}

impl CachePolicy {
    /// For a tree whose listings only the guest changes (the catalog source).
    pub fn frozen_listings() -> Self {
        CachePolicy {
            external_dir_changes: false,
            // Dynamic events the guest makes or removes through `uprobe_events` are not cached
            // at all: a removal must show before the next command, as on tracefs, and
            // virtio-fs has no invalidation to send. (`events/` itself keeps the short
            // timeout: with none, the guest kernel re-validates every entry below it on each
            // walk; a new group shows in its listing within a second, by name at once.)
            runtime_event_timeout: Duration::ZERO,
            ..CachePolicy::default()
        }
    }
}

/// The filesystem served to the guest.
pub struct EventFs {
    tree: Arc<Tree>,
    control: Arc<dyn ControlFiles>,
    stats: Arc<Stats>,
    policy: CachePolicy,
    /// This session answers OPENDIR with ENOSYS (the kernel then sends no OPENDIR/RELEASEDIR
    /// and caches every listing): set at INIT when the policy and the kernel allow it.
    no_opendir: AtomicBool,
    /// `--readonly`: every change is refused with EROFS, as on a read-only mount.
    read_only: bool,
}

/// A guest-supplied name as UTF-8, length-checked before anything else looks at it.
fn name_str(name: &CStr) -> Result<&str, FsError> {
    let bytes = name.to_bytes();
    if bytes.len() > eventfs_core::catalog::NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    std::str::from_utf8(bytes).map_err(|_| FsError::Invalid("name is not UTF-8".into()))
}

impl EventFs {
    /// Serves `tree` with control semantics from `control`.
    pub fn new(
        tree: Arc<Tree>,
        control: Arc<dyn ControlFiles>,
        stats: Arc<Stats>,
        policy: CachePolicy,
    ) -> Self {
        EventFs {
            tree,
            control,
            stats,
            policy,
            no_opendir: AtomicBool::new(false),
            read_only: false,
        }
    }

    /// Serves the tree read-only (libvirt's `<readonly/>`): opens for writing, writes,
    /// truncation, attribute changes, mkdir and rmdir fail with EROFS.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// EROFS (counted and logged like any error) when the tree is served read-only.
    fn check_writable(&self) -> io::Result<()> {
        match self.read_only {
            true => Err(self.fail(FsError::Os(libc::EROFS))),
            false => Ok(()),
        }
    }

    /// Turns a failure into the reply errno, counting it.
    fn fail(&self, e: FsError) -> io::Error {
        self.stats.errors.fetch_add(1, Relaxed);
        io::Error::from_raw_os_error(e.errno())
    }

    /// The tree being served.
    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    fn timeout(&self, attr: &Attr) -> Duration {
        if !attr.node.dynamic {
            self.policy.static_timeout
        } else if self.tree.is_runtime_event(attr.node.dir) {
            self.policy.runtime_event_timeout
        } else {
            self.policy.dynamic_timeout
        }
    }

    /// Whether a directory's listing may change while the guest caches it: behind its back
    /// (the host source's rescan adds and removes systems and events), or through its own
    /// writes to a file elsewhere (dynamic events).
    fn listing_may_change(&self, attr: &Attr) -> bool {
        match attr.node.kind {
            NodeKind::Dir(DirKind::EventsRoot) => {
                self.policy.external_dir_changes || self.policy.guest_adds_systems
            }
            // A system the guest made (a dynamic event's group) gets events the same way.
            NodeKind::Dir(DirKind::System) => {
                self.policy.external_dir_changes
                    || (self.policy.guest_adds_systems && attr.node.dynamic)
            }
            _ => false,
        }
    }

    /// How long the guest may trust the attributes. A directory whose listing may change
    /// keeps its entry but has its attributes re-read after the short timeout: its mtime
    /// says whether the listing the guest cached is still good (see `opendir`).
    fn attr_timeout(&self, attr: &Attr) -> Duration {
        self.attr_timeout_given(attr, || self.timeout(attr))
    }

    /// [`Self::attr_timeout`] for a caller that may already know the entry timeout (which,
    /// for a dynamic node, takes a tree lookup).
    fn attr_timeout_given(&self, attr: &Attr, timeout: impl FnOnce() -> Duration) -> Duration {
        if self.listing_may_change(attr) {
            self.policy.dynamic_timeout
        } else {
            timeout()
        }
    }

    fn stat(&self, attr: &Attr) -> stat64 {
        // SAFETY: stat64 is plain old data; all-zero is a valid value.
        let mut st: stat64 = unsafe { std::mem::zeroed() };
        let file_type = match attr.node.kind {
            NodeKind::Dir(_) => libc::S_IFDIR,
            NodeKind::File(_) => libc::S_IFREG,
        };
        st.st_ino = attr.node.ino;
        st.st_mode = file_type | u32::from(attr.perm);
        st.st_nlink = attr.nlink.into();
        st.st_uid = attr.uid;
        st.st_gid = attr.gid;
        st.st_size = attr.size as i64;
        st.st_blksize = 4096;
        st.st_blocks = attr.size.div_ceil(512) as i64;
        let created = self
            .tree
            .created()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let modified = attr.mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        st.st_atime = created.as_secs() as i64;
        st.st_atime_nsec = i64::from(created.subsec_nanos());
        st.st_mtime = modified.as_secs() as i64;
        st.st_mtime_nsec = i64::from(modified.subsec_nanos());
        st.st_ctime = st.st_mtime;
        st.st_ctime_nsec = st.st_mtime_nsec;
        st
    }

    fn entry(&self, attr: &Attr) -> Entry {
        let timeout = self.timeout(attr);
        Entry {
            inode: attr.node.ino,
            generation: attr.generation,
            attr: self.stat(attr),
            attr_flags: 0,
            attr_timeout: self.attr_timeout_given(attr, || timeout),
            entry_timeout: timeout,
        }
    }

    /// Copies `content[offset..offset+size]` into the guest's buffer.
    fn copy_out(
        &self,
        w: &mut dyn ZeroCopyWriter,
        content: &[u8],
        size: u32,
        offset: u64,
    ) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let end = start.saturating_add(size as usize).min(content.len());
        w.write_all(&content[start..end])?;
        self.stats
            .bytes_read
            .fetch_add((end - start) as u64, Relaxed);
        Ok(end - start)
    }

    fn do_readdir(
        &self,
        inode: u64,
        offset: u64,
        plus: bool,
        add: &mut dyn FnMut(FuseDirEntry<'_>, &Attr) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.control.observe(&self.tree);
        let mut result = Ok(());
        self.tree
            .readdir(inode, offset, &mut |e| {
                let type_ = match e.attr.node.kind {
                    NodeKind::Dir(_) => libc::DT_DIR,
                    NodeKind::File(_) => libc::DT_REG,
                };
                let dirent = FuseDirEntry {
                    ino: e.attr.node.ino,
                    offset: e.next_offset,
                    type_: u32::from(type_),
                    name: e.name,
                };
                // readdirplus hands out a reference for every real entry; count it before the
                // kernel can see it and undo it if the entry did not fit.
                let counted = plus && !e.is_dot;
                if counted {
                    self.tree.remember(e.attr.node.ino);
                }
                match add(dirent, &e.attr) {
                    Ok(0) => {
                        if counted {
                            self.tree.forget(e.attr.node.ino, 1);
                        }
                        false
                    }
                    Ok(_) => true,
                    Err(err) => {
                        if counted {
                            self.tree.forget(e.attr.node.ino, 1);
                        }
                        result = Err(err);
                        false
                    }
                }
            })
            .map_err(|e| self.fail(e))?;
        result
    }
}

impl FileSystem for EventFs {
    type Inode = u64;
    type Handle = u64;

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        // A guest that rebooted sends INIT without DESTROY: everything it looked up is gone.
        self.tree.reset();
        self.control.reset();
        self.stats.open_handles.store(0, Relaxed);
        self.stats.sessions.fetch_add(1, Relaxed);
        log::info!("FUSE session started (INIT); lookup state reset");
        let want = FsOptions::ASYNC_READ
            | FsOptions::BIG_WRITES
            | FsOptions::MAX_PAGES
            | FsOptions::PARALLEL_DIROPS
            // Always READDIRPLUS, not READDIRPLUS_AUTO: with AUTO the kernel asks for attributes
            // only at offset 0 and continues big directories (more than one reply buffer, a page
            // on 6.1) with plain READDIR, so each of their later entries costs a LOOKUP at the
            // next stat. Attributes cost us nothing extra, and a counted entry about 20 bytes.
            | FsOptions::DO_READDIRPLUS
            | FsOptions::ATOMIC_O_TRUNC
            | FsOptions::AUTO_INVAL_DATA;
        // Directories need no OPENDIR round trip at all: with NO_OPENDIR_SUPPORT, an ENOSYS
        // reply to the first OPENDIR makes the kernel stop sending OPENDIR and RELEASEDIR and
        // open every directory as FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR (fs/fuse/file.c,
        // fuse_file_open), which is what `opendir` answers anyway.
        let no_opendir = capable.contains(FsOptions::ZERO_MESSAGE_OPENDIR);
        self.no_opendir.store(no_opendir, Relaxed);
        let want = if no_opendir {
            want | FsOptions::ZERO_MESSAGE_OPENDIR
        } else {
            want
        };
        Ok(capable & want)
    }

    fn destroy(&self) {
        // The guest stops sending FORGETs before DESTROY; drop its references ourselves.
        self.tree.reset();
        self.control.reset();
        self.stats.open_handles.store(0, Relaxed);
        log::info!("FUSE session ended (DESTROY)");
    }

    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        self.control.observe(&self.tree);
        let attr = self
            .tree
            .lookup(parent, name.to_bytes())
            .map_err(|e| self.fail(e))?;
        Ok(self.entry(&attr))
    }

    fn forget(&self, _ctx: &Context, inode: u64, count: u64) {
        if !self.tree.forget(inode, count) {
            self.stats.over_forgets.fetch_add(1, Relaxed);
            log::debug!("FORGET of {inode:#x} by {count}: more than was looked up");
        }
    }

    fn batch_forget(&self, ctx: &Context, requests: Vec<(u64, u64)>) {
        for (inode, count) in requests {
            self.forget(ctx, inode, count);
        }
    }

    fn getattr(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: Option<u64>,
    ) -> io::Result<(stat64, Duration)> {
        self.control.observe(&self.tree);
        let attr = self.tree.getattr(inode).map_err(|e| self.fail(e))?;
        Ok((self.stat(&attr), self.attr_timeout(&attr)))
    }

    fn setattr(
        &self,
        _ctx: &Context,
        inode: u64,
        attr: stat64,
        _handle: Option<u64>,
        valid: SetattrValid,
    ) -> io::Result<(stat64, Duration)> {
        self.check_writable()?;
        let change = SetAttr {
            mode: valid.contains(SetattrValid::MODE).then_some(attr.st_mode),
            uid: valid.contains(SetattrValid::UID).then_some(attr.st_uid),
            gid: valid.contains(SetattrValid::GID).then_some(attr.st_gid),
        };
        // Truncating a control file is how `echo >` looks without ATOMIC_O_TRUNC; tracefs
        // accepts it as a no-op, and times are not kept, so both are accepted silently.
        let node = self.tree.node(inode).map_err(|e| self.fail(e))?;
        if valid.contains(SetattrValid::SIZE) {
            match node.kind {
                NodeKind::File(kind) if !kind.is_immutable() => {
                    let flags = OpenFlags {
                        write: true,
                        truncate: true,
                        ..OpenFlags::default()
                    };
                    let handle = self.control.open(&self.tree, node, flags);
                    self.control.release(handle.map_err(|e| self.fail(e))?);
                }
                NodeKind::File(_) => return Err(self.fail(FsError::Os(libc::EACCES))),
                NodeKind::Dir(_) => return Err(self.fail(FsError::Os(libc::EISDIR))),
            }
        }
        let attr = if change.mode.is_some() || change.uid.is_some() || change.gid.is_some() {
            self.tree.setattr(inode, change).map_err(|e| self.fail(e))?
        } else {
            self.tree.getattr(inode).map_err(|e| self.fail(e))?
        };
        Ok((self.stat(&attr), self.attr_timeout(&attr)))
    }

    fn open(
        &self,
        _ctx: &Context,
        inode: u64,
        flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        self.control.observe(&self.tree);
        let node = self.tree.node(inode).map_err(|e| self.fail(e))?;
        let NodeKind::File(kind) = node.kind else {
            return Err(self.fail(FsError::Os(libc::EISDIR)));
        };
        let flags = OpenFlags::from_bits(flags as i32);
        if flags.write {
            self.check_writable()?;
        }
        let (handle, opts) = if kind.is_immutable() {
            if flags.write {
                return Err(self.fail(FsError::Os(libc::EACCES)));
            }
            // Content and size are fixed for the node's lifetime: let the page cache keep it.
            (0, OpenOptions::KEEP_CACHE)
        } else {
            let handle = self
                .control
                .open(&self.tree, node, flags)
                .map_err(|e| self.fail(e))?;
            // Every read and write of a control file must reach us; size 0 would otherwise
            // make the page cache return nothing. A stream (trace_pipe) has no offsets.
            let opts = if kind.is_text_pipe() {
                OpenOptions::DIRECT_IO | OpenOptions::NONSEEKABLE | OpenOptions::STREAM
            } else {
                OpenOptions::DIRECT_IO
            };
            (handle, opts)
        };
        self.stats.open_handles.fetch_add(1, Relaxed);
        Ok((Some(handle), opts, None))
    }

    fn create(
        &self,
        _ctx: &Context,
        _parent: u64,
        _name: &CStr,
        _args: CreateIn,
    ) -> io::Result<(Entry, Option<u64>, OpenOptions, Option<u32>)> {
        self.check_writable()?;
        Err(self.fail(FsError::Os(libc::EPERM)))
    }

    fn read(
        &self,
        _ctx: &Context,
        inode: u64,
        handle: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        flags: u32,
    ) -> io::Result<usize> {
        let node = self
            .tree
            .node(inode)
            .map_err(|e| self.fail(e.for_open_handle()))?;
        let NodeKind::File(kind) = node.kind else {
            return Err(self.fail(FsError::Os(libc::EISDIR)));
        };
        if kind.is_immutable() {
            self.tree
                .with_static_content(inode, |content| self.copy_out(w, content, size, offset))
                .map_err(|e| self.fail(e.for_open_handle()))?
        } else {
            let content = self
                .control
                .read(
                    &self.tree,
                    node,
                    handle,
                    offset,
                    size,
                    OpenFlags::from_bits(flags as i32).nonblock,
                )
                .map_err(|e| self.fail(e.for_open_handle()))?;
            self.copy_out(w, &content, size, 0)
        }
    }

    fn write(
        &self,
        _ctx: &Context,
        inode: u64,
        handle: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        _offset: u64,
        _lock_owner: Option<u64>,
        _delayed_write: bool,
        _flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<usize> {
        // A hostile guest may send WRITE on a handle it never opened for writing.
        self.check_writable()?;
        let node = self
            .tree
            .node(inode)
            .map_err(|e| self.fail(e.for_open_handle()))?;
        if size as usize > MAX_CONTROL_WRITE {
            log::info!("write of {size} bytes to {inode:#x} refused: over {MAX_CONTROL_WRITE}");
            return Err(self.fail(FsError::Invalid("write too large".into())));
        }
        let mut data = vec![0u8; size as usize];
        r.read_exact(&mut data)?;
        let written = self
            .control
            .write(&self.tree, node, handle, &data)
            .map_err(|e| {
                log::debug!("write to {inode:#x} refused: {e}");
                self.fail(e.for_open_handle())
            })?;
        self.stats.bytes_written.fetch_add(written as u64, Relaxed);
        Ok(written)
    }

    fn flush(&self, _ctx: &Context, _inode: u64, _handle: u64, _lock_owner: u64) -> io::Result<()> {
        // Nothing is buffered (control files are direct I/O, the rest read-only), so FLUSH has
        // nothing to do. ENOSYS makes the kernel stop sending it (fc->no_flush): one round trip
        // less for every close(). Not counted as an error.
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    fn fsync(&self, _ctx: &Context, _inode: u64, _datasync: bool, _handle: u64) -> io::Result<()> {
        Ok(())
    }

    fn release(
        &self,
        _ctx: &Context,
        _inode: u64,
        _flags: u32,
        handle: u64,
        _flush: bool,
        _flock_release: bool,
        _lock_owner: Option<u64>,
    ) -> io::Result<()> {
        if handle != 0 {
            self.control.release(handle);
        }
        self.stats.closed();
        Ok(())
    }

    fn statfs(&self, _ctx: &Context, _inode: u64) -> io::Result<statvfs64> {
        // SAFETY: statvfs64 is plain old data; all-zero is a valid value.
        let mut st: statvfs64 = unsafe { std::mem::zeroed() };
        st.f_bsize = 4096;
        st.f_frsize = 4096;
        st.f_namemax = 255;
        if self.read_only {
            st.f_flag |= libc::ST_RDONLY;
        }
        Ok(st)
    }

    fn opendir(
        &self,
        _ctx: &Context,
        inode: u64,
        _flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions)> {
        if self.no_opendir.load(Relaxed) {
            // See `init`: from now on the kernel opens directories by itself.
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        let node = self.tree.node(inode).map_err(|e| self.fail(e))?;
        if !matches!(node.kind, NodeKind::Dir(_)) {
            return Err(self.fail(FsError::Os(libc::ENOTDIR)));
        }
        // Every listing may be cached. The guest's kernel invalidates a cached listing on its
        // own mkdir/rmdir (fuse_dir_changed bumps the directory's i_version); an event
        // directory's files never change; and `events/` and the systems, whose listings the
        // host source's rescan changes, get a new mtime with each change, which the guest
        // re-reads after their short attribute timeout and compares with the cached listing's
        // before using it (fuse_readdir_cached, with AUTO_INVAL_DATA).
        let opts = OpenOptions::CACHE_DIR | OpenOptions::KEEP_CACHE;
        Ok((None, opts))
    }

    fn readdir(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        _size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(FuseDirEntry<'_>) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.do_readdir(inode, offset, false, &mut |dirent, _| add_entry(dirent))
    }

    fn readdirplus(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        _size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(FuseDirEntry<'_>, Entry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.do_readdir(inode, offset, true, &mut |dirent, attr| {
            let entry = if dirent.name == b"." || dirent.name == b".." {
                // The kernel ignores `.`/`..` here and takes no reference; node id 0 says so.
                Entry {
                    inode: 0,
                    ..Entry::default()
                }
            } else {
                self.entry(attr)
            };
            add_entry(dirent, entry)
        })
    }

    fn fsyncdir(
        &self,
        _ctx: &Context,
        _inode: u64,
        _datasync: bool,
        _handle: u64,
    ) -> io::Result<()> {
        Ok(())
    }

    fn releasedir(&self, _ctx: &Context, _inode: u64, _flags: u32, _handle: u64) -> io::Result<()> {
        Ok(())
    }

    fn access(&self, _ctx: &Context, inode: u64, _mask: u32) -> io::Result<()> {
        self.tree.node(inode).map(|_| ()).map_err(|e| self.fail(e))
    }

    fn mkdir(
        &self,
        _ctx: &Context,
        parent: u64,
        name: &CStr,
        _mode: u32,
        _umask: u32,
    ) -> io::Result<Entry> {
        self.check_writable()?;
        let node = self.tree.node(parent).map_err(|e| self.fail(e))?;
        let name = name_str(name).map_err(|e| self.fail(e))?;
        self.control
            .mkdir(&self.tree, node, name)
            .map_err(|e| self.fail(e))?;
        let attr = self
            .tree
            .lookup(parent, name.as_bytes())
            .map_err(|e| self.fail(e))?;
        Ok(self.entry(&attr))
    }

    fn mknod(
        &self,
        _ctx: &Context,
        _parent: u64,
        _name: &CStr,
        _mode: u32,
        _rdev: u32,
        _umask: u32,
    ) -> io::Result<Entry> {
        Err(self.fail(FsError::Os(libc::EPERM)))
    }

    fn unlink(&self, _ctx: &Context, _parent: u64, _name: &CStr) -> io::Result<()> {
        Err(self.fail(FsError::Os(libc::EPERM)))
    }

    fn rmdir(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        self.check_writable()?;
        let node = self.tree.node(parent).map_err(|e| self.fail(e))?;
        let name = name_str(name).map_err(|e| self.fail(e))?;
        // A guest's close() returns before FUSE delivers its RELEASE, so a `close; rmdir`
        // (trace-cmd ending `record -B`) can find a file of the instance still open here:
        // while handles are open, give the RELEASEs in flight a moment before answering EBUSY.
        let deadline = Instant::now() + RELEASE_GRACE;
        loop {
            match self.control.rmdir(&self.tree, node, name) {
                Err(FsError::Busy | FsError::Os(libc::EBUSY))
                    if Instant::now() < deadline && self.stats.open_handles.load(Relaxed) > 0 =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result => return result.map_err(|e| self.fail(e)),
            }
        }
    }
}
