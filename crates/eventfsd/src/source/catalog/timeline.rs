//! The simulation's time model: which event occurrences an interval of simulated time holds,
//! in time order.
//!
//! Nothing runs in the background. Before the guest observes or changes anything, the
//! recorder asks the [`Timeline`] for every occurrence since it last caught up; each firing
//! event contributes `rate × interval` occurrences (fractions carried over), spread evenly
//! with jitter over the interval, and a [`Schedule`] merges them in timestamp order so that a
//! trigger's effect applies to exactly the occurrences after it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use eventfs_core::tree::Ino;
use ftrace_text::Generator;

/// Longest stretch of simulated time one catch-up covers: a guest that leaves events enabled
/// and reads nothing for an hour costs one bounded catch-up, not an hour of records. The
/// older part of a longer gap is skipped (counted, and logged once).
pub const MAX_CATCH_UP_NS: u64 = 10_000_000_000;

/// Occurrences of one event within one interval.
struct Stream {
    key: Ino,
    from: u64,
    span: u64,
    count: u64,
    next: u64,
}

impl Stream {
    /// When occurrence `i` happens: slot `i` of `count` equal slots of `(from, from + span]`,
    /// jittered inside its slot, so timestamps never decrease and never pass the end.
    fn time_of(&self, i: u64, jitter: u64) -> u64 {
        let offset =
            (u128::from(i) * u128::from(self.span) + u128::from(jitter)) / u128::from(self.count);
        self.from + 1 + offset as u64
    }
}

/// The occurrences of one catch-up, merged across events in time order.
#[derive(Default)]
pub struct Schedule {
    streams: Vec<Stream>,
    /// (timestamp, insertion order, stream): ties keep the order streams were added.
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    seq: u64,
}

impl Schedule {
    /// Adds `count` occurrences of event `key` in `(from, to]`.
    pub fn add(&mut self, key: Ino, from: u64, to: u64, count: u64, rng: &mut Generator) {
        if count == 0 || to <= from {
            return;
        }
        let stream = Stream {
            key,
            from,
            span: to - from,
            count,
            next: 0,
        };
        self.streams.push(stream);
        self.push_next(self.streams.len() - 1, rng);
    }

    fn push_next(&mut self, index: usize, rng: &mut Generator) {
        let stream = &mut self.streams[index];
        if stream.next == stream.count {
            return;
        }
        let ts = stream.time_of(stream.next, rng.below(stream.span));
        stream.next += 1;
        self.seq += 1;
        self.heap.push(Reverse((ts, self.seq, index)));
    }

    /// The next occurrence: its timestamp (simulation ns) and event.
    pub fn next(&mut self, rng: &mut Generator) -> Option<(u64, Ino)> {
        let Reverse((ts, _, index)) = self.heap.pop()?;
        let key = self.streams[index].key;
        self.push_next(index, rng);
        Some((ts, key))
    }
}

/// What the time model keeps between catch-ups.
pub struct Timeline {
    /// Makes the records' values (and the schedule's jitter), deterministic per seed.
    pub generator: Generator,
    /// Simulation time up to which every firing event has fired.
    caught_up_ns: u64,
    /// The trace clock at simulation time zero (a real trace clock counts from boot).
    boot_ns: u64,
    /// Fractional occurrences owed to each event (rate × interval rarely divides evenly).
    credit: HashMap<Ino, f64>,
    /// Simulated time skipped by the [`MAX_CATCH_UP_NS`] bound.
    pub skipped_ns: u64,
}

impl Timeline {
    /// A timeline at simulation time zero whose values come from `seed`.
    pub fn new(seed: u64, nr_cpus: u32) -> Self {
        let generator = Generator::with_cpus(seed, nr_cpus);
        Timeline {
            boot_ns: generator.now_ns(),
            generator,
            caught_up_ns: 0,
            credit: HashMap::new(),
            skipped_ns: 0,
        }
    }

    /// The trace clock value of simulation time `ns`.
    pub fn trace_ns(&self, ns: u64) -> u64 {
        self.boot_ns + ns
    }

