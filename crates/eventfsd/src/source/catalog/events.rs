//! The files of `events/`: `enable` at event, system and top level, `filter`, `trigger`,
//! `hist`. What `kernel/trace/trace_events.c` and `trace_events_trigger.c` do for them.

use eventfs_core::layout::FileKind;
use eventfs_core::tree::{DirId, Ino, NodeRef, Tree};
use eventfs_core::FsError;
use ftrace_text::{filter, format, trigger};

use super::hist;
use super::hist_refs;
use super::input::{parse_enable, written_text};
use super::snapshot;
use super::state::{FilterSlot, State};

/// Content of a file of `events/` (event, system and top-level files).
pub fn read(state: &State, tree: &Tree, node: NodeRef, kind: FileKind) -> Result<Vec<u8>, FsError> {
    let key = node.dir_ino();
    Ok(match kind {
        FileKind::EventEnable => {
            let on = if state.is_enabled(key) { "1" } else { "0" };
            let soft = if soft_mode(state, tree, node.dir, key) {
                "*"
            } else {
                ""
            };
            format!("{on}{soft}\n").into_bytes()
        }
        FileKind::SystemEnable | FileKind::EventsEnable => {
            summary_below(state, tree, node.dir).to_vec()
        }
        FileKind::EventFilter => match state.events().get(&key).map(|s| &s.filter) {
            Some(FilterSlot::Active(f)) => f.filter_file_text().into_bytes(),
            Some(FilterSlot::Failed(shown)) => shown.clone().into_bytes(),
            Some(FilterSlot::Unset) | None => b"none\n".to_vec(),
        },
        FileKind::SystemFilter => filter::SYSTEM_FILTER_TEXT.as_bytes().to_vec(),
        FileKind::EventTrigger => {
            // What the kernel lists depends on what it was built with.
            let help = if !tree.event_has_file(node.dir, FileKind::EventHist) {
                trigger::HELP_TEXT_NO_HIST_SNAPSHOT
            } else if snapshot::is_served(tree) {
                trigger::HELP_TEXT
            } else {
                trigger::HELP_TEXT_NO_SNAPSHOT
            };
            match state.events().get(&key) {
                Some(s) => s.triggers.render_with_help(help).into_bytes(),
                None => help.as_bytes().to_vec(),
            }
        }
        FileKind::EventHist => hist::hist_file(state.events().get(&key)),
        // Only the kernel's debug build has it, and none was snapshotted with it.
        FileKind::EventHistDebug => Vec::new(),
        FileKind::EventInject => return Err(FsError::Invalid("inject is write-only".into())),
        _ => return tree.with_static_content(node.ino, <[u8]>::to_vec),
    })
}

/// Applies a write to a file of `events/`.
pub fn write(
    state: &State,
    tree: &Tree,
    node: NodeRef,
    kind: FileKind,
    data: &[u8],
) -> Result<(), FsError> {
    let text = written_text(data)?;
    match kind {
        FileKind::EventEnable => {
            let on = parse_enable(data)?;
            state.update(node.dir_ino(), |s| s.enabled = on);
        }
        FileKind::SystemEnable | FileKind::EventsEnable => {
            state.set_enabled_below(tree, node.dir, parse_enable(data)?)
        }
        FileKind::EventFilter => write_event_filter(state, tree, node.dir, node.dir_ino(), text)?,
        FileKind::SystemFilter => write_system_filter(state, tree, node.dir, text)?,
        FileKind::EventTrigger => write_trigger(state, tree, node.dir, node.dir_ino(), text)?,
        _ => return Err(FsError::Invalid(format!("{kind:?} is not writable"))),
    }
    Ok(())
}

/// The `0`/`1`/`X`/`?` summary of a system or top-level `enable`.
fn summary_below(state: &State, tree: &Tree, dir: DirId) -> &'static [u8] {
    let targets = tree.events_with_file(dir, FileKind::EventEnable);
    let events = state.events();
    let on = targets
        .iter()
        .filter(|(_, key)| events.get(key).is_some_and(|s| s.enabled))
        .count();
    match (on, targets.len() - on) {
        (0, 0) => b"?\n",
        (_, 0) => b"1\n",
        (0, _) => b"0\n",
        _ => b"X\n",
    }
}

