//! What the simulated kernel claims to have: the snapshotted kernel's `README`,
//! `available_tracers` and optional root files, cut down to what the simulation really does.
//!
//! Tools and test suites decide what to try from these texts (the kernel's own ftrace
//! self-tests `grep` the README for each feature), so a feature the simulation cannot do must
//! not appear in them: it then looks like a kernel built without it, and the tools skip it
//! instead of failing on a refusal.

use eventfs_core::layout::{FileKind, RootFile, ROOT_FILES};
use eventfs_core::tree::{Tree, ROOT_INO};

/// Tracers the simulation runs: `function` needs the catalog's function list.
pub const EMULATED_TRACERS: &[&str] = &["function", "nop"];

/// Root files that need the catalog's function list (the function tracer's, and kprobes').
const FUNCTION_TRACER_FILES: &[RootFile] = &[
    RootFile::KprobeEvents,
    RootFile::KprobeProfile,
    RootFile::SetFtraceFilter,
    RootFile::SetFtraceNotrace,
    RootFile::SetFtraceNotracePid,
    RootFile::SetFtracePid,
];

/// Root files that exist only when the kernel was built with the feature; the README names
/// each one it has.
const OPTIONAL_ROOT_FILES: &[RootFile] = &[
    RootFile::DynamicEvents,
    RootFile::KprobeEvents,
    RootFile::KprobeProfile,
    RootFile::SetFtraceFilter,
    RootFile::SetFtraceNotrace,
    RootFile::SetFtraceNotracePid,
    RootFile::SetFtracePid,
    RootFile::Snapshot,
    RootFile::SyntheticEvents,
    RootFile::UprobeEvents,
];

/// Optional root files whose writes the simulation implements; the others are hidden even
/// when the snapshotted kernel had them.
const EMULATED_OPTIONAL_FILES: &[RootFile] = &[
    RootFile::DynamicEvents,
    RootFile::KprobeEvents,
    RootFile::KprobeProfile,
    RootFile::SetFtraceFilter,
    RootFile::SetFtraceNotrace,
    RootFile::SetFtraceNotracePid,
    RootFile::SetFtracePid,
    RootFile::Snapshot,
    RootFile::SyntheticEvents,
    RootFile::UprobeEvents,
];

/// `README` entries for things that are not files (kept whenever their parent is).
const NON_FILE_ENTRIES: &[&str] = &["instances", "events/"];

/// `available_tracers` of the simulation: the snapshotted kernel's list, keeping only the
/// tracers the simulation runs (`function` only with a function list), in the kernel's order.
pub fn available_tracers(snapshot: &str, has_functions: bool) -> String {
    let kept: Vec<&str> = snapshot
        .split_whitespace()
        .filter(|t| EMULATED_TRACERS.contains(t) && (has_functions || *t != "function"))
        .collect();
    let mut out = if kept.is_empty() {
        "nop".to_string()
    } else {
        kept.join(" ")
    };
    out.push('\n');
    out
}

/// The bit mask of [`ROOT_FILES`] rows the simulation serves at the top level: every
/// mandatory file, and an optional one when the snapshotted kernel had it (its README names
/// it) and the simulation implements it.
pub fn root_files_mask(readme: &str, has_functions: bool) -> u64 {
    ROOT_FILES
        .iter()
        .enumerate()
        .filter(|(_, spec)| match spec.kind {
            FileKind::Root(file) if OPTIONAL_ROOT_FILES.contains(&file) => {
                // The README does not name `kprobe_profile`: it comes with `kprobe_events`;
                // it names `synthetic_events` by its other path, `events/synthetic_events`.
                let named = match file {
                    RootFile::KprobeProfile => "kprobe_events",
                    RootFile::SyntheticEvents => "events/synthetic_events",
                    _ => spec.name,
                };
                EMULATED_OPTIONAL_FILES.contains(&file)
                    && readme_names(readme, named)
                    && (has_functions || !FUNCTION_TRACER_FILES.contains(&file))
            }
            _ => true,
        })
        .fold(0, |mask, (row, _)| mask | 1 << row)
}