    /// Moves the caught-up mark to `now` and returns the interval still to simulate, `None`
    /// when time has not moved. A gap past [`MAX_CATCH_UP_NS`] keeps only its end.
    pub fn advance(&mut self, now: u64) -> Option<(u64, u64)> {
        if now <= self.caught_up_ns {
            return None;
        }
        let mut from = self.caught_up_ns;
        if now - from > MAX_CATCH_UP_NS {
            self.skipped_ns += now - MAX_CATCH_UP_NS - from;
            from = now - MAX_CATCH_UP_NS;
        }
        self.caught_up_ns = now;
        Some((from, now))
    }

    /// How many times an event firing at `rate` per second fires in `(from, to]`, carrying
    /// the fraction over to its next interval.
    pub fn occurrences(&mut self, key: Ino, rate: f64, from: u64, to: u64) -> u64 {
        let credit = self.credit.entry(key).or_insert(0.0);
        *credit += rate * (to - from) as f64 / 1e9;
        // Sums of decimal fractions fall a hair short (0.3 × 10 = 2.9999…): round that up.
        let count = (*credit + 1e-9).floor();
        *credit -= count;
        count as u64
    }

    /// Forgets the fractions of events that no longer fire (their next firing starts afresh).
    pub fn retain_credit(&mut self, firing: impl Fn(Ino) -> bool) {
        self.credit.retain(|&key, _| firing(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(schedule: &mut Schedule, rng: &mut Generator) -> Vec<(u64, Ino)> {
        std::iter::from_fn(|| schedule.next(rng)).collect()
    }

    #[test]
    fn occurrences_are_in_time_order_inside_the_interval() {
        let mut rng = Generator::new(7);
        let mut schedule = Schedule::default();
        schedule.add(1, 1_000, 2_000, 10, &mut rng);
        schedule.add(2, 1_000, 2_000, 3, &mut rng);
        schedule.add(3, 1_500, 2_000, 5, &mut rng);
        let all = drain(&mut schedule, &mut rng);
        assert_eq!(all.len(), 18);
        assert!(all.windows(2).all(|w| w[0].0 <= w[1].0), "{all:?}");
        assert!(all.iter().all(|&(ts, _)| ts > 1_000 && ts <= 2_000));
        assert!(all
            .iter()
            .filter(|&&(_, key)| key == 3)
            .all(|&(ts, _)| ts > 1_500));
        // Evenly spread: the 10 occurrences of event 1 fall one per 100 ns slot.
        let one: Vec<u64> = all.iter().filter(|o| o.1 == 1).map(|o| o.0).collect();
        for (i, ts) in one.iter().enumerate() {
            let slot = 1_000 + 1 + 100 * i as u64;
            assert!((slot..slot + 100).contains(ts), "{i}: {ts}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = || {
            let mut rng = Generator::new(3);
            let mut schedule = Schedule::default();
            schedule.add(1, 0, 1_000_000, 50, &mut rng);
            schedule.add(2, 0, 1_000_000, 50, &mut rng);
            drain(&mut schedule, &mut rng)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn fractions_carry_over() {
        let mut timeline = Timeline::new(1, 1);
        // 10 per second over 30 ms steps: 0.3 each, so 3 in 10 steps.
        let total: u64 = (0..10)
            .map(|i| timeline.occurrences(5, 10.0, i * 30_000_000, (i + 1) * 30_000_000))
            .sum();
        assert_eq!(total, 3);
        timeline.retain_credit(|_| false);
        assert_eq!(timeline.occurrences(5, 10.0, 0, 50_000_000), 0);
    }

    #[test]
    fn a_long_gap_is_simulated_as_its_end() {
        let mut timeline = Timeline::new(1, 1);
        assert_eq!(timeline.advance(0), None);
        assert_eq!(timeline.advance(5), Some((0, 5)));
        let now = 5 + MAX_CATCH_UP_NS + 1_000;
        assert_eq!(timeline.advance(now), Some((1_005, now)));
        assert_eq!(timeline.skipped_ns, 1_000);
        assert_eq!(timeline.advance(now), None);
    }
}
