//! Queries and run-time changes the sources make of the tree: names, events below a
//! directory, instances, dynamic events.

use super::*;

impl Tree {
    /// Inode number of a directory (includes its generation, so it identifies this incarnation).
    pub fn dir_ino(&self, dir: DirId) -> Ino {
        let meta = self.read();
        encode_ino(dir, meta.dirs[dir as usize].generation, None)
    }

    /// Name of a directory (for logs and control semantics).
    pub fn dir_name(&self, dir: DirId) -> String {
        let meta = self.read();
        String::from_utf8_lossy(meta.text(&self.image, meta.dirs[dir as usize].name)).into_owned()
    }

    /// Parent of a directory.
    pub fn parent_of(&self, dir: DirId) -> DirId {
        self.read().dirs[dir as usize].parent
    }

    /// The live event directories below `dir` (an event dir itself, a system, or `events/`).
    pub fn events_below(&self, dir: DirId) -> Vec<DirId> {
        let meta = self.read();
        let mut out = Vec::new();
        meta.for_each_event_below(dir, |d, _| out.push(d));
        out
    }

    /// The live event directories below `dir` that have `file` (e.g. an `enable`), with their
    /// inode numbers, under one lock: what a fan-out write or a summary read needs.
    pub fn events_with_file(&self, dir: DirId, file: FileKind) -> Vec<(DirId, Ino)> {
        let meta = self.read();
        let mut out = Vec::new();
        meta.for_each_event_below(dir, |d, m| {
            if m.has_file(file) {
                out.push((d, encode_ino(d, m.generation, None)));
            }
        });
        out
    }

    /// Calls `f` with an event directory's `format` text (for field lookups by control code).
    pub fn with_format<R>(&self, event: DirId, f: impl FnOnce(&str) -> R) -> R {
        let meta = self.read();
        let bytes = meta.text(&self.image, meta.dirs[event as usize].format);
        f(std::str::from_utf8(bytes).unwrap_or(""))
    }

    /// Calls `f` with the `format` text of the event directory `dir_ino` (generation
    /// included), or fails with [`FsError::Removed`] if that event is gone: checked under the
    /// same lock, so that a write to a removed event's control file cannot meet its retired
    /// (empty) format, or a new event in its slot, and fail as a parse error.
    pub fn with_live_format<R>(
        &self,
        dir_ino: Ino,
        f: impl FnOnce(&str) -> R,
    ) -> Result<R, FsError> {
        let meta = self.read();
        let node = Self::node_ref(&meta, dir_ino)?;
        let bytes = meta.text(&self.image, meta.dirs[node.dir as usize].format);
        Ok(f(std::str::from_utf8(bytes).unwrap_or("")))
    }

    /// Whether an event directory has the enable file (events like `ftrace/function` cannot be
    /// enabled).
    pub fn event_has_file(&self, event: DirId, file: FileKind) -> bool {
        self.read().dirs[event as usize].has_file(file)
    }

    /// Whether `dir` is (or a file of `dir` belongs to) a system or event added at run time
    /// with its own name (a dynamic event, in any instance), rather than a copy of the catalog.
    pub fn is_runtime_event(&self, dir: DirId) -> bool {
        let meta = self.read();
        let d = &meta.dirs[dir as usize];
        matches!(d.kind, DirKind::System | DirKind::Event) && d.name.is_owned()
    }

    /// The global `events/` directory.
    pub fn global_events_dir(&self) -> DirId {
        EVENTS_DIR
    }

    /// Finds the system directory `name` below the `events/` directory `events`.
    pub fn find_system_in(&self, events: DirId, name: &str) -> Option<DirId> {
        self.read().find_child(&self.image, events, name.as_bytes())
    }

    /// Finds the event directory `system/name` in the global `events/`.
    pub fn find_event(&self, system: &str, name: &str) -> Option<DirId> {
        self.find_event_in(EVENTS_DIR, system, name)
    }

    /// Finds the event directory `system/name` below the `events/` directory `events`.
    pub fn find_event_in(&self, events: DirId, system: &str, name: &str) -> Option<DirId> {
        let meta = self.read();
        let sys = meta.find_child(&self.image, events, system.as_bytes())?;
        meta.find_child(&self.image, sys, name.as_bytes())
    }