/// Cuts `tree` down to what the simulation serves, once when a catalog tree is made: hides
/// the optional root files it does not implement (see [`root_files_mask`]) and puts the
/// matching `README` and `available_tracers` in place of the snapshotted ones.
pub fn prepare_tree(tree: &mut Tree) {
    let text_of = |name: &[u8]| {
        tree.find(ROOT_INO, name)
            .and_then(|found| {
                tree.with_static_content(found.node.ino, |b| {
                    String::from_utf8_lossy(b).into_owned()
                })
            })
            .unwrap_or_default()
    };
    let (snapshot_readme, snapshot_tracers) = (text_of(b"README"), text_of(b"available_tracers"));
    let has_functions = tree.with_functions(|list| !list.is_empty());
    tree.set_root_files(root_files_mask(&snapshot_readme, has_functions));
    let served = |name: &str| tree.find(ROOT_INO, name.as_bytes()).is_ok();
    let readme = readme(&snapshot_readme, served);
    tree.replace_root_texts(
        readme.into_bytes(),
        available_tracers(&snapshot_tracers, has_functions).into_bytes(),
    );
}

/// Whether `readme` has an entry for the file `name`.
fn readme_names(readme: &str, name: &str) -> bool {
    readme.lines().any(|line| entry_name(line) == Some(name))
}

/// The name a README line introduces (`  trace_pipe\t\t- A consuming read ...` introduces
/// `trace_pipe`), if it starts an entry: two spaces, a name, white space and a dash.
fn entry_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("  ")?;
    if rest.starts_with([' ', '\t']) {
        return None;
    }
    let end = rest.find([' ', '\t'])?;
    let (name, tail) = rest.split_at(end);
    tail.trim_start().starts_with('-').then_some(name)
}

/// The snapshotted README without the entries (and their continuation lines) for top-level
/// files the simulation does not serve (`served` says which names it does), and without the
/// part of the help the simulation does not do (the function triggers: the
/// `set_ftrace_filter` parser refuses them).
pub fn readme(snapshot: &str, served: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(snapshot.len());
    let mut skipping = false;
    let mut unsimulated = UnsimulatedText::No;
    for line in snapshot.split_inclusive('\n') {
        if let Some(name) = entry_name(line) {
            skipping = !match name.strip_prefix("events/") {
                // `events/synthetic_events` is a file; `events/<system>/` is the tree.
                Some(file) if !file.contains('<') => served(file),
                Some(_) => true,
                None => served(name) || NON_FILE_ENTRIES.contains(&name),
            };
            unsimulated = UnsimulatedText::No;
        } else if !continues_entry(line) {
            skipping = false;
            if !line.trim().is_empty() {
                unsimulated = UnsimulatedText::No;
            }
        }
        unsimulated = unsimulated.next(line);
        if !skipping && unsimulated == UnsimulatedText::No {
            out.push_str(line);
        }
    }
    out
}

/// Where a README line stands in the unsimulated part of the help: `set_ftrace_filter`'s
/// function triggers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnsimulatedText {
    /// Shown.
    No,
    /// To the end of the entry (the function triggers close `set_ftrace_filter`'s help).
    Rest,
}

impl UnsimulatedText {
    fn next(self, line: &str) -> UnsimulatedText {
        let text = line.trim();
        match self {
            UnsimulatedText::Rest => UnsimulatedText::Rest,
            UnsimulatedText::No => {
                if text.starts_with("triggers: a command to perform when function is hit") {
                    UnsimulatedText::Rest
                } else {
                    UnsimulatedText::No
                }
            }
        }
    }
}

