//! A compact, sorted set of `(system, event)` names: the host's events and the ones the
//! guest must not reach. Each daemon holds these sets for thousands of host events; one
//! string and 8 bytes per event replace two heap strings and a share of a tree node each.

use std::cmp::Ordering;

/// `(system, event)` pairs in `(system, event)` order, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSet {
    /// Every system name followed by its event name, in order, concatenated.
    text: String,
    /// Per pair: where it starts in `text` and the length of its system name.
    entries: Vec<(u32, u32)>,
}

impl EventSet {
    /// The `index`th pair.
    fn get(&self, index: usize) -> (&str, &str) {
        let (start, system_len) = self.entries[index];
        let end = self
            .entries
            .get(index + 1)
            .map_or(self.text.len(), |&(next, _)| next as usize);
        let pair = &self.text[start as usize..end];
        pair.split_at(system_len as usize)
    }

    /// The index of the first pair not below `(system, event)`.
    fn lower_bound(&self, system: &str, event: &str) -> usize {
        let (mut low, mut high) = (0, self.entries.len());
        while low < high {
            let mid = (low + high) / 2;
            if self.get(mid).cmp(&(system, event)) == Ordering::Less {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Whether it holds `(system, event)`.
    pub fn contains(&self, system: &str, event: &str) -> bool {
        let at = self.lower_bound(system, event);
        at < self.entries.len() && self.get(at) == (system, event)
    }

    /// Whether it holds an event of `system`.
    pub fn has_system(&self, system: &str) -> bool {
        let at = self.lower_bound(system, "");
        at < self.entries.len() && self.get(at).0 == system
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        (0..self.entries.len()).map(|i| self.get(i))
    }

    /// How many pairs it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<S: AsRef<str>, E: AsRef<str>> FromIterator<(S, E)> for EventSet {
    fn from_iter<I: IntoIterator<Item = (S, E)>>(pairs: I) -> Self {
        let mut pairs: Vec<(S, E)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| (a.0.as_ref(), a.1.as_ref()).cmp(&(b.0.as_ref(), b.1.as_ref())));
        pairs.dedup_by(|a, b| (a.0.as_ref(), a.1.as_ref()) == (b.0.as_ref(), b.1.as_ref()));
        let total = pairs
            .iter()
            .map(|(s, e)| s.as_ref().len() + e.as_ref().len())
            .sum();
        let mut set = EventSet {
            text: String::with_capacity(total),
            entries: Vec::with_capacity(pairs.len()),
        };
        for (system, event) in &pairs {
            // Names are at most a few hundred bytes (tracefs limits them); the whole text of
            // a host's events is far below 4 GiB.
            let start = u32::try_from(set.text.len()).unwrap_or(u32::MAX);
            let system_len = u32::try_from(system.as_ref().len()).unwrap_or(u32::MAX);
            set.entries.push((start, system_len));
            set.text.push_str(system.as_ref());
            set.text.push_str(event.as_ref());
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_pairs_in_order_without_duplicates() {
        let set: EventSet = [
            ("sched", "sched_switch"),
            ("irq", "irq_handler_entry"),
            ("sched", "sched_wakeup"),
            ("sched", "sched_switch"),
            ("sc", "hedx"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 4);
        let all: Vec<(&str, &str)> = set.iter().collect();
        assert_eq!(
            all,
            [
                ("irq", "irq_handler_entry"),
                ("sc", "hedx"),
                ("sched", "sched_switch"),
                ("sched", "sched_wakeup")
            ]
        );
        assert!(set.contains("sched", "sched_wakeup"));
        // The concatenation alone would confuse these: the split is kept per pair.
        assert!(!set.contains("sched", "x"));
        assert!(!set.contains("schedx", "sched_switch"));
        assert!(set.contains("sc", "hedx"));
        assert!(!set.contains("sche", "dx"));
        assert!(set.has_system("irq") && set.has_system("sc") && !set.has_system("s"));
        assert!(!set.has_system("zzz") && !set.contains("zzz", "a"));
        let empty = EventSet::default();
        assert!(empty.is_empty() && !empty.contains("a", "b") && !empty.has_system("a"));
    }
}
