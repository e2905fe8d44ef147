//! The write form of a parsed trigger: what a policy forwards after checking the parse.

use super::{Action, HistField, HistSpec, SortField, TriggerCommand};

impl TriggerCommand {
    /// The command in the form a `trigger` file accepts, equivalent to the parsed write: a
    /// policy that checked the parse forwards this text, never the guest's bytes.
    pub fn write_text(&self) -> String {
        let (remove, trigger) = match self {
            TriggerCommand::Add(t) => (false, t),
            TriggerCommand::Remove(t) => (true, t),
        };
        let mut out = String::new();
        if remove {
            out.push('!');
        }
        match &trigger.action {
            Action::Hist(h) => out.push_str(&h.write_text()),
            Action::EnableEvent { system, event }
            | Action::DisableEvent { system, event }
            | Action::EnableHist { system, event }
            | Action::DisableHist { system, event } => {
                out.push_str(&format!("{}:{system}:{event}", trigger.action.name()))
            }
            a => out.push_str(a.name()),
        }
        if !remove && trigger.count >= 0 && !matches!(trigger.action, Action::Hist(_)) {
            out.push_str(&format!(":{}", trigger.count));
        }
        let filter_counts = !remove || matches!(trigger.action, Action::Hist(_));
        if let Some(t) = trigger.filter_text().filter(|_| filter_counts) {
            out.push_str(" if ");
            out.push_str(t);
        }
        out
    }
}

impl HistSpec {
    /// `hist:` and the attributes, in the write syntax (`name=`, `pause` ... as given).
    fn write_text(&self) -> String {
        let list = |fields: &[HistField]| {
            fields
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = format!("hist:keys={}", list(&self.keys));
        if !self.vals.is_empty() {
            out.push_str(&format!(":vals={}", list(&self.vals)));
        }
        let sort: Vec<String> = self
            .sort
            .iter()
            .map(|s| {
                let name = match s.field {
                    SortField::Hitcount => "hitcount".to_string(),
                    SortField::Key(k) => self.keys[k].name.clone(),
                    SortField::Val(v) => self.vals[v].name.clone(),
                };
                if s.descending {
                    format!("{name}.descending")
                } else {
                    name
                }
            })
            .collect();
        if !sort.is_empty() {
            out.push_str(&format!(":sort={}", sort.join(",")));
        }
        out.push_str(&format!(":size={}", 1u32 << self.map_bits));
        if self.uses_timestamp() {
            out.push_str(&format!(":clock={}", self.clock));
        }
        if let Some(n) = &self.name {
            out.push_str(&format!(":name={n}"));
        }
        for (set, word) in [
            (self.nohitcount, "nohitcount"),
            (self.pause, "pause"),
            (self.cont, "cont"),
            (self.clear, "clear"),
        ] {
            if set {
                out.push(':');
                out.push_str(word);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Action, TriggerCommand};
    use crate::format::{fields as parse_fields, testdata::SCHED_SWITCH, Field};

    fn fields() -> Vec<Field<'static>> {
        parse_fields(SCHED_SWITCH).collect()
    }

    /// The error-log echo of the command is the only part that keeps the original bytes.
    fn without_command(mut c: TriggerCommand) -> TriggerCommand {
        let (TriggerCommand::Add(t) | TriggerCommand::Remove(t)) = &mut c;
        if let Action::Hist(h) = &mut t.action {
            h.command.clear();
        }
        c
    }

    #[test]
    fn the_write_form_parses_back_to_the_same_command() {
        let fields = fields();
        let exists = |_: &str, _: &str| true;
        for text in [
            "traceon",
            "traceoff:5 if prev_pid == 1",
            "  stacktrace:3  ",
            "enable_event:sched:sched_waking",
            "disable_event:sched:sched_waking:2 if next_pid > 10",
            "!enable_event:sched:sched_waking",
            "!traceon",
            "hist:keys=prev_pid:vals=prev_prio:sort=prev_prio.descending:size=256",
            "hist:keys=next_comm,prev_pid.hex:name=foo:pause if prev_pid < 5",
            "!hist:keys=prev_pid if prev_pid < 5",
        ] {
            let first = parse(text, &fields, &exists).unwrap();
            let written = first.write_text();
            let again = parse(&written, &fields, &exists)
                .unwrap_or_else(|e| panic!("{text:?} -> {written:?}: {e}"));
            assert_eq!(
                without_command(first),
                without_command(again),
                "{text:?} -> {written:?}"
            );
        }
    }
}
