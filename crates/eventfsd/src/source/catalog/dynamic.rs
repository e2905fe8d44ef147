//! Dynamic events of the simulated kernel: `uprobe_events`, `kprobe_events`,
//! `synthetic_events` and `dynamic_events` create and remove uprobe, kprobe, synthetic and
//! event-probe events, with the kernel's syntax, errors and listings (`ftrace_text::probe`). Each new event gets a directory in
//! `events/<group>/` of every instance, a `format` derived from its definition and the next
//! free id; it then fires like any event: a uprobe at its profile rate (the guest's binaries
//! are not visible here, so every probed path is taken as it is written), a kprobe at its
//! functions' rates (see [`super::kprobes`]), an event probe whenever its attached event fires. A synthetic event never fires by itself:
//! only histogram actions generate one, as in the kernel.

use std::sync::Mutex;

use eventfs_core::layout::{FileKind, EVENT_FILES};
use eventfs_core::tree::{NewEvent, Tree, ROOT_INO};
use eventfs_core::FsError;
use ftrace_text::functions::FunctionTable;
use ftrace_text::probe::{
    self, command_lines, layout::ShapeMismatch, libc_errno, LoggedError, ProbeCommand, ProbeDef,
    ProbeKind, Via,
};
use ftrace_text::trigger::Action;
use ftrace_text::{filter, format};

use super::recorder::Recorder;
use super::state::{lock, Attachment, State};

/// Files of a probe event's directory: `hist` when the snapshotted kernel's events have one
/// (`has_hist`), never `inject`.
fn probe_event_files(has_hist: bool) -> u64 {
    EVENT_FILES
        .iter()
        .enumerate()
        .filter(|(_, spec)| match spec.kind {
            FileKind::EventEnable
            | FileKind::EventFilter
            | FileKind::EventFormat
            | FileKind::EventId
            | FileKind::EventTrigger => true,
            FileKind::EventHist => has_hist,
            _ => false,
        })
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

/// One defined probe (several uprobes may share one event: the kernel's multi-probe).
struct Probe {
    def: ProbeDef,
    id: u32,
}

/// The dynamic events in creation order.
#[derive(Default)]
pub struct DynamicEvents {
    probes: Mutex<Vec<Probe>>,
}

/// Looks up attachable events for the parser (any event of the global `events/` that is not
/// itself a probe) and, when the kernel has kprobes, its functions.
struct Targets<'a> {
    tree: &'a Tree,
    probes: &'a [Probe],
    functions: Option<&'a FunctionTable>,
    synthetic_events: bool,
}

impl probe::AttachTarget for Targets<'_> {
    fn fields_of(&self, system: &str, event: &str) -> Option<Vec<(String, bool)>> {
        if self
            .probes
            .iter()
            .any(|p| p.def.group == system && p.def.event == event)
        {
            return None;
        }
        let dir = self.tree.find_event(system, event)?;
        let text = self.tree.with_format(dir, str::to_string);
        Some(
            format::fields(&text)
                .filter(|f| !f.name.starts_with("common_"))
                .map(|f| (f.name.to_string(), format::is_string(&f)))
                .collect(),
        )
    }

    fn has_kprobes(&self) -> bool {
        self.functions.is_some()
    }

    fn functions_named(&self, symbol: &str) -> usize {
        self.functions.map_or(0, |f| f.named(symbol).count())
    }

    fn has_synthetic_events(&self) -> bool {
        self.synthetic_events
    }

    fn synthetic_event_exists(&self, name: &str) -> bool {
        self.probes
            .iter()
            .any(|p| matches!(p.def.kind, ProbeKind::Synthetic { .. }) && p.def.event == name)
    }
}

/// Whether the file `via` lists (and removes) `probe`.
fn shows(probe: &Probe, via: Via) -> bool {
    match via {
        Via::DynamicEvents => true,
        Via::UprobeEvents => matches!(probe.def.kind, ProbeKind::Uprobe { .. }),
        Via::KprobeEvents => matches!(probe.def.kind, ProbeKind::Kprobe { .. }),
        Via::SyntheticEvents => matches!(probe.def.kind, ProbeKind::Synthetic { .. }),
    }
}

/// The kernel's default number of kretprobe instances: `max(10, 2 * CPUs)`.
fn default_maxactive(nr_cpus: u32) -> u32 {
    10.max(2 * nr_cpus)
}

