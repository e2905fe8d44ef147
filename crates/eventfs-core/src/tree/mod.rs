//! The metadata tree: directories only, files implied by the static tables in [`crate::layout`].
//!
//! [`meta`] keeps the per-directory records, [`ino`] turns them into stable inode numbers,
//! this module answers lookups, attributes and listings, and [`query`] serves the sources
//! (names, events below a directory, run-time additions and removals).

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use crate::catalog::{valid_name, CatalogProblem, RawCatalog, Span, NAME_MAX};
use crate::error::FsError;
use crate::layout::{all_files, DirKind, FileKind, MAX_FILES_PER_DIR};
use crate::lookups::LookupCounts;

mod ino;
mod meta;
mod query;

use ino::{decode_ino, encode_ino, EVENTS_DIR, INSTANCES_DIR, OPTIONS_DIR, ROOT_DIR};
pub use ino::{DirId, Ino, ROOT_INO};

use meta::{Children, DirMeta, Meta, Text, DYNAMIC, LIVE};

/// Readdir positions: 0 is `.`, 1 is `..`, then one position per file-table row, then one per
/// child directory keyed by its creation sequence, so cookies survive concurrent add/remove.
const FIRST_FILE_POS: u64 = 2;
const FIRST_CHILD_POS: u64 = FIRST_FILE_POS + MAX_FILES_PER_DIR as u64;

/// Where the catalog image bytes live.
pub enum Image {
    /// Compiled into the binary.
    Static(&'static [u8]),
    /// Loaded at run time.
    Owned(Box<[u8]>),
    /// A read-only file mapping: its pages are shared with every process that maps the same
    /// file (as the binary's are), so daemons serving the same image pay for it once.
    Mapped(std::sync::Arc<memmap2::Mmap>),
}

impl Image {
    /// Maps `file` read-only. The caller guarantees nobody changes the file in place while it
    /// is mapped (replacing it by a rename is fine: the mapping keeps the old inode).
    pub fn map(file: &std::fs::File) -> std::io::Result<Image> {
        // SAFETY: read-only mapping of a file its writers only ever replace, never modify
        // (documented precondition); the bytes are validated like any other image.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Image::Mapped(std::sync::Arc::new(map)))
    }
}

impl Clone for Image {
    fn clone(&self) -> Image {
        match self {
            Image::Static(bytes) => Image::Static(bytes),
            Image::Owned(bytes) => Image::Owned(bytes.clone()),
            Image::Mapped(map) => Image::Mapped(map.clone()),
        }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Image::Static(_) => "static",
            Image::Owned(_) => "owned",
            Image::Mapped(_) => "mapped",
        };
        write!(f, "Image({kind}, {} bytes)", self.len())
    }
}

impl std::ops::Deref for Image {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Image::Static(bytes) => bytes,
            Image::Owned(bytes) => bytes,
            Image::Mapped(map) => map,
        }
    }
}

/// Settings applied to every node.
#[derive(Copy, Clone, Debug)]
pub struct TreeConfig {
    /// Owner of every node unless chown'ed.
    pub uid: u32,
    /// Group of every node unless chown'ed.
    pub gid: u32,
    /// Number of `per_cpu/cpuN/` directories (at least 1, at most
    /// [`crate::layout::MAX_CPUS`]).
    pub cpus: u32,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            uid: 0,
            gid: 0,
            cpus: 1,
        }
    }
}

/// What a node is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory of the given kind.
    Dir(DirKind),
    /// A file of the given kind.
    File(FileKind),
}

/// A resolved, live node.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// Its inode number.
    pub ino: Ino,
    /// The directory it is, or the directory it is a file of.
    pub dir: DirId,
    /// What it is.
    pub kind: NodeKind,
    /// Added at run time (dynamic events): clients should cache it only briefly.
    pub dynamic: bool,
}

impl NodeRef {
    /// Inode number of the directory this node is or belongs to, without taking the tree lock
    /// (a file's number is its directory's with the file slot added).
    pub fn dir_ino(&self) -> Ino {
        if self.dir == ROOT_DIR {
            ROOT_INO
        } else {
            self.ino & !0xff
        }
    }
}

/// Attributes of a node, computed from the metadata.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// The node.
    pub node: NodeRef,
    /// Generation, for FUSE entries.
    pub generation: u64,
    /// Permission bits (no file type bits).
    pub perm: u16,
    /// Link count: 2 + child directories for directories, 1 for files.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Real size for immutable files, 0 for control files and directories (as tracefs).
    pub size: u64,
    /// Modification time: the tree's creation, or for a directory the last run-time change
    /// of its listing.
    pub mtime: SystemTime,
}

