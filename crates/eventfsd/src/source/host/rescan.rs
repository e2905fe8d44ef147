//! Keeping the tree in step with the host: dynamic events (kprobes, uprobes, synthetic,
//! eprobes) and module tracepoints come and go on the host. A rescan diffs the host's events
//! (the top level's `available_events`, one file) against the tree and adds or removes
//! events; added nodes are dynamic, so the guest caches them only briefly. The check that
//! decides whether to rescan is cheaper still: the list of systems and the content of
//! `dynamic_events`, with a full rescan now and then for events a module adds to an existing
//! system. Checks run only while the guest looks
//! ([`super::change_watch::ChangeWatch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use eventfs_core::catalog::valid_name;
use eventfs_core::layout::{DirKind, EVENT_FILES};
use eventfs_core::snapshot::{parse_id, read_whole};
use eventfs_core::tree::NewEvent;
use eventfs_core::{NodeKind, Tree, ROOT_INO};

use super::change_watch::list_dirs;
pub use super::change_watch::RescanReport;
use super::forward::{HostControl, HostView};

/// Every (system, event) the host has, from the top level's `available_events` (`system:event`
/// lines): one read of one file, where listing `events/` would make the kernel build an inode
/// for every directory it walks.
pub fn host_events(top: &Path) -> io::Result<BTreeSet<(String, String)>> {
    let text = read_whole(&top.join("available_events"))?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(system, event)| valid_name(system.as_bytes()) && valid_name(event.as_bytes()))
        .map(|(system, event)| (system.to_string(), event.to_string()))
        .collect())
}

/// The kernel's own formats (`ftrace/function`, `ftrace/print`, ...): built in, never
/// enabled through tracefs, so `available_events` does not list them; they are never removed.
const INTERNAL_SYSTEM: &str = "ftrace";

/// Every (system, event) in the tree's `events/`.
pub fn tree_events(tree: &Tree) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(events) = tree.find(ROOT_INO, b"events") else {
        return out;
    };
    let mut systems = Vec::new();
    let _ = tree.readdir(events.node.ino, 0, &mut |e| {
        if !e.is_dot && e.attr.node.kind == NodeKind::Dir(DirKind::System) {
            systems.push((
                e.attr.node.ino,
                String::from_utf8_lossy(e.name).into_owned(),
            ));
        }
        true
    });
    for (ino, system) in systems {
        let set = out.entry(system).or_default();
        let _ = tree.readdir(ino, 0, &mut |e| {
            if !e.is_dot && e.attr.node.kind == NodeKind::Dir(DirKind::Event) {
                set.insert(String::from_utf8_lossy(e.name).into_owned());
            }
            true
        });
    }
    out
}

/// Reads one host event directory into what `Tree::add_event` needs: (id, file mask, format).
pub fn read_event(event_dir: &Path) -> io::Result<(u32, u64, String)> {
    let (_, files) = list_dirs(event_dir)?;
    let mask = files
        .iter()
        .filter_map(|f| EVENT_FILES.iter().position(|s| s.name == f))
        .fold(0u64, |m, slot| m | 1 << slot);
    let format = std::fs::read_to_string(event_dir.join("format"))?;
    let id = parse_id(&format)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "format has no ID line"))?;
    Ok((id, mask, format))
}

/// Diffs the host's events against the tree and applies the difference; updates the
/// control's view of hidden events.
pub fn rescan(tree: &Tree, control: &HostControl) -> io::Result<RescanReport> {
    reconcile(tree, control, false)
}

/// [`rescan`]; with `startup`, events the tree lacks that are not dynamic are part of the
/// kernel the daemon started on (loaded after the shared snapshot was taken), not events that
/// appeared later, and are shown as the snapshot's are.
pub fn reconcile(tree: &Tree, control: &HostControl, startup: bool) -> io::Result<RescanReport> {
    // A new event's files read from the top level: an instance's are the same in shape (and
    // ours may not exist yet).
    let events_dir = control.top_path().join("events");
    let host = host_events(control.top_path())?;
    let policy = control.policy();
    let initial_dynamic = control
        .dynamic_names
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let in_tree = tree_events(tree);
    let mut report = RescanReport::default();
    let mut hidden = BTreeSet::new();
    let tree_has = |s: &str, e: &str| in_tree.get(s).is_some_and(|set| set.contains(e));
    for (system, event) in &host {
        let visible = policy.event_visible(system, event)
            && (policy.show_dynamic
                || ((startup || tree_has(system, event))
                    && !initial_dynamic.contains(&(system.clone(), event.clone()))));
        if !visible {
            hidden.insert((system.clone(), event.clone()));
            continue;
        }
        if tree_has(system, event) {
            continue;
        }
        match read_event(&events_dir.join(system).join(event)) {
            Ok((id, files, format)) => {
                let new = NewEvent {
                    system,
                    name: event,
                    id,
                    files,
                    format: &format,
                };
                match tree.add_event(&new) {
                    Ok(_) => report.added.push((system.clone(), event.clone())),
                    Err(e) => log::warn!("rescan: cannot add {system}/{event}: {e}"),
                }
            }
            // Gone again before we read it: the next rescan settles it.
            Err(e) => log::debug!("rescan: {system}/{event}: {e}"),
        }
    }
    for (system, events) in &in_tree {
        if system == INTERNAL_SYSTEM {
            continue;
        }
        let mut left = events.len();
        for event in events {
            let key = (system.clone(), event.clone());
            if host.contains(&key) && !hidden.contains(&key) {
                continue;
            }
            if tree.remove(system, Some(event)).is_ok() {
                report.removed.push(key);
                left -= 1;
            }
        }
        if left == 0 && !events.is_empty() {
            let _ = tree.remove(system, None);
        }
    }
    control.set_view(HostView {
        events: host.into_iter().collect(),
        hidden: hidden.into_iter().collect(),
    });
    Ok(report)
}