impl DynamicEvents {
    /// What `uprobe_events`, `kprobe_events` or `dynamic_events` reads.
    pub fn listing(&self, via: Via) -> String {
        lock(&self.probes)
            .iter()
            .filter(|p| shows(p, via))
            .map(|p| {
                let line = p.def.listing();
                // `synthetic_events` lists `NAME\tFIELDS`, without `dynamic_events`' prefix.
                let line = match via {
                    Via::SyntheticEvents => line
                        .strip_prefix("s:synthetic/")
                        .map_or(line.clone(), str::to_string),
                    _ => line,
                };
                line + "\n"
            })
            .collect()
    }

    /// A write of `text` to the file `via`: every line in order; the first error ends the
    /// write, and the lines before it stay applied (as in the kernel).
    pub fn write(
        &self,
        state: &State,
        tree: &Tree,
        recorder: &Recorder,
        via: Via,
        text: &str,
    ) -> Result<(), FsError> {
        let mut probes = lock(&self.probes);
        // Kprobes exist when the top level serves `kprobe_events` (a kernel with them, whose
        // function list the catalog has).
        let functions = tree
            .find(ROOT_INO, b"kprobe_events")
            .is_ok()
            .then(|| recorder.functions(tree));
        let synthetic_events = tree.find(ROOT_INO, b"synthetic_events").is_ok();
        for line in command_lines(text) {
            let parsed = probe::parse_command(
                line,
                via,
                &Targets {
                    tree,
                    probes: &probes,
                    functions,
                    synthetic_events,
                },
            );
            let result = match parsed {
                Ok(None) => Ok(()),
                Ok(Some(ProbeCommand::Define(mut def))) => {
                    if let ProbeKind::Kprobe {
                        ret: true,
                        maxactive: maxactive @ None,
                        ..
                    } = &mut def.kind
                    {
                        *maxactive = Some(default_maxactive(state.options.nr_cpus));
                    }
                    self.define(&mut probes, state, tree, recorder, def, line)
                }
                Ok(Some(ProbeCommand::Remove {
                    group,
                    event,
                    words,
                })) => remove_matching(&mut probes, state, tree, recorder, via, |p| {
                    group.as_ref().is_none_or(|g| *g == p.def.group)
                        && (event.is_empty() || event == p.def.event)
                        && words_match(&p.def, &words)
                }),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if let Some(logged) = &e.logged {
                    state.log_error(tree, tree.global_events_dir(), Some(logged.entry_text()));
                }
                log::debug!("{via:?}: {line:?} refused (errno {})", e.errno);
                return Err(errno_of(e.errno));
            }
        }
        Ok(())
    }