/// One readdir entry.
#[derive(Debug)]
pub struct DirEntry<'a> {
    /// Entry name.
    pub name: &'a [u8],
    /// Cookie that resumes after this entry.
    pub next_offset: u64,
    /// Attributes of the entry (`.` and `..` carry their directories' attributes).
    pub attr: Attr,
    /// True for `.` and `..`, which readdirplus must not count as lookups.
    pub is_dot: bool,
}

/// Changes requested by setattr.
#[derive(Copy, Clone, Debug, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
}

/// Description of an event to add at run time.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    /// System name (created if missing).
    pub system: &'a str,
    /// Event name.
    pub name: &'a str,
    /// Event id.
    pub id: u32,
    /// Presence bitmask over [`crate::layout::EVENT_FILES`].
    pub files: u64,
    /// The `format` text.
    pub format: &'a str,
}

/// The event tree: metadata for every directory plus lookup counts for materialised nodes.
pub struct Tree {
    image: Image,
    meta: RwLock<Meta>,
    lookups: LookupCounts,
    header_page: Span,
    header_event: Span,
    kernel_release: Span,
    readme: RootText,
    available_tracers: RootText,
    trace_clock: Span,
    /// `available_filter_functions`.
    functions: Span,
    /// Default values of the trace options (bit per row of [`crate::layout::OPTIONS`]).
    option_defaults: u64,
    config: TreeConfig,
    created: SystemTime,
}

/// `README` or `available_tracers`: the image's text, or one a source put in its place.
enum RootText {
    Image(Span),
    Owned(Box<[u8]>),
}

impl RootText {
    fn get<'a>(&'a self, image: &'a [u8]) -> &'a [u8] {
        match self {
            RootText::Image(span) => span.get(image),
            RootText::Owned(bytes) => bytes,
        }
    }
}

