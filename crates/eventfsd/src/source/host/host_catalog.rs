//! What the guest sees of the host's events: the host instance walked into a catalog, with
//! what the policy hides left out and dynamic events set apart, and the tree built from it.

use std::collections::BTreeSet;
use std::path::Path;

use eventfs_core::catalog::Catalog;
use eventfs_core::layout::{FileKind, RootFile, ROOT_FILES};
use eventfs_core::snapshot::snapshot;
use eventfs_core::tree::{Image, NewEvent};
use eventfs_core::{Tree, TreeConfig};

use super::error::HostError;
use super::forward::HostView;
use super::policy::Policy;

/// (system, event) names listed in the top level's `dynamic_events` (or the per-type files):
/// `p:kprobes/name ...`, `e:eprobes/name ...`, `s:name ...`, ...
pub fn dynamic_event_names(top: &Path) -> BTreeSet<(Option<String>, String)> {
    let mut out = BTreeSet::new();
    for file in [
        "dynamic_events",
        "kprobe_events",
        "uprobe_events",
        "synthetic_events",
    ] {
        let Ok(text) = std::fs::read_to_string(top.join(file)) else {
            continue;
        };
        for line in text.lines() {
            let Some(first) = line.split_whitespace().next() else {
                continue;
            };
            // Synthetic events are listed bare (`name field; ...`) in synthetic_events.
            let spec = first.split_once(':').map_or(first, |(_, s)| s);
            match spec.split_once('/') {
                Some((group, name)) => out.insert((Some(group.to_string()), name.to_string())),
                None => out.insert((None, spec.to_string())),
            };
        }
    }
    out
}

/// Groups dynamic events use when none is given.
pub const DEFAULT_DYNAMIC_GROUPS: &[&str] = &["kprobes", "uprobes", "synthetic", "eprobes"];

/// Whether (system, event) is one of the dynamic events `names` lists (an event listed
/// without a group is in its type's default group).
pub fn is_dynamic(names: &BTreeSet<(Option<String>, String)>, system: &str, event: &str) -> bool {
    names.contains(&(Some(system.to_string()), event.to_string()))
        || (DEFAULT_DYNAMIC_GROUPS.contains(&system) && names.contains(&(None, event.to_string())))
}

/// (system, event) names.
pub type EventNames = BTreeSet<(String, String)>;

/// Builds the tree of the instance at `instance_dir` (with global files of `top_dir`) under
/// `policy`. Returns the tree, the view of hidden events and the dynamic events found.
pub fn build_tree(
    instance_dir: &Path,
    top_dir: &Path,
    policy: &Policy,
    config: TreeConfig,
) -> Result<(Tree, HostView, EventNames), HostError> {
    let (catalog, view, dynamic, dynamic_set) = filtered_catalog(instance_dir, top_dir, policy)?;
    let image = catalog.encode();
    let tree = Tree::from_image(Image::Owned(image.into_boxed_slice()), config)?;
    for ((system, name), id, files, format) in &dynamic {
        let new = NewEvent {
            system,
            name,
            id: *id,
            files: *files,
            format,
        };
        if let Err(e) = tree.add_event(&new) {
            log::warn!("cannot add dynamic event {system}/{name}: {e}");
        }
    }
    tree.set_root_files(root_files_mask(Some(instance_dir), top_dir, policy));
    Ok((tree, view, dynamic_set))
}

/// A dynamic event found by the snapshot: (system, name), id, file mask, format.
pub type DynamicEvent = ((String, String), u32, u64, String);

/// The kernel release, as the catalog records it.
pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Walks the instance at `instance_dir` into the catalog the guest may see under `policy`:
/// hidden and dynamic events left out (dynamic ones are returned apart, to be added as
/// dynamic nodes when the policy shows them), tracers filtered, the top level's README.
pub fn filtered_catalog(
    instance_dir: &Path,
    top_dir: &Path,
    policy: &Policy,
) -> Result<(Catalog, HostView, Vec<DynamicEvent>, EventNames), HostError> {
    let mut catalog = snapshot(instance_dir, &kernel_release())?;
    // README is global-only; the instance has none, so take the top level's.
    catalog.readme = std::fs::read_to_string(top_dir.join("README")).unwrap_or_default();
    // Tools offer the tracers they read here: only those the guest may select.
    let tracers: Vec<&str> = catalog
        .available_tracers
        .split_whitespace()
        .filter(|t| policy.tracer_allowed(t))
        .collect();
    catalog.available_tracers = format!("{}\n", tracers.join(" "));
    let dynamic_names = dynamic_event_names(top_dir);
    let mut events = Vec::new();
    let mut hidden = Vec::new();
    let mut dynamic = Vec::new();
    let mut dynamic_set = BTreeSet::new();
    for system in &mut catalog.systems {
        let name = system.name.clone();
        system.events.retain(|event| {
            let key = (name.clone(), event.name.clone());
            events.push(key.clone());
            if !policy.event_visible(&name, &event.name) {
                hidden.push(key);
                return false;
            }
            if is_dynamic(&dynamic_names, &name, &event.name) {
                dynamic_set.insert(key.clone());
                if policy.show_dynamic {
                    // Added after the build, as a dynamic node: the guest caches it briefly.
                    dynamic.push((key, event.id, u64::from(event.files), event.format.clone()));
                } else {
                    hidden.push(key);
                }
                return false;
            }
            true
        });
    }
    catalog.systems.retain(|s| !s.events.is_empty());
    let view = HostView {
        events: events.into_iter().collect(),
        hidden: hidden.into_iter().collect(),
    };
    Ok((catalog, view, dynamic, dynamic_set))
}

/// Which root files the guest sees: those the instance has, `README` and a filtered
/// `available_events`, and the global files the policy allows (if the host has them).
///
/// `instance_dir` is `None` while the instance is not made yet (see
/// [`super::OwnInstanceAt::FirstOpen`]): an instance then has each per-instance file the top level
/// has. (On 6.18 the top level's extra files are all global ones: README, available_events,
/// the function lists, dynamic and uprobe events, printk_formats, saved_*, tracing_thresh.)
pub fn root_files_mask(instance_dir: Option<&Path>, top_dir: &Path, policy: &Policy) -> u64 {
    let instance_dir = instance_dir.unwrap_or(top_dir);
    let mut mask = 0u64;
    for (slot, spec) in ROOT_FILES.iter().enumerate() {
        let FileKind::Root(file) = spec.kind else {
            continue;
        };
        let present = match file {
            RootFile::AvailableEvents => true,
            // Not forwarded: the tenant scope is kept through set_event_pid alone.
            RootFile::SetEventNotracePid => false,
            // Not forwarded: a snapshot doubles the instance's ring buffers in host memory,
            // past what the policy sizes.
            RootFile::Snapshot => false,
            // Not forwarded: the function tracer is the policy's business (current_tracer);
            // its filters are not part of what a guest may set on the host.
            RootFile::SetFtraceFilter
            | RootFile::SetFtraceNotrace
            | RootFile::SetFtraceNotracePid
            | RootFile::SetFtracePid => false,
            RootFile::Readme => top_dir.join("README").exists(),
            f if f.is_global_only() => {
                policy.global_file_allowed(spec.name) && top_dir.join(spec.name).exists()
            }
            _ => instance_dir.join(spec.name).exists(),
        };
        if present {
            mask |= 1 << slot;
        }
    }
    mask
}