/// Whether `event` runs in soft mode: it has triggers, or another event's
/// `enable_event`/`disable_event`/`enable_hist`/`disable_hist` trigger targets it (`enable`
/// then shows `*`).
fn soft_mode(state: &State, tree: &Tree, event: DirId, key: Ino) -> bool {
    let events = state.events();
    if events.is_empty() {
        return false;
    }
    if events.get(&key).is_some_and(|s| !s.triggers.is_empty()) {
        return true;
    }
    let (system, name) = (tree.dir_name(tree.parent_of(event)), tree.dir_name(event));
    events
        .values()
        .flat_map(|s| s.triggers.triggers())
        .any(|t| match &t.action {
            trigger::Action::EnableEvent {
                system: s,
                event: e,
            }
            | trigger::Action::DisableEvent {
                system: s,
                event: e,
            }
            | trigger::Action::EnableHist {
                system: s,
                event: e,
            }
            | trigger::Action::DisableHist {
                system: s,
                event: e,
            } => *s == system && *e == name,
            _ => false,
        })
}

fn write_event_filter(
    state: &State,
    tree: &Tree,
    event: DirId,
    key: Ino,
    text: &str,
) -> Result<(), FsError> {
    let parsed = tree.with_live_format(key, |fmt| {
        let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
        filter::parse(text, &fields)
    })?;
    match parsed {
        Ok(f) => set_filter(state, key, f),
        Err(e) => {
            state.log_error(tree, event, e.error_log_entry());
            if let Some(shown) = e.filter_file_text() {
                state.update(key, |s| s.filter = FilterSlot::Failed(shown));
            }
            return Err(filter_errno(&e));
        }
    }
    Ok(())
}

/// Like the kernel: every event of the system gets the filter where it parses and the
/// subsystem error where it does not; the write itself succeeds if the system has events.
fn write_system_filter(
    state: &State,
    tree: &Tree,
    system: DirId,
    text: &str,
) -> Result<(), FsError> {
    let events = tree.events_below(system);
    if events.is_empty() {
        return Err(FsError::NotFound);
    }
    for event in events {
        let key = tree.dir_ino(event);
        let Ok(parsed) = tree.with_live_format(key, |fmt| {
            let fields: Vec<format::Field<'_>> = format::fields(fmt).collect();
            filter::parse_for_system(text, &fields)
        }) else {
            // Removed since the system was listed: it has no filter to set.
            continue;
        };
        match parsed {
            Ok(f) => set_filter(state, key, f),
            Err(e) => {
                if !e.replaces_filter() {
                    return Err(filter_errno(&e));
                }
                state.log_error(tree, event, e.error_log_entry());
                let shown = e.filter_file_text().unwrap_or_default();
                state.update(key, |s| s.filter = FilterSlot::Failed(shown));
            }
        }
    }
    Ok(())
}

