//! The per-directory metadata and its bookkeeping: names, children, generations, free slots.
//! The only memory the tree keeps per directory.

use std::collections::HashMap;

use super::ino::{encode_ino, DirId, Ino, EVENTS_DIR, INSTANCES_DIR, ROOT_DIR};
use crate::catalog::Span;
use crate::layout::{DirKind, FileKind, MAX_CPUS};

/// A string in the metadata: a span of the catalog image, or an owned string for nodes added at
/// run time. Packed into 8 bytes (top bit tags owned strings) to keep directories small.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Text(u64);

pub(super) const OWNED_BIT: u64 = 1 << 63;
/// Tags the name `cpuN` of a `per_cpu/` directory: N is in the low bits, the bytes come
/// from [`CPU_NAMES`], so a CPU directory owns no string.
const CPU_NAME_BIT: u64 = 1 << 62;

impl Text {
    /// A string made at run time (not a span of the image).
    pub(super) fn is_owned(self) -> bool {
        self.0 & OWNED_BIT != 0
    }

    pub(super) fn image(span: Span) -> Text {
        Text(u64::from(span.off) | (u64::from(span.len) << 32))
    }
    pub(super) fn cpu(cpu: u32) -> Text {
        debug_assert!(cpu < MAX_CPUS);
        Text(CPU_NAME_BIT | u64::from(cpu))
    }
    pub(super) const EMPTY: Text = Text(0);
}

/// Where the name `cpuN` starts in [`CPU_NAMES`] (names have 1 to 4 digits).
const fn cpu_name_start(cpu: usize) -> usize {
    let mut start = 0;
    let mut digits = 1;
    let mut first = 0; // first CPU with `digits` digits
    let mut next = 10;
    while cpu >= next {
        start += (next - first) * (3 + digits);
        digits += 1;
        first = next;
        next *= 10;
    }
    start + (cpu - first) * (3 + digits)
}

const CPU_NAMES_LEN: usize = cpu_name_start(MAX_CPUS as usize);