/// A line that belongs to the entry above it: indented deeper than an entry line.
fn continues_entry(line: &str) -> bool {
    line.starts_with('\t') || line.starts_with("   ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "tracing mini-HOWTO:\n\n Important files:\n  trace\t\t\t- The static contents of the buffer\n\t\t\t  To clear the buffer write into this file: echo > trace\n  timestamp_mode\t- view the mode used to timestamp events\n       delta:   Delta difference against a buffer-wide timestamp\n    absolute:   Absolute (standalone) timestamp\n\n  trace_marker\t\t- Writes into this file writes into the kernel buffer\n  uprobe_events\t\t- Create/append/remove/show the userspace dynamic events\n\t  accepts: event-definitions (one definition per line)\n   place (uprobe): <path>:<offset>[%return][(ref_ctr_offset)]\n  instances\t\t- Make sub-buffers with: mkdir instances/foo\n  events/<system>/\t- Directory containing all trace events for <system>:\n      enable\t\t- Write 0/1 to enable/disable tracing of all <system>\n";

    #[test]
    fn tracers_keep_only_what_runs() {
        assert_eq!(available_tracers("blk function nop\n", false), "nop\n");
        assert_eq!(
            available_tracers("blk mmiotrace function_graph function nop\n", true),
            "function nop\n"
        );
        assert_eq!(available_tracers("", false), "nop\n");
    }

    #[test]
    fn entries_of_missing_files_go_with_their_continuations() {
        let served = |name: &str| matches!(name, "trace" | "trace_marker");
        let out = readme(README, served);
        assert!(out.contains("  trace\t\t\t- The static"), "{out}");
        assert!(out.contains("echo > trace\n"), "{out}");
        assert!(out.contains("  trace_marker\t\t- Writes"), "{out}");
        assert!(!out.contains("timestamp"), "{out}");
        assert!(!out.contains("uprobe"), "{out}");
        assert!(!out.contains("place (uprobe)"), "{out}");
        assert!(out.contains("  instances\t\t- Make"), "{out}");
        assert!(out.contains("      enable\t\t- Write 0/1"), "{out}");
        // The blank line after an entry and the prose before the entries stay.
        assert!(out.starts_with("tracing mini-HOWTO:\n\n Important files:\n"));
        assert!(out.contains("echo > trace\n\n  trace_marker"), "{out}");
    }

    #[test]
    fn optional_files_need_the_kernel_and_the_simulation() {
        let mask = root_files_mask(README, false);
        let row = |file: RootFile| {
            ROOT_FILES
                .iter()
                .position(|s| s.kind == FileKind::Root(file))
                .unwrap()
        };
        assert_ne!(mask & 1 << row(RootFile::Trace), 0);
        // Named by the README and implemented.
        assert_ne!(mask & 1 << row(RootFile::UprobeEvents), 0);
        // Implemented, but not named by this README (the kernel had no dynamic_events).
        assert_eq!(mask & 1 << row(RootFile::DynamicEvents), 0);
        // Not named by the README.
        assert_eq!(mask & 1 << row(RootFile::KprobeEvents), 0);
        // Named, implemented, but kprobes need the function list.
        let readme = format!("{README}  kprobe_events\t\t- Create/append/remove/show\n");
        assert_eq!(mask & 1 << row(RootFile::SyntheticEvents), 0);
        let with_synthetic =
            format!("{README}  events/synthetic_events\t- Create/append/remove/show\n");
        assert_ne!(
            root_files_mask(&with_synthetic, false) & 1 << row(RootFile::SyntheticEvents),
            0
        );
        for file in [RootFile::KprobeEvents, RootFile::KprobeProfile] {
            assert_eq!(root_files_mask(&readme, false) & 1 << row(file), 0);
            assert_ne!(root_files_mask(&readme, true) & 1 << row(file), 0);
        }
    }

    #[test]
    fn entry_lines_are_recognised() {
        assert_eq!(
            entry_name("  trace_pipe\t\t- A consuming"),
            Some("trace_pipe")
        );
        assert_eq!(
            entry_name("  buffer_total_size_kb  - view total"),
            Some("buffer_total_size_kb")
        );
        assert_eq!(entry_name("      enable\t\t- Write"), None);
        assert_eq!(entry_name(" Important files:"), None);
        assert_eq!(
            entry_name("  saved_cmdlines_size\t- echo"),
            Some("saved_cmdlines_size")
        );
    }
}