fn write_trigger(
    state: &State,
    tree: &Tree,
    event: DirId,
    key: Ino,
    text: &str,
) -> Result<(), FsError> {
    if text.trim().is_empty() {
        return Ok(());
    }
    // A kernel without histograms and snapshots (its events have no `hist` file) registers
    // no such trigger command: unknown commands are EINVAL, with no error_log entry.
    let command = trigger::command_name(text);
    if trigger::HIST_AND_SNAPSHOT_COMMANDS.contains(&command)
        && !tree.event_has_file(event, FileKind::EventHist)
    {
        return Err(FsError::Invalid(format!(
            "trigger command {command:?} is not in the snapshotted kernel"
        )));
    }
    if command == "snapshot" && !snapshot::is_served(tree) {
        return Err(FsError::Invalid(
            "the snapshot trigger: the snapshotted kernel has no snapshot buffer".into(),
        ));
    }
    let events_dir = tree.events_dir_of(tree.instance_of(event));
    let exists = |system: &str, name: &str| {
        events_dir.is_some_and(|dir| tree.find_event_in(dir, system, name).is_some())
    };
    // The parser looks other events up in the tree (`exists`): parse a copy of the format,
    // not under the tree's lock, which a waiting writer would make a second reader wait on.
    let format = tree.with_live_format(key, str::to_string)?;
    let fields: Vec<format::Field<'_>> = format::fields(&format).collect();
    let dialect = trigger::HistDialect::for_release(&tree.kernel_release());
    let parsed = trigger::parse_in(dialect, text, &fields, &exists);
    let log = |e: &trigger::TriggerError| {
        let system = tree.dir_name(tree.parent_of(event));
        state.log_error(
            tree,
            event,
            e.error_log_entry(&system, &tree.dir_name(event)),
        );
        trigger_errno(e)
    };
    let mut command = parsed.map_err(|e| log(&e))?;
    hist::share_named(&state.events(), &mut command).map_err(|e| log(&e))?;
    if hist_refs::removes_referenced(tree, &state.events(), event, &command) {
        return Err(FsError::Os(libc::EBUSY));
    }
    let references = hist_refs::bind_references(tree, &state.events(), event, &mut command);
    let bound = match references {
        Ok(bound) => bound,
        Err(entries) => {
            // Every entry is logged; the write returns the last one's errno.
            let mut errno = FsError::Invalid("hist: reference refused".into());
            for entry in &entries {
                errno = log(entry);
            }
            return Err(errno);
        }
    };
    for entry in &bound.logged {
        log(entry);
    }
    // The histograms its field variables need go first; like 6.1's, they stay if the
    // trigger itself then fails.
    for made in bound.created {
        let added = state.update(tree.dir_ino(made.event), |s| {
            s.triggers.apply(trigger::TriggerCommand::Add(made.trigger))
        });
        if let Err(e) = added {
            log::warn!("catalog: a field variable histogram was refused: {e}");
        }
    }
    let created = hist_refs::created_by(tree, &state.events(), event, &command);
    // Setting a snapshot trigger allocates the snapshot buffer, as the kernel's does.
    // So does a histogram with a `snapshot()` action.
    let allocates = match &command {
        trigger::TriggerCommand::Add(t) => match &t.action {
            trigger::Action::Snapshot => true,
            trigger::Action::Hist(spec) => spec.actions.iter().any(|a| a.snapshot),
            _ => false,
        },
        _ => false,
    };
    state
        .update(key, |s| s.triggers.apply(command))
        .map_err(|e| log(&e))?;
    remove_created(state, tree, event, &created);
    if allocates {
        snapshot::allocate_for(state, tree, event);
    }
    Ok(())
}

/// Removes the field variable histograms a removed histogram made.
fn remove_created(state: &State, tree: &Tree, event: DirId, created: &[trigger::CreatedHist]) {
    let events_dir = tree.events_dir_of(tree.instance_of(event));
    for made in created {
        let Some(target) =
            events_dir.and_then(|d| tree.find_event_in(d, &made.system, &made.event))
        else {
            continue;
        };
        // Another maker that reused its variable still reads it: the kernel's removal is then
        // refused (EBUSY, which it only warns about), and the histogram stays.
        if hist_refs::hist_is_read(tree, &state.events(), target, &made.command) {
            log::info!(
                "{}/{}: {} stays, another histogram reads it",
                made.system,
                made.event,
                made.command
            );
            continue;
        }
        state.update(tree.dir_ino(target), |s| {
            s.triggers.retain(
                |t| !matches!(&t.action, trigger::Action::Hist(h) if h.command == made.command),
            )
        });
    }
}

/// Opening `trigger` with O_TRUNC removes the event's histograms and its `enable_hist` and
/// `disable_hist` triggers (the kernel's `unreg_all`), the other triggers stay; histograms
/// another reads all stay, silently.
pub fn truncate_triggers(state: &State, tree: &Tree, event: DirId) {
    if hist_refs::event_is_read(tree, &state.events(), event) {
        log::debug!("trigger opened with O_TRUNC: its histograms are read by others, kept");
        return;
    }
    state.update(tree.dir_ino(event), |s| {
        s.triggers.retain(|t| {
            !matches!(
                t.action,
                trigger::Action::Hist(_)
                    | trigger::Action::EnableHist { .. }
                    | trigger::Action::DisableHist { .. }
            )
        })
    });
}

/// Stores a parsed filter (`0` parses to the empty filter, which clears it).
fn set_filter(state: &State, key: Ino, filter: filter::Filter) {
    let slot = if filter.is_none() {
        FilterSlot::Unset
    } else {
        FilterSlot::Active(filter)
    };
    state.update(key, |s| s.filter = slot);
}

fn filter_errno(e: &filter::FilterError) -> FsError {
    match e.errno() {
        libc::EINVAL => FsError::Invalid(e.to_string()),
        other => FsError::Os(other),
    }
}

fn trigger_errno(e: &trigger::TriggerError) -> FsError {
    match e.errno() {
        libc::EINVAL => FsError::Invalid(e.to_string()),
        libc::EEXIST => FsError::Exists,
        libc::ENOENT => FsError::Os(libc::ENOENT),
        other => FsError::Os(other),
    }
}