/// `cpu0cpu1...` for every possible CPU, built at compile time: the names of the `per_cpu/`
/// directories cost no heap, and the bytes are shared by every daemon running the binary.
static CPU_NAMES: [u8; CPU_NAMES_LEN] = {
    let mut out = [0u8; CPU_NAMES_LEN];
    let mut cpu = 0;
    while cpu < MAX_CPUS as usize {
        let mut at = cpu_name_start(cpu);
        let end = cpu_name_start(cpu + 1);
        out[at] = b'c';
        out[at + 1] = b'p';
        out[at + 2] = b'u';
        at = end;
        let mut n = cpu;
        // Digits from the last one backwards.
        loop {
            at -= 1;
            out[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        cpu += 1;
    }
    out
};

pub(super) const LIVE: u8 = 1;
pub(super) const DYNAMIC: u8 = 2;

/// Metadata of one directory (48 bytes, see the test below; the only per-directory memory).
pub(super) struct DirMeta {
    pub(super) name: Text,
    /// The event's `format` (event directories only).
    pub(super) format: Text,
    pub(super) event_id: u32,
    pub(super) parent: DirId,
    /// Creation sequence: orders children for readdir cookies.
    pub(super) seq: u32,
    pub(super) generation: u16,
    pub(super) kind: DirKind,
    pub(super) flags: u8,
    /// Presence bitmask over the kind's file table.
    pub(super) files: u64,
    pub(super) children: Option<Box<Children>>,
}

#[derive(Default)]
pub(super) struct Children {
    /// Ordered by creation sequence (readdir order and cookies).
    pub(super) by_seq: Vec<DirId>,
    /// Ordered by name (lookup by binary search).
    pub(super) by_name: Vec<DirId>,
}

/// A user's chmod/chown of a node, kept in the metadata so it survives forget and re-lookup.
#[derive(Copy, Clone, Debug, Default)]
pub(super) struct AttrOverride {
    pub(super) mode: Option<u16>,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
}

pub(super) struct Meta {
    pub(super) dirs: Vec<DirMeta>,
    pub(super) free_dirs: Vec<DirId>,
    pub(super) strings: Vec<Option<Box<str>>>,
    pub(super) free_strings: Vec<u32>,
    pub(super) overrides: HashMap<Ino, AttrOverride>,
    pub(super) next_seq: u32,
    /// When a directory's listing last changed at run time (a child added or removed), for
    /// its mtime: a guest that caches the listing re-reads it when the mtime moves. Only the
    /// few directories that ever change are in it.
    pub(super) changed: HashMap<DirId, std::time::SystemTime>,
}

impl DirMeta {
    /// Whether this directory has the file `file` (its kind's table row, present in the mask).
    pub(super) fn has_file(&self, file: FileKind) -> bool {
        self.kind
            .files()
            .iter()
            .position(|f| f.kind == file)
            .is_some_and(|slot| self.kind.has_file(self.files, slot))
    }
}

impl Meta {
    /// Calls `f` for every live event directory below `dir` (or `dir` itself), in listing order.
    pub(super) fn for_each_event_below(&self, dir: DirId, mut f: impl FnMut(DirId, &DirMeta)) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let m = &self.dirs[d as usize];
            if m.flags & LIVE == 0 {
                continue;
            }
            if m.kind == DirKind::Event {
                f(d, m);
            } else if let Some(children) = &m.children {
                stack.extend(children.by_seq.iter().rev());
            }
        }
    }

    /// The instance directory `dir` belongs to (the root directory for the top level).
    pub(super) fn instance_of(&self, dir: DirId) -> DirId {
        let mut d = dir;
        loop {
            let m = &self.dirs[d as usize];
            if matches!(m.kind, DirKind::Root | DirKind::InstanceRoot) || d == ROOT_DIR {
                return d;
            }
            d = m.parent;
        }
    }

    pub(super) fn text<'a>(&'a self, image: &'a [u8], text: Text) -> &'a [u8] {
        if text.0 & CPU_NAME_BIT != 0 && text.0 & OWNED_BIT == 0 {
            let cpu = (text.0 & 0xffff_ffff) as usize;
            return &CPU_NAMES[cpu_name_start(cpu)..cpu_name_start(cpu + 1)];
        }
        if text.0 & OWNED_BIT != 0 {
            self.strings[(text.0 & 0xffff_ffff) as usize]
                .as_deref()
                .map_or(&[][..], str::as_bytes)
        } else {
            Span {
                off: text.0 as u32,
                len: (text.0 >> 32) as u32,
            }
            .get(image)
        }
    }

    pub(super) fn own(&mut self, s: &str) -> Text {
        let boxed = Some(Box::<str>::from(s));
        let index = match self.free_strings.pop() {
            Some(i) => {
                self.strings[i as usize] = boxed;
                i
            }
            None => {
                self.strings.push(boxed);
                (self.strings.len() - 1) as u32
            }
        };
        Text(OWNED_BIT | u64::from(index))
    }

    pub(super) fn disown(&mut self, text: Text) {
        if text.0 & OWNED_BIT != 0 {
            let index = (text.0 & 0xffff_ffff) as u32;
            self.strings[index as usize] = None;
            self.free_strings.push(index);
        }
    }

    pub(super) fn live(&self, dir: DirId, generation: u16) -> Option<&DirMeta> {
        self.dirs
            .get(dir as usize)
            .filter(|d| d.flags & LIVE != 0 && d.generation == generation)
    }

    pub(super) fn find_child(&self, image: &[u8], parent: DirId, name: &[u8]) -> Option<DirId> {
        let children = self.dirs[parent as usize].children.as_ref()?;
        children
            .by_name
            .binary_search_by(|&c| self.text(image, self.dirs[c as usize].name).cmp(name))
            .ok()
            .map(|i| children.by_name[i])
    }

    pub(super) fn alloc_dir(&mut self, meta: DirMeta) -> DirId {
        match self.free_dirs.pop() {
            Some(id) => {
                let generation = self.dirs[id as usize].generation;
                self.dirs[id as usize] = DirMeta { generation, ..meta };
                id
            }
            None => {
                self.dirs.push(meta);
                (self.dirs.len() - 1) as DirId
            }
        }
    }

    pub(super) fn link_child(&mut self, image: &[u8], parent: DirId, child: DirId) {
        let name = self.text(image, self.dirs[child as usize].name).to_vec();
        let pos = {
            let children = self.dirs[parent as usize].children.as_deref();
            children.map_or(0, |c| {
                c.by_name
                    .partition_point(|&d| self.text(image, self.dirs[d as usize].name) < &name[..])
            })
        };
        let children = self.dirs[parent as usize]
            .children
            .get_or_insert_with(Default::default);
        children.by_seq.push(child);
        children.by_name.insert(pos, child);
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Creates a live directory of `kind` named `name` under `parent` and links it there.
    /// Directories below a dynamic one, or with a run-time name, are dynamic too.
    pub(super) fn add_dir(
        &mut self,
        image: &[u8],
        parent: DirId,
        name: Text,
        kind: DirKind,
        files: u64,
    ) -> DirId {
        let seq = self.next_seq();
        let dynamic = self.dirs[parent as usize].flags & DYNAMIC != 0 || name.0 & OWNED_BIT != 0;
        let dir = self.alloc_dir(DirMeta {
            name,
            format: Text::EMPTY,
            event_id: 0,
            parent,
            seq,
            generation: 0,
            kind,
            flags: if dynamic { LIVE | DYNAMIC } else { LIVE },
            files,
            children: None,
        });
        self.link_child(image, parent, dir);
        self.changed.insert(parent, std::time::SystemTime::now());
        dir
    }

    /// Creates `per_cpu/` under an instance (or the root) with `cpu0 .. cpu(cpus-1)` in it;
    /// each CPU directory keeps its number in `event_id`.
    pub(super) fn add_per_cpu(&mut self, image: &[u8], instance: DirId, cpus: u32) -> DirId {
        let name = self.own("per_cpu");
        let per_cpu = self.add_dir(image, instance, name, DirKind::PerCpu, 0);
        if self.dirs[instance as usize].flags & DYNAMIC == 0 {
            // A fixed part of the tree, although its name is an owned string.
            self.dirs[per_cpu as usize].flags = LIVE;
        }
        let files = crate::layout::cpu_files_mask(self.dirs[ROOT_DIR as usize].files);
        for cpu in 0..cpus.min(MAX_CPUS) {
            let dir = self.add_dir(image, per_cpu, Text::cpu(cpu), DirKind::Cpu, files);
            self.dirs[dir as usize].event_id = cpu;
        }
        per_cpu
    }

    /// A copy of `text` that may be freed independently (image spans are shared as they are).
    pub(super) fn clone_text(&mut self, image: &[u8], text: Text) -> Text {
        if text.0 & OWNED_BIT == 0 {
            return text;
        }
        let owned = String::from_utf8_lossy(self.text(image, text)).into_owned();
        self.own(&owned)
    }

    /// Every `events/` directory: the global one and each instance's.
    pub(super) fn events_roots(&self) -> Vec<DirId> {
        let mut roots = vec![EVENTS_DIR];
        if let Some(instances) = &self.dirs[INSTANCES_DIR as usize].children {
            for &instance in &instances.by_seq {
                let children = self.dirs[instance as usize].children.as_deref();
                let events = children.and_then(|c| {
                    c.by_seq
                        .iter()
                        .copied()
                        .find(|&d| self.dirs[d as usize].kind == DirKind::EventsRoot)
                });
                roots.extend(events);
            }
        }
        roots
    }

    /// Unlinks `target` from its parent and retires it and everything below it: lookups fail
    /// from now on and the slots are reused only under a new generation.
    pub(super) fn retire(&mut self, target: DirId) {
        let parent = self.dirs[target as usize].parent;
        self.changed.insert(parent, std::time::SystemTime::now());
        self.changed.remove(&target);
        if let Some(children) = self.dirs[parent as usize].children.as_mut() {
            children.by_seq.retain(|&c| c != target);
            children.by_name.retain(|&c| c != target);
        }
        let mut stack = vec![target];
        while let Some(dir) = stack.pop() {
            let d = &mut self.dirs[dir as usize];
            if let Some(children) = d.children.take() {
                stack.extend(children.by_seq);
            }
            d.flags &= !LIVE;
            let (name, format, generation) = (d.name, d.format, d.generation);
            d.name = Text::EMPTY;
            d.format = Text::EMPTY;
            d.generation = generation.wrapping_add(1);
            self.disown(name);
            self.disown(format);
            let old_dir_ino = encode_ino(dir, generation, None);
            self.overrides
                .retain(|&ino, _| ino & !0xff != old_dir_ino & !0xff);
            self.free_dirs.push(dir);
        }
    }

    /// Copies the systems and events below the `events/` dir `from` into `to`.
    pub(super) fn copy_events(&mut self, image: &[u8], from: DirId, to: DirId) {
        let children_of = |meta: &Meta, dir: DirId| {
            meta.dirs[dir as usize]
                .children
                .as_ref()
                .map(|c| c.by_seq.clone())
                .unwrap_or_default()
        };
        for system in children_of(self, from) {
            let (name, files) = (
                self.dirs[system as usize].name,
                self.dirs[system as usize].files,
            );
            let name = self.clone_text(image, name);
            let copy = self.add_dir(image, to, name, DirKind::System, files);
            for event in children_of(self, system) {
                let e = &self.dirs[event as usize];
                let (name, format, id, files) = (e.name, e.format, e.event_id, e.files);
                let name = self.clone_text(image, name);
                let dir = self.add_dir(image, copy, name, DirKind::Event, files);
                let format = self.clone_text(image, format);
                let d = &mut self.dirs[dir as usize];
                d.format = format;
                d.event_id = id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented size of a directory record (README, docs/architecture.md): it is the
    /// only memory the tree keeps per directory.
    #[test]
    fn cpu_names_are_cpu_and_the_number() {
        for cpu in [0usize, 9, 10, 99, 100, 999, 1000, MAX_CPUS as usize - 1] {
            let name = &CPU_NAMES[cpu_name_start(cpu)..cpu_name_start(cpu + 1)];
            assert_eq!(name, format!("cpu{cpu}").as_bytes());
        }
        assert_eq!(CPU_NAMES_LEN, cpu_name_start(MAX_CPUS as usize));
    }

    #[test]
    fn a_directory_record_is_48_bytes() {
        assert_eq!(std::mem::size_of::<DirMeta>(), 48);
    }
}