    fn define(
        &self,
        probes: &mut Vec<Probe>,
        state: &State,
        tree: &Tree,
        recorder: &Recorder,
        def: ProbeDef,
        line: &str,
    ) -> Result<(), probe::ProbeError> {
        let subsystem = match def.kind {
            ProbeKind::Uprobe { .. } => "trace_uprobe",
            ProbeKind::Kprobe { .. } => "trace_kprobe",
            ProbeKind::Synthetic { .. } => "synthetic_events",
            ProbeKind::Eprobe { .. } => "event_probe",
        };
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        // The caret goes under word `word` (past the end if there is none).
        let refuse_at = |message: &'static str, word: usize| probe::ProbeError {
            errno: libc_errno::EEXIST,
            logged: Some(LoggedError {
                subsystem,
                message,
                command: words.join(" "),
                position: words.iter().take(word).map(|w| w.len() + 1).sum(),
            }),
        };
        let refuse = |message: &'static str| refuse_at(message, 0);
        if let Some(same) = probes
            .iter()
            .find(|p| p.def.group == def.group && p.def.event == def.event)
        {
            if same.def.same_probe(&def) {
                return Err(refuse("There is already the exact same probe event"));
            }
            match same.def.same_event_shape(&def) {
                Ok(()) => {
                    // Another place of the same event: one directory, two listing lines.
                    let id = same.id;
                    add_kprobe_site(recorder, tree, id, &def);
                    probes.push(Probe { def, id });
                    return Ok(());
                }
                Err(ShapeMismatch::ProbeType) => {
                    return Err(refuse("Probe type is different from existing probe"))
                }
                Err(ShapeMismatch::Arguments(arg)) => {
                    return Err(refuse_at(
                        "Argument type or name is different from existing probe",
                        arg + 2,
                    ))
                }
                Err(ShapeMismatch::NotAppendable) => {}
            }
            return Err(refuse(
                "Given group/event name is already used by another event",
            ));
        }
        if tree.find_event(&def.group, &def.event).is_some() {
            return Err(refuse(
                "Given group/event name is already used by another event",
            ));
        }
        let attachment = match &def.kind {
            ProbeKind::Eprobe {
                system,
                event,
                filter,
            } => Some(attachment_of(
                tree,
                &def,
                system,
                event,
                filter.as_deref(),
                line,
            )?),
            ProbeKind::Uprobe { .. } | ProbeKind::Kprobe { .. } | ProbeKind::Synthetic { .. } => {
                None
            }
        };
        let id = next_free_id(tree, probes);
        let layout = def.layout(id);
        let has_hist = tree
            .find_event("sched", "sched_switch")
            .is_some_and(|dir| tree.event_has_file(dir, FileKind::EventHist));
        tree.add_event(&NewEvent {
            system: &def.group,
            name: &def.event,
            id,
            files: probe_event_files(has_hist),
            format: &layout.format,
        })
        .map_err(|e| probe::ProbeError {
            errno: e.errno(),
            logged: None,
        })?;
        // A kprobe's line is `name: (place)` then the arguments: its fmt prints those alone.
        let shown_name = match def.kind {
            ProbeKind::Kprobe { .. } => "",
            _ => def.event.as_str(),
        };
        recorder.register_probe_render(id, shown_name, &layout);
        add_kprobe_site(recorder, tree, id, &def);
        if let ProbeKind::Synthetic { .. } = def.kind {
            recorder.set_generated_only(id);
        }
        if let Some(attachment) = attachment {
            state.attach(attachment);
        }
        log::info!(
            "dynamic event {}/{} (id {id}): {}",
            def.group,
            def.event,
            def.listing()
        );
        probes.push(Probe { def, id });
        Ok(())
    }

    /// `O_TRUNC` on `uprobe_events`, `kprobe_events` or `dynamic_events`: every probe it lists
    /// goes, unless one is enabled (EBUSY, nothing removed).
    pub fn clear(
        &self,
        state: &State,
        tree: &Tree,
        recorder: &Recorder,
        via: Via,
    ) -> Result<(), FsError> {
        let mut probes = lock(&self.probes);
        if probes
            .iter()
            .any(|p| shows(p, via) && is_busy(state, tree, &p.def))
        {
            return Err(FsError::Os(libc::EBUSY));
        }
        match remove_matching(&mut probes, state, tree, recorder, via, |_| true) {
            Ok(()) => Ok(()),
            // Nothing to remove is fine for a truncation.
            Err(e) if e.errno == libc_errno::ENOENT => Ok(()),
            Err(e) => Err(errno_of(e.errno)),
        }
    }
}

/// Extra words of a removal must begin the probe's listing after its name.
fn words_match(def: &ProbeDef, words: &[String]) -> bool {
    let listing = def.listing();
    let mut shown = listing.split_ascii_whitespace().skip(1);
    words.iter().all(|w| shown.next() == Some(w.as_str()))
}

fn errno_of(errno: i32) -> FsError {
    match errno {
        libc_errno::EINVAL => FsError::Invalid("dynamic event refused".into()),
        libc_errno::EEXIST => FsError::Exists,
        // Not `NotFound`: through an open handle that would read as a removed file (ENODEV).
        libc_errno::ENOENT => FsError::Os(libc::ENOENT),
        other => FsError::Os(other),
    }
}

/// Whether an event of `def` is enabled (or has triggers) in any instance.
/// A synthetic event is also busy while a histogram's action generates it.
fn is_busy(state: &State, tree: &Tree, def: &ProbeDef) -> bool {
    let synthetic = matches!(def.kind, ProbeKind::Synthetic { .. });
    state.events().iter().any(|(&key, event)| {
        let generates = synthetic
            && event.triggers.triggers().iter().any(|t| match &t.action {
                Action::Hist(spec) => spec
                    .actions
                    .iter()
                    .any(|a| a.synth.as_deref() == Some(def.event.as_str())),
                _ => false,
            });
        generates
            || event.fires()
                && tree.node(key).is_ok_and(|node| {
                    tree.dir_name(node.dir) == def.event
                        && tree.dir_name(tree.parent_of(node.dir)) == def.group
                })
    })
}