    /// Number of (systems, events, directories, files) currently live.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let meta = self.read();
        let (mut systems, mut events, mut dirs, mut files) = (0, 0, 0, 0);
        for d in meta.dirs.iter().filter(|d| d.flags & LIVE != 0) {
            dirs += 1;
            files += (0..d.kind.files().len())
                .filter(|&s| d.kind.has_file(d.files, s))
                .count();
            match d.kind {
                DirKind::System => systems += 1,
                DirKind::Event => events += 1,
                _ => {}
            }
        }
        (systems, events, dirs, files)
    }

    /// Adds an event (and its system if needed) at run time, in the global `events/` and in
    /// every instance's, as the kernel does for dynamic events. Fails with `Exists` if present.
    /// Returns the inode of the global event directory.
    pub fn add_event(&self, event: &NewEvent<'_>) -> Result<Ino, FsError> {
        for name in [event.system, event.name] {
            if name.len() > NAME_MAX {
                return Err(FsError::NameTooLong);
            }
            if !valid_name(name.as_bytes()) {
                return Err(FsError::Invalid(format!("invalid name {name:?}")));
            }
        }
        if event.files & !all_files(crate::layout::EVENT_FILES) != 0 {
            return Err(FsError::Invalid(format!("file mask {:#x}", event.files)));
        }
        let mut meta = self.write();
        if let Some(system) = meta.find_child(&self.image, EVENTS_DIR, event.system.as_bytes()) {
            if meta
                .find_child(&self.image, system, event.name.as_bytes())
                .is_some()
            {
                return Err(FsError::Exists);
            }
        }
        let mut global = None;
        for events in meta.events_roots() {
            let system = match meta.find_child(&self.image, events, event.system.as_bytes()) {
                Some(system) => system,
                None => {
                    let name = meta.own(event.system);
                    let files = all_files(crate::layout::SYSTEM_FILES);
                    meta.add_dir(&self.image, events, name, DirKind::System, files)
                }
            };
            let name = meta.own(event.name);
            let dir = meta.add_dir(&self.image, system, name, DirKind::Event, event.files);
            let format = meta.own(event.format);
            let d = &mut meta.dirs[dir as usize];
            d.format = format;
            d.event_id = event.id;
            global.get_or_insert(encode_ino(dir, d.generation, None));
        }
        Ok(global.expect("the global events directory always exists"))
    }

    /// Removes an event (or, with `name == None`, a whole system) at run time, globally and in
    /// every instance. Lookups of it fail with ENOENT from now on; handles opened before get
    /// ENODEV; its slots are reused only under a new generation, so old inode numbers never
    /// resolve to a new node.
    pub fn remove(&self, system: &str, name: Option<&str>) -> Result<(), FsError> {
        let mut meta = self.write();
        let mut found = false;
        for events in meta.events_roots() {
            let Some(sys) = meta.find_child(&self.image, events, system.as_bytes()) else {
                continue;
            };
            let target = match name {
                Some(name) => match meta.find_child(&self.image, sys, name.as_bytes()) {
                    Some(event) => event,
                    None => continue,
                },
                None => sys,
            };
            meta.retire(target);
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(FsError::NotFound)
        }
    }

    /// Creates `instances/<name>` with its own copy of the events tree and of `options/`, as
    /// `mkdir` does in tracefs. Returns the instance directory.
    pub fn add_instance(&self, name: &str) -> Result<DirId, FsError> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        if !valid_name(name.as_bytes()) {
            return Err(FsError::Invalid(format!("invalid instance name {name:?}")));
        }
        let mut meta = self.write();
        if meta
            .find_child(&self.image, INSTANCES_DIR, name.as_bytes())
            .is_some()
        {
            return Err(FsError::Exists);
        }
        let text = meta.own(name);
        // An instance has what the top level has, minus the global-only files.
        let mask = crate::layout::instance_files_mask() & meta.dirs[ROOT_DIR as usize].files;
        let instance = meta.add_dir(
            &self.image,
            INSTANCES_DIR,
            text,
            DirKind::InstanceRoot,
            mask,
        );
        let text = meta.own("events");
        let files = all_files(DirKind::EventsRoot.files());
        let events = meta.add_dir(&self.image, instance, text, DirKind::EventsRoot, files);
        let text = meta.own("options");
        let options = meta.dirs[OPTIONS_DIR as usize].files;
        meta.add_dir(&self.image, instance, text, DirKind::Options, options);
        meta.add_per_cpu(&self.image, instance, self.config.cpus.max(1));
        meta.copy_events(&self.image, EVENTS_DIR, events);
        Ok(instance)
    }

    /// Removes `instances/<name>` and everything below it.
    pub fn remove_instance(&self, name: &str) -> Result<(), FsError> {
        let mut meta = self.write();
        let instance = meta
            .find_child(&self.image, INSTANCES_DIR, name.as_bytes())
            .ok_or(FsError::NotFound)?;
        meta.retire(instance);
        Ok(())
    }

    /// The instance a directory belongs to: the root directory for global nodes, or the
    /// `instances/<name>` directory.
    pub fn instance_of(&self, dir: DirId) -> DirId {
        self.read().instance_of(dir)
    }

    /// Inode number of the instance directory `dir` belongs to (the root for the top level),
    /// under one lock: the key sources keep per-instance state under.
    pub fn instance_ino_of(&self, dir: DirId) -> Ino {
        let meta = self.read();
        let instance = meta.instance_of(dir);
        encode_ino(instance, meta.dirs[instance as usize].generation, None)
    }

    /// Default values of the trace options (bit per row of [`crate::layout::OPTIONS`]).
    pub fn option_defaults(&self) -> u64 {
        self.option_defaults
    }

    /// The `events/` directory of an instance directory (or of the root).
    pub fn events_dir_of(&self, instance: DirId) -> Option<DirId> {
        let meta = self.read();
        let children = meta.dirs.get(instance as usize)?.children.as_ref()?;
        children
            .by_seq
            .iter()
            .copied()
            .find(|&d| meta.dirs[d as usize].kind == DirKind::EventsRoot)
    }

    /// Live instances: (directory, name).
    pub fn instances(&self) -> Vec<(DirId, String)> {
        let meta = self.read();
        let Some(children) = meta.dirs[INSTANCES_DIR as usize].children.as_ref() else {
            return Vec::new();
        };
        children
            .by_seq
            .iter()
            .map(|&d| {
                let name = meta.text(&self.image, meta.dirs[d as usize].name);
                (d, String::from_utf8_lossy(name).into_owned())
            })
            .collect()
    }

    /// Which trace options exist and their defaults (one bit per row of
    /// [`crate::layout::OPTIONS`]).
    pub fn options(&self) -> (u64, u64) {
        (
            self.read().dirs[OPTIONS_DIR as usize].files,
            self.option_defaults,
        )
    }

    /// The catalog's `trace_clock` text (the clocks, the default one in brackets).
    pub fn trace_clock(&self) -> String {
        String::from_utf8_lossy(self.trace_clock.get(&self.image)).into_owned()
    }

    /// Path of a node relative to the tree root (`events/sched/sched_switch/enable`), for
    /// sources that forward to a real tracefs. Only names from the metadata appear in it.
    pub fn path_of(&self, node: NodeRef) -> String {
        let meta = self.read();
        let mut parts = Vec::new();
        if let NodeKind::File(_) = node.kind {
            let d = &meta.dirs[node.dir as usize];
            let slot = (node.ino as u8).wrapping_sub(1) as usize;
            if let Some(spec) = d.kind.files().get(slot) {
                parts.push(spec.name.to_string());
            }
        }
        let mut dir = node.dir;
        while dir != ROOT_DIR {
            let d = &meta.dirs[dir as usize];
            parts.push(String::from_utf8_lossy(meta.text(&self.image, d.name)).into_owned());
            dir = d.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Restricts which rows of [`crate::layout::ROOT_FILES`] exist at the tree root (bit per
    /// row; rows outside `mask` give ENOENT on lookup and are not listed). A source serving a
    /// real tracefs instance uses it to hide files that instance does not have or that its
    /// policy hides (the global `kprobe_events`, ...). Returns the previous mask.
    /// The `per_cpu/cpuN/` directories follow (their snapshot files exist with `snapshot`).
    pub fn set_root_files(&self, mask: u64) -> u64 {
        let mut meta = self.write();
        let root = &mut meta.dirs[ROOT_DIR as usize];
        let old = root.files;
        root.files = mask & all_files(DirKind::Root.files());
        let cpu_files = crate::layout::cpu_files_mask(root.files);
        for dir in meta.dirs.iter_mut().filter(|d| d.kind == DirKind::Cpu) {
            dir.files = cpu_files;
        }
        old
    }

    /// The id of an event directory.
    pub fn event_id(&self, event: DirId) -> u32 {
        self.read().dirs[event as usize].event_id
    }

    /// The CPU of a `per_cpu/cpuN/` directory (0 for any other directory).
    pub fn cpu_of(&self, dir: DirId) -> u32 {
        let meta = self.read();
        let d = &meta.dirs[dir as usize];
        if d.kind == DirKind::Cpu {
            d.event_id
        } else {
            0
        }
    }

    /// Number of `per_cpu/cpuN/` directories in the root and in every instance.
    pub fn cpus(&self) -> u32 {
        self.config.cpus.clamp(1, crate::layout::MAX_CPUS)
    }

    /// Kind of a directory.
    pub fn dir_kind(&self, dir: DirId) -> DirKind {
        self.read().dirs[dir as usize].kind
    }
}