/// Writes `n` in decimal plus a newline into `buf`, returning the used part (no allocation).
pub fn decimal_line(n: u32, buf: &mut [u8; 11]) -> &[u8] {
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

impl Tree {
    /// Builds the tree from the embedded catalog.
    pub fn embedded(config: TreeConfig) -> Tree {
        Tree::from_image(Image::Static(crate::catalog::EMBEDDED), config)
            .expect("the embedded catalog is validated by the test suite")
    }

    /// Builds the tree from a catalog image (validated here).
    pub fn from_image(image: Image, config: TreeConfig) -> Result<Tree, CatalogProblem> {
        let raw = RawCatalog::parse(&image)?;
        let mut meta = Meta {
            dirs: Vec::new(),
            free_dirs: Vec::new(),
            strings: Vec::new(),
            free_strings: Vec::new(),
            overrides: HashMap::new(),
            next_seq: 0,
            changed: HashMap::new(),
        };
        let plain_dir = |kind, parent, seq| DirMeta {
            name: Text::EMPTY,
            format: Text::EMPTY,
            event_id: 0,
            parent,
            seq,
            generation: 0,
            kind,
            flags: LIVE,
            files: all_files(kind.files()),
            children: None,
        };
        meta.dirs.push(plain_dir(DirKind::Root, ROOT_DIR, 0));
        meta.dirs[ROOT_DIR as usize].children = Some(Box::default());
        for (expected, name, kind) in [
            (EVENTS_DIR, "events", DirKind::EventsRoot),
            (INSTANCES_DIR, "instances", DirKind::Instances),
            (OPTIONS_DIR, "options", DirKind::Options),
        ] {
            let text = meta.own(name);
            let files = if kind == DirKind::Options {
                raw.options
            } else {
                all_files(kind.files())
            };
            let dir = meta.add_dir(&image, ROOT_DIR, text, kind, files);
            // Fixed parts of the tree, although their names are owned strings.
            meta.dirs[dir as usize].flags = LIVE;
            debug_assert_eq!(dir, expected);
        }
        meta.add_per_cpu(&image, ROOT_DIR, config.cpus.max(1));
        meta.dirs
            .reserve(raw.systems.len() + raw.systems.iter().map(|s| s.events.len()).sum::<usize>());

        let mut systems = Vec::with_capacity(raw.systems.len());
        for raw_system in &raw.systems {
            let seq = meta.next_seq();
            let system = meta.alloc_dir(DirMeta {
                name: Text::image(raw_system.name),
                files: u64::from(raw_system.files),
                ..plain_dir(DirKind::System, EVENTS_DIR, seq)
            });
            systems.push(system);
            let mut children = Children {
                by_seq: Vec::with_capacity(raw_system.events.len()),
                by_name: Vec::new(),
            };
            for raw_event in &raw_system.events {
                let seq = meta.next_seq();
                let event = meta.alloc_dir(DirMeta {
                    name: Text::image(raw_event.name),
                    format: Text::image(raw_event.format),
                    event_id: raw_event.id,
                    files: u64::from(raw_event.files),
                    ..plain_dir(DirKind::Event, system, seq)
                });
                children.by_seq.push(event);
            }
            children.by_name = children.by_seq.clone();
            children.by_name.sort_by(|&a, &b| {
                meta.text(&image, meta.dirs[a as usize].name)
                    .cmp(meta.text(&image, meta.dirs[b as usize].name))
            });
            meta.dirs[system as usize].children = Some(Box::new(children));
        }
        let mut by_name = systems.clone();
        by_name.sort_by(|&a, &b| {
            meta.text(&image, meta.dirs[a as usize].name)
                .cmp(meta.text(&image, meta.dirs[b as usize].name))
        });
        meta.dirs[EVENTS_DIR as usize].children = Some(Box::new(Children {
            by_seq: systems,
            by_name,
        }));
        // The build itself is no change: a listing's mtime moves only after it.
        meta.changed.clear();
        Ok(Tree {
            image,
            meta: RwLock::new(meta),
            lookups: LookupCounts::default(),
            header_page: raw.header_page,
            header_event: raw.header_event,
            kernel_release: raw.kernel_release,
            readme: RootText::Image(raw.readme),
            available_tracers: RootText::Image(raw.available_tracers),
            trace_clock: raw.trace_clock,
            functions: raw.functions,
            option_defaults: raw.option_defaults,
            config,
            created: SystemTime::now(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Meta> {
        // Metadata updates are written so that a panic cannot leave them half-done in a way
        // that breaks readers; keep serving after a poisoned lock.
        self.meta.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Meta> {
        self.meta.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Time reported as atime/mtime/ctime of every node.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// The catalog image bytes (for reporting its size).
    pub fn image_len(&self) -> usize {
        self.image.len()
    }

    fn node_ref(meta: &Meta, ino: Ino) -> Result<NodeRef, FsError> {
        let (dir, generation, slot) = decode_ino(ino).ok_or(FsError::NotFound)?;
        let d = meta.live(dir, generation).ok_or(FsError::Removed)?;
        let kind = if slot == 0 {
            NodeKind::Dir(d.kind)
        } else {
            let slot = usize::from(slot - 1);
            if !d.kind.has_file(d.files, slot) {
                return Err(FsError::NotFound);
            }
            NodeKind::File(d.kind.files()[slot].kind)
        };
        Ok(NodeRef {
            ino,
            dir,
            kind,
            dynamic: d.flags & DYNAMIC != 0,
        })
    }

    fn attr_of(&self, meta: &Meta, node: NodeRef) -> Attr {
        let d = &meta.dirs[node.dir as usize];
        let (perm, nlink, size) = match node.kind {
            NodeKind::Dir(kind) => {
                let subdirs = d.children.as_ref().map_or(0, |c| c.by_seq.len() as u32);
                (kind.mode(), 2 + subdirs, 0)
            }
            NodeKind::File(kind) => {
                let slot = (node.ino as u8 - 1) as usize;
                let perm = d.kind.files()[slot].mode;
                let size = if kind.is_immutable() {
                    self.static_len(meta, d, kind) as u64
                } else {
                    0
                };
                (perm, 1, size)
            }
        };
        let mut attr = Attr {
            node,
            generation: u64::from(d.generation),
            perm,
            nlink,
            uid: self.config.uid,
            gid: self.config.gid,
            size,
            mtime: match node.kind {
                // Empty unless the daemon or the guest changed a listing since the build.
                NodeKind::Dir(_) if !meta.changed.is_empty() => {
                    meta.changed.get(&node.dir).copied()
                }
                _ => None,
            }
            .unwrap_or(self.created),
        };
        if !meta.overrides.is_empty() {
            if let Some(o) = meta.overrides.get(&node.ino) {
                attr.perm = o.mode.unwrap_or(attr.perm);
                attr.uid = o.uid.unwrap_or(attr.uid);
                attr.gid = o.gid.unwrap_or(attr.gid);
            }
        }
        attr
    }

    fn static_len(&self, meta: &Meta, d: &DirMeta, kind: FileKind) -> usize {
        let mut buf = [0u8; 11];
        self.static_bytes(meta, d, kind, &mut buf).len()
    }

    fn static_bytes<'a>(
        &'a self,
        meta: &'a Meta,
        d: &DirMeta,
        kind: FileKind,
        buf: &'a mut [u8; 11],
    ) -> &'a [u8] {
        match kind {
            FileKind::EventFormat => meta.text(&self.image, d.format),
            FileKind::EventId => decimal_line(d.event_id, buf),
            FileKind::HeaderPage => self.header_page.get(&self.image),
            FileKind::Root(crate::layout::RootFile::Readme) => self.readme.get(&self.image),
            FileKind::Root(crate::layout::RootFile::AvailableTracers) => {
                self.available_tracers.get(&self.image)
            }
            FileKind::HeaderEvent => self.header_event.get(&self.image),
            _ => &[],
        }
    }

    /// Resolves an inode to a live node.
    pub fn node(&self, ino: Ino) -> Result<NodeRef, FsError> {
        Self::node_ref(&self.read(), ino)
    }

    /// Attributes of a node (no side effects).
    pub fn getattr(&self, ino: Ino) -> Result<Attr, FsError> {
        let meta = self.read();
        let node = Self::node_ref(&meta, ino)?;
        Ok(self.attr_of(&meta, node))
    }

    /// Finds `name` in directory `parent` without counting a lookup.
    pub fn find(&self, parent: Ino, name: &[u8]) -> Result<Attr, FsError> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let meta = self.read();
        let parent = Self::node_ref(&meta, parent)?;
        let NodeKind::Dir(kind) = parent.kind else {
            return Err(FsError::NotDir);
        };
        if !valid_name(name) {
            return Err(FsError::NotFound);
        }
        let d = &meta.dirs[parent.dir as usize];
        let node = if let Some(slot) = kind.file_slot(name).filter(|&s| kind.has_file(d.files, s)) {
            NodeRef {
                ino: encode_ino(parent.dir, d.generation, Some(slot)),
                dir: parent.dir,
                kind: NodeKind::File(kind.files()[slot].kind),
                dynamic: parent.dynamic,
            }
        } else {
            let child = meta
                .find_child(&self.image, parent.dir, name)
                .ok_or(FsError::NotFound)?;
            let c = &meta.dirs[child as usize];
            NodeRef {
                ino: encode_ino(child, c.generation, None),
                dir: child,
                kind: NodeKind::Dir(c.kind),
                dynamic: c.flags & DYNAMIC != 0,
            }
        };
        Ok(self.attr_of(&meta, node))
    }

    /// FUSE LOOKUP: finds `name` in `parent` and counts one reference to it. Negative lookups
    /// store nothing.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, FsError> {
        let attr = self.find(parent, name)?;
        self.remember(attr.node.ino);
        Ok(attr)
    }

    /// Counts one more reference to a node handed out by other means (readdirplus).
    pub fn remember(&self, ino: Ino) {
        if ino != ROOT_INO {
            self.lookups.remember(ino);
        }
    }

    /// FUSE FORGET: drops `count` references. The root is never freed. Returns false when the
    /// client forgot more than it had (logged by the caller).
    pub fn forget(&self, ino: Ino, count: u64) -> bool {
        ino == ROOT_INO || self.lookups.forget(ino, count)
    }

    /// Lookup count of a node (0 when not materialised).
    pub fn lookup_count(&self, ino: Ino) -> u32 {
        self.lookups.count(ino)
    }

    /// Drops every lookup reference: a new FUSE session (INIT) or DESTROY.
    pub fn reset(&self) {
        self.lookups.clear();
    }

    /// Number of materialised nodes (nodes with a non-zero lookup count).
    pub fn materialised(&self) -> usize {
        self.lookups.len()
    }

    /// Lists directory `ino` from cookie `offset`; `emit` returns false to stop (buffer full).
    pub fn readdir(
        &self,
        ino: Ino,
        offset: u64,
        emit: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), FsError> {
        let meta = self.read();
        let node = Self::node_ref(&meta, ino)?;
        let NodeKind::Dir(kind) = node.kind else {
            return Err(FsError::NotDir);
        };
        let d = &meta.dirs[node.dir as usize];
        let mut pos = offset;
        if pos == 0 {
            let attr = self.attr_of(&meta, node);
            if !emit(DirEntry {
                name: b".",
                next_offset: 1,
                attr,
                is_dot: true,
            }) {
                return Ok(());
            }
            pos = 1;
        }
        if pos == 1 {
            let parent = &meta.dirs[d.parent as usize];
            let parent_node = NodeRef {
                ino: encode_ino(d.parent, parent.generation, None),
                dir: d.parent,
                kind: NodeKind::Dir(parent.kind),
                dynamic: parent.flags & DYNAMIC != 0,
            };
            let attr = self.attr_of(&meta, parent_node);
            if !emit(DirEntry {
                name: b"..",
                next_offset: 2,
                attr,
                is_dot: true,
            }) {
                return Ok(());
            }
            pos = FIRST_FILE_POS;
        }
        let files = kind.files();
        while pos < FIRST_CHILD_POS {
            let slot = (pos - FIRST_FILE_POS) as usize;
            pos += 1;
            if slot >= files.len() {
                pos = FIRST_CHILD_POS;
                break;
            }
            if !kind.has_file(d.files, slot) {
                continue;
            }
            let file = NodeRef {
                ino: encode_ino(node.dir, d.generation, Some(slot)),
                dir: node.dir,
                kind: NodeKind::File(files[slot].kind),
                dynamic: node.dynamic,
            };
            let attr = self.attr_of(&meta, file);
            if !emit(DirEntry {
                name: files[slot].name.as_bytes(),
                next_offset: pos,
                attr,
                is_dot: false,
            }) {
                return Ok(());
            }
        }
        let Some(children) = d.children.as_ref() else {
            return Ok(());
        };
        let from_seq = pos - FIRST_CHILD_POS;
        let start = children
            .by_seq
            .partition_point(|&c| u64::from(meta.dirs[c as usize].seq) < from_seq);
        for &child in &children.by_seq[start..] {
            let c = &meta.dirs[child as usize];
            let child_node = NodeRef {
                ino: encode_ino(child, c.generation, None),
                dir: child,
                kind: NodeKind::Dir(c.kind),
                dynamic: c.flags & DYNAMIC != 0,
            };
            let attr = self.attr_of(&meta, child_node);
            let entry = DirEntry {
                name: meta.text(&self.image, c.name),
                next_offset: FIRST_CHILD_POS + u64::from(c.seq) + 1,
                attr,
                is_dot: false,
            };
            if !emit(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Changes mode/owner of a node; kept in the metadata so it survives forget.
    pub fn setattr(&self, ino: Ino, change: SetAttr) -> Result<Attr, FsError> {
        let mut meta = self.write();
        let node = Self::node_ref(&meta, ino)?;
        let entry = meta.overrides.entry(ino).or_default();
        if let Some(mode) = change.mode {
            entry.mode = Some((mode & 0o7777) as u16);
        }
        if change.uid.is_some() {
            entry.uid = change.uid;
        }
        if change.gid.is_some() {
            entry.gid = change.gid;
        }
        Ok(self.attr_of(&meta, node))
    }

    /// Calls `f` with the catalog's `available_filter_functions` (empty when it has none).
    pub fn with_functions<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.functions.get(&self.image))
    }

    /// The release of the kernel the catalog was taken from (`6.1.0-48-amd64`).
    pub fn kernel_release(&self) -> String {
        String::from_utf8_lossy(self.kernel_release.get(&self.image)).into_owned()
    }

    /// Serves `readme` and `available_tracers` in place of the image's texts: a source that
    /// cannot do everything the snapshotted kernel did must not claim it (both stay immutable,
    /// so they are cached like the image's).
    pub fn replace_root_texts(&mut self, readme: Vec<u8>, available_tracers: Vec<u8>) {
        self.readme = RootText::Owned(readme.into());
        self.available_tracers = RootText::Owned(available_tracers.into());
    }

    /// Calls `f` with the content of an immutable file (`format`, `id`, `header_*`) without
    /// allocating.
    pub fn with_static_content<R>(
        &self,
        ino: Ino,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, FsError> {
        let meta = self.read();
        let node = Self::node_ref(&meta, ino)?;
        let NodeKind::File(kind) = node.kind else {
            return Err(FsError::IsDir);
        };
        if !kind.is_immutable() {
            return Err(FsError::Invalid("not an immutable file".into()));
        }
        let mut buf = [0u8; 11];
        let bytes = self.static_bytes(&meta, &meta.dirs[node.dir as usize], kind, &mut buf);
        Ok(f(bytes))
    }
}
