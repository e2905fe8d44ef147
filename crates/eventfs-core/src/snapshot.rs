//! Building a [`Catalog`] from a live tracefs mount.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::catalog::{valid_name, Catalog, EventEntry, SystemEntry};
use crate::layout::{EVENT_FILES, OPTIONS, SYSTEM_FILES};

/// Errors while reading a tracefs tree.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The tree does not look like tracefs.
    #[error("{path}: {reason}")]
    NotTracefs {
        /// The offending path.
        path: PathBuf,
        /// What is missing or unexpected.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Size of the first read of a tracefs file: tracefs reports size 0, and some files
/// (`header_page`, `header_event`) build their whole content on the read at offset 0 and
/// return nothing for any later offset, so a small first read (`read_to_end` probes with 32
/// bytes) would cut them short without an error.
pub const FIRST_READ: usize = 1 << 16;

/// The whole content of a tracefs file: one large read at offset 0, then whatever a regular
/// file still has.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut bytes = vec![0u8; FIRST_READ];
    let n = loop {
        match file.read(&mut bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    bytes.truncate(n);
    if n > 0 {
        file.read_to_end(&mut bytes)?;
    }
    // Thousands of formats are read in a row: keeping the first read's 64 KiB each would
    // hold a hundred megabytes for a megabyte of text.
    bytes.shrink_to_fit();
    Ok(bytes)
}

fn read_text(path: &Path) -> Result<String, SnapshotError> {
    let bytes = read_whole(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|_| SnapshotError::NotTracefs {
        path: path.to_path_buf(),
        reason: "content is not UTF-8".into(),
    })
}

/// Sorted names of the entries of `dir`, split into (directories, files).
fn list(dir: &Path) -> Result<(Vec<String>, Vec<String>), SnapshotError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid_name(name.as_bytes()) {
            continue;
        }
        if entry.file_type().map_err(io_err(dir))?.is_dir() {
            dirs.push(name);
        } else {
            files.push(name);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

fn mask_of(files: &[String], table: &[crate::layout::FileSpec], dir: &Path) -> u16 {
    let mut mask = 0u16;
    for name in files {
        match table.iter().position(|f| f.name == name) {
            Some(slot) => mask |= 1 << slot,
            None => eprintln!(
                "eventfs-snapshot: ignoring unknown file {}",
                dir.join(name).display()
            ),
        }
    }
    mask
}

/// Reads `events/` of the tracefs mounted at `tracefs` into a catalog. `kernel_release` is
/// recorded as given (the caller knows whether the mount belongs to the running kernel).
pub fn snapshot(tracefs: &Path, kernel_release: &str) -> Result<Catalog, SnapshotError> {
    let events = tracefs.join("events");
    let header_page = read_text(&events.join("header_page"))?;
    let header_event = read_text(&events.join("header_event"))?;
    let (system_names, _) = list(&events)?;
    if system_names.is_empty() {
        return Err(SnapshotError::NotTracefs {
            path: events,
            reason: "no event systems found".into(),
        });
    }
    let mut systems = Vec::new();
    for system_name in system_names {
        let system_dir = events.join(&system_name);
        let (event_names, files) = list(&system_dir)?;
        let mut system = SystemEntry {
            files: mask_of(&files, SYSTEM_FILES, &system_dir),
            name: system_name,
            events: Vec::new(),
        };
        for event_name in event_names {
            let event_dir = system_dir.join(&event_name);
            let (_, files) = list(&event_dir)?;
            let format = read_text(&event_dir.join("format"))?;
            let id = parse_id(&format).ok_or_else(|| SnapshotError::NotTracefs {
                path: event_dir.join("format"),
                reason: "no `ID:` line".into(),
            })?;
            system.events.push(EventEntry {
                files: mask_of(&files, EVENT_FILES, &event_dir),
                name: event_name,
                id,
                format,
            });
        }
        systems.push(system);
    }
    let mut options = Vec::new();
    let options_dir = tracefs.join("options");
    if let Ok((_, names)) = list(&options_dir) {
        for name in names {
            if OPTIONS.iter().any(|o| o.name == name) {
                let value = read_text(&options_dir.join(&name))?;
                options.push((name, value.trim() == "1"));
            } else {
                eprintln!("eventfs-snapshot: ignoring unknown trace option {name}");
            }
        }
    }
    // Root texts are optional: a tracefs mounted without them still yields the events.
    let optional = |name: &str| read_text(&tracefs.join(name)).unwrap_or_default();
    Ok(Catalog {
        kernel_release: kernel_release.to_string(),
        header_page,
        header_event,
        readme: optional("README"),
        available_tracers: optional("available_tracers"),
        trace_clock: optional("trace_clock"),
        // EPERM on a kernel in lockdown.
        functions: optional("available_filter_functions"),
        options,
        systems,
    })
}

/// The event id from the `ID: N` line of a `format` text.
pub fn parse_id(format: &str) -> Option<u32> {
    format
        .lines()
        .find_map(|line| line.strip_prefix("ID: "))
        .and_then(|id| id.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_whole_reads_past_the_first_read() {
        let path = std::env::temp_dir().join(format!("snap-whole-{}", std::process::id()));
        let content: Vec<u8> = (0..3 * FIRST_READ + 7).map(|i| i as u8).collect();
        fs::write(&path, &content).unwrap();
        assert_eq!(read_whole(&path).unwrap(), content);
        fs::write(&path, b"").unwrap();
        assert!(read_whole(&path).unwrap().is_empty());
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn snapshot_of_a_fake_tree() {
        let root = std::env::temp_dir().join(format!("snap-test-{}", std::process::id()));
        let ev = root.join("events/sched/sched_switch");
        fs::create_dir_all(&ev).unwrap();
        fs::create_dir_all(root.join("events/ftrace/function")).unwrap();
        fs::write(root.join("events/header_page"), "hp\n").unwrap();
        fs::write(root.join("events/header_event"), "he\n").unwrap();
        fs::write(root.join("events/sched/enable"), "").unwrap();
        fs::write(root.join("events/sched/filter"), "").unwrap();
        for f in ["enable", "filter", "trigger", "id"] {
            fs::write(ev.join(f), "").unwrap();
        }
        fs::write(ev.join("format"), "name: sched_switch\nID: 42\nformat:\n").unwrap();
        fs::write(
            root.join("events/ftrace/function/format"),
            "name: function\nID: 1\nformat:\n",
        )
        .unwrap();
        let cat = snapshot(&root, "test").unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(cat.systems.len(), 2);
        assert_eq!(cat.systems[0].name, "ftrace");
        assert_eq!(cat.systems[0].files, 0);
        assert_eq!(cat.systems[0].events[0].files, 0b1000);
        assert_eq!(cat.systems[1].files, 0b11);
        assert_eq!(cat.systems[1].events[0].id, 42);
        assert_eq!(cat.systems[1].events[0].files, 0b11111);
    }
}