/// Removes the probes `matches` selects (of the kind `via` lists): EBUSY at the first enabled
/// one, ENOENT if none matched.
fn remove_matching(
    probes: &mut Vec<Probe>,
    state: &State,
    tree: &Tree,
    recorder: &Recorder,
    via: Via,
    matches: impl Fn(&Probe) -> bool,
) -> Result<(), probe::ProbeError> {
    let mut removed = 0;
    while let Some(at) = probes.iter().position(|p| shows(p, via) && matches(p)) {
        let shared = probes
            .iter()
            .filter(|p| p.def.group == probes[at].def.group && p.def.event == probes[at].def.event)
            .count();
        if shared == 1 && is_busy(state, tree, &probes[at].def) {
            return Err(probe::ProbeError {
                errno: libc_errno::EBUSY,
                logged: None,
            });
        }
        if let ProbeKind::Kprobe { symbol, offset, .. } = &probes[at].def.kind {
            if let Some(function) = recorder.functions(tree).named(symbol).next() {
                recorder.kprobes.remove(probes[at].id, function, *offset);
            }
        }
        if shared == 1 {
            let probe = &probes[at];
            let _ = tree.remove(&probe.def.group, Some(&probe.def.event));
            state.prune(tree);
            state.detach(&probe.def.group, &probe.def.event);
            recorder.forget_render(probe.id);
            remove_empty_group(tree, &probe.def.group);
        }
        probes.remove(at);
        removed += 1;
    }
    if removed == 0 {
        return Err(probe::ProbeError {
            errno: libc_errno::ENOENT,
            logged: None,
        });
    }
    Ok(())
}

/// Registers a kprobe's place with the recorder, which makes it fire.
fn add_kprobe_site(recorder: &Recorder, tree: &Tree, id: u32, def: &ProbeDef) {
    let ProbeKind::Kprobe {
        symbol,
        offset,
        ret,
        ..
    } = &def.kind
    else {
        return;
    };
    if let Some(function) = recorder.functions(tree).named(symbol).next() {
        recorder
            .kprobes
            .add(id, &def.event, function, *offset, *ret);
    }
}

/// A group directory goes with its last event, as the kernel removes an empty subsystem.
fn remove_empty_group(tree: &Tree, group: &str) {
    let empty = tree
        .find_system_in(tree.global_events_dir(), group)
        .is_some_and(|system| tree.events_below(system).is_empty());
    if empty {
        let _ = tree.remove(group, None);
    }
}

/// The lowest id above every event the tree and the probes use (freed ids come back only
/// once no higher one is in use, a simplification of the kernel's ida).
fn next_free_id(tree: &Tree, probes: &[Probe]) -> u32 {
    let events = tree.events_below(tree.global_events_dir());
    let highest_static = events.iter().map(|&e| tree.event_id(e)).max().unwrap_or(0);
    let highest_probe = probes.iter().map(|p| p.id).max().unwrap_or(0);
    highest_static.max(highest_probe) + 1
}

/// What the recorder needs to fire an event probe with its attached event.
fn attachment_of(
    tree: &Tree,
    def: &ProbeDef,
    system: &str,
    event: &str,
    filter_text: Option<&str>,
    line: &str,
) -> Result<Attachment, probe::ProbeError> {
    let filter = match filter_text {
        None => None,
        Some(text) => {
            let dir = tree
                .find_event(system, event)
                .ok_or(probe::ProbeError::silent(libc_errno::ENODEV))?;
            let format_text = tree.with_format(dir, str::to_string);
            let fields: Vec<format::Field<'_>> = format::fields(&format_text).collect();
            Some(filter::parse(text, &fields).map_err(|_| probe::ProbeError {
                errno: libc_errno::EINVAL,
                logged: Some(LoggedError {
                    subsystem: "event_probe",
                    message: "Invalid filter",
                    command: line.split_ascii_whitespace().collect::<Vec<_>>().join(" "),
                    position: 0,
                }),
            })?)
        }
    };
    Ok(Attachment {
        system: system.to_string(),
        event: event.to_string(),
        probe_group: def.group.clone(),
        probe_event: def.event.clone(),
        sources: def.value_sources(),
        filter,
    })
}
