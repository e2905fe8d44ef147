//! The static file tables of the tree.
//!
//! Like the kernel's `event_entries[]` in `fs/tracefs/event_inode.c`, every directory of one kind
//! shares one table of `{name, mode, kind}`; a directory only stores a bitmask of which rows it
//! has. Files therefore cost no memory until they are looked up.

/// What a file is, independent of which directory it sits in. Sources decide what reads and
/// writes of each kind do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `events/<sys>/<event>/enable`
    EventEnable,
    /// `events/<sys>/<event>/filter`
    EventFilter,
    /// `events/<sys>/<event>/trigger`
    EventTrigger,
    /// `events/<sys>/<event>/format` (immutable)
    EventFormat,
    /// `events/<sys>/<event>/id` (immutable)
    EventId,
    /// `events/<sys>/<event>/hist`
    EventHist,
    /// `events/<sys>/<event>/hist_debug`
    EventHistDebug,
    /// `events/<sys>/<event>/inject`
    EventInject,
    /// `events/<sys>/enable`
    SystemEnable,
    /// `events/<sys>/filter`
    SystemFilter,
    /// `events/enable`
    EventsEnable,
    /// `events/header_page` (immutable)
    HeaderPage,
    /// `events/header_event` (immutable)
    HeaderEvent,
}

impl FileKind {
    /// True for files whose content never changes while the node lives: they may be cached by the
    /// guest and are served straight from the metadata.
    pub fn is_immutable(self) -> bool {
        matches!(
            self,
            FileKind::EventFormat
                | FileKind::EventId
                | FileKind::HeaderPage
                | FileKind::HeaderEvent
        )
    }
}

/// One row of a static file table.
#[derive(Copy, Clone, Debug)]
pub struct FileSpec {
    /// File name inside its directory.
    pub name: &'static str,
    /// Permission bits as tracefs reports them.
    pub mode: u16,
    /// What the file does.
    pub kind: FileKind,
}

const fn spec(name: &'static str, mode: u16, kind: FileKind) -> FileSpec {
    FileSpec { name, mode, kind }
}

/// Files of an event directory, in kernel order. The catalog stores a bitmask over this table.
pub const EVENT_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::EventEnable),
    spec("filter", 0o640, FileKind::EventFilter),
    spec("trigger", 0o640, FileKind::EventTrigger),
    spec("format", 0o440, FileKind::EventFormat),
    spec("id", 0o440, FileKind::EventId),
    spec("hist", 0o440, FileKind::EventHist),
    spec("hist_debug", 0o440, FileKind::EventHistDebug),
    spec("inject", 0o200, FileKind::EventInject),
];

/// Files of a system directory (`events/<sys>/`). The `ftrace` system has none.
pub const SYSTEM_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::SystemEnable),
    spec("filter", 0o640, FileKind::SystemFilter),
];

/// Files of the `events/` directory itself.
pub const EVENTS_ROOT_FILES: &[FileSpec] = &[
    spec("enable", 0o640, FileKind::EventsEnable),
    spec("header_page", 0o440, FileKind::HeaderPage),
    spec("header_event", 0o440, FileKind::HeaderEvent),
];

/// Files of the tracefs root served by every source so far (the root files of issue-level
/// features such as `trace` are added to this table when their source supports them).
pub const ROOT_FILES: &[FileSpec] = &[];

/// Mode of every directory below the root.
pub const DIR_MODE: u16 = 0o755;
/// Mode of the tracefs root (tracefs defaults to 0700).
pub const ROOT_MODE: u16 = 0o700;

/// The kinds of directory in the tree; each has one static file table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DirKind {
    /// The tracefs root.
    Root,
    /// `events/`.
    EventsRoot,
    /// `events/<sys>/`.
    System,
    /// `events/<sys>/<event>/`.
    Event,
}

impl DirKind {
    /// The static file table shared by every directory of this kind.
    pub fn files(self) -> &'static [FileSpec] {
        match self {
            DirKind::Root => ROOT_FILES,
            DirKind::EventsRoot => EVENTS_ROOT_FILES,
            DirKind::System => SYSTEM_FILES,
            DirKind::Event => EVENT_FILES,
        }
    }

    /// Whether a directory of this kind with presence bitmask `mask` has the file in `slot`.
    /// Only event and system directories vary; the others always have every row.
    pub fn has_file(self, mask: u16, slot: usize) -> bool {
        match self {
            DirKind::Event | DirKind::System => slot < 16 && mask & (1 << slot) != 0,
            DirKind::Root | DirKind::EventsRoot => slot < self.files().len(),
        }
    }

    /// Finds a file row by name; returns its slot index in [`DirKind::files`].
    pub fn file_slot(self, name: &[u8]) -> Option<usize> {
        self.files().iter().position(|f| f.name.as_bytes() == name)
    }
}

/// Bitmask with every row of `table` present (rows past 16 are always present, see
/// [`DirKind::has_file`]).
pub fn all_files(table: &[FileSpec]) -> u16 {
    ((1u32 << table.len().min(16)) - 1) as u16
}

/// Upper bound on the number of rows in any file table; readdir cookies reserve this many slots.
pub const MAX_FILES_PER_DIR: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_in_masks_and_cookie_space() {
        for kind in [
            DirKind::Root,
            DirKind::EventsRoot,
            DirKind::System,
            DirKind::Event,
        ] {
            assert!(kind.files().len() <= MAX_FILES_PER_DIR);
        }
        assert_eq!(all_files(EVENT_FILES), 0xff);
        assert_eq!(DirKind::Event.file_slot(b"format"), Some(3));
        assert_eq!(DirKind::Event.file_slot(b"nope"), None);
    }
}
