//! One occurrence of an event as its triggers see it: where it happens, the other events'
//! states they look at, and what they switch or generate (applied by the recorder after the
//! occurrence).

use std::collections::HashMap;

use eventfs_core::layout::FileKind;
use eventfs_core::tree::{DirId, Ino, Tree};
use ftrace_text::trigger::{self, Action};

use super::hist::{Generated, Sample};
use super::snapshot;
use super::state::{EventState, State};

/// Where one occurrence happens, and what its triggers may look at and switch.
pub(super) struct Occurrence<'a> {
    pub state: &'a State,
    pub tree: &'a Tree,
    /// The event's directory.
    pub dir: DirId,
    /// Every other event's state (the firing one is out of the map).
    pub events: &'a HashMap<Ino, EventState>,
    /// Events its `enable_event`/`disable_event` triggers switched, in order.
    pub switched: &'a mut Vec<(DirId, bool)>,
    /// Events whose histograms its `enable_hist`/`disable_hist` triggers ran or paused.
    pub hists_switched: &'a mut Vec<(DirId, bool)>,
    /// Synthetic events its histograms' actions generated, in order.
    pub generated: &'a mut Vec<Generated>,
}

impl Occurrence<'_> {
    /// Runs one trigger whose filter (if any) matched; returns whether it asks for a stack
    /// entry (`stacktrace`). Like the kernel's `*_count_trigger` functions, a counted trigger
    /// that would change nothing neither acts nor counts.
    /// `sample` is the occurrence's record, for the triggers that need one (histograms).
    pub fn run_trigger(
        &mut self,
        trigger: &mut trigger::Trigger,
        sample: Option<&Sample<'_>>,
    ) -> bool {
        if trigger.count == 0 {
            return false;
        }
        let (state, tree) = (self.state, self.tree);
        let acted = match &trigger.action {
            Action::Hist(spec) => sample.is_some_and(|sample| {
                let mut take_snapshot = false;
                let budget = &state.hist_budget;
                let counted = sample.hit(spec, budget, self.generated, &mut take_snapshot);
                if take_snapshot {
                    snapshot::take(state, tree, self.dir);
                }
                counted
            }),
            // Like `hist_enable_count_trigger`, these count every time they fire.
            Action::EnableHist { system, event } | Action::DisableHist { system, event } => {
                let on = matches!(trigger.action, Action::EnableHist { .. });
                if let Some(target) = tree
                    .events_dir_of(tree.instance_of(self.dir))
                    .and_then(|d| tree.find_event_in(d, system, event))
                {
                    self.hists_switched.push((target, on));
                }
                true
            }
            Action::TraceOn | Action::TraceOff => {
                let on = matches!(trigger.action, Action::TraceOn);
                state.instance(tree, self.dir, |i| {
                    let changes = i.tracing_on != on;
                    i.tracing_on = on;
                    changes
                })
            }
            Action::EnableEvent { system, event } | Action::DisableEvent { system, event } => {
                let on = matches!(trigger.action, Action::EnableEvent { .. });
                let target = tree
                    .events_dir_of(tree.instance_of(self.dir))
                    .and_then(|d| tree.find_event_in(d, system, event))
                    .filter(|&t| tree.event_has_file(t, FileKind::EventEnable));
                match target {
                    Some(target) => {
                        let current = self
                            .switched
                            .iter()
                            .rev()
                            .find(|(t, _)| *t == target)
                            .map(|&(_, on)| on)
                            .unwrap_or_else(|| {
                                self.events
                                    .get(&tree.dir_ino(target))
                                    .is_some_and(|s| s.enabled)
                            });
                        self.switched.push((target, on));
                        current != on
                    }
                    None => false,
                }
            }
            Action::StackTrace => true,
            // Like `snapshot_count_trigger`, it counts every time it fires.
            Action::Snapshot => {
                snapshot::take(state, tree, self.dir);
                true
            }
        };
        if acted && trigger.count > 0 {
            trigger.count -= 1;
        }
        acted && matches!(trigger.action, Action::StackTrace)
    }
}
