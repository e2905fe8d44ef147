//! What the daemon lets one guest make the host hold, and the counters of refusals that the
//! stats file reports. The policy's `[limits]` give the bounds; reaching one is an errno and a
//! log line at the place of the refusal, and one more in the counter here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::stats::{FigureKind, SourceFigure};

/// Which limit refused a request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `max_open_handles`.
    OpenHandles,
    /// `max_trace_bytes`.
    TraceBytes,
    /// `max_enabled_events` (counted by the guard's ENOSPC).
    EnabledEvents,
    /// `max_hist_triggers`.
    HistTriggers,
    /// `writes_per_second`.
    WriteRate,
    /// Any other policy refusal (EACCES, EINVAL of the guard).
    Policy,
}

/// The stats file's name of each counter, in the order of [`Limit`]'s variants.
const COUNTER_NAMES: [&str; 6] = [
    "refused_open_handles",
    "refused_trace_bytes",
    "refused_enabled_events",
    "refused_hist_triggers",
    "refused_write_rate",
    "refused_by_policy",
];

/// Usage the limits are measured on, and the refusal counters.
#[derive(Default)]
pub struct Usage {
    /// Bytes of `trace` text held for open handles.
    trace_bytes: AtomicUsize,
    /// Hist triggers the guest set and has not removed.
    pub hist_triggers: AtomicUsize,
    refused: [AtomicU64; COUNTER_NAMES.len()],
}

impl Usage {
    /// Counts one refusal.
    pub fn refused(&self, limit: Limit) {
        self.refused[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Reserves `bytes` of trace text within `max` (0: unbounded); false when over.
    pub fn reserve_trace(&self, bytes: usize, max: usize) -> bool {
        let mut now = self.trace_bytes.load(Ordering::SeqCst);
        loop {
            let after = now.saturating_add(bytes);
            if max > 0 && after > max {
                self.refused(Limit::TraceBytes);
                return false;
            }
            match self
                .trace_bytes
                .compare_exchange(now, after, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    /// Gives back what [`Usage::reserve_trace`] took.
    pub fn release_trace(&self, bytes: usize) {
        let _ = self
            .trace_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(bytes))
            });
    }

    /// The refusal counters for the stats file, with the usage gauges.
    pub fn figures(&self) -> Vec<SourceFigure> {
        let mut out: Vec<SourceFigure> = COUNTER_NAMES
            .iter()
            .zip(&self.refused)
            .map(|(name, n)| SourceFigure {
                name,
                value: n.load(Ordering::Relaxed),
                kind: FigureKind::Counter,
            })
            .collect();
        for (name, value) in [
            ("trace_bytes_held", &self.trace_bytes),
            ("hist_triggers", &self.hist_triggers),
        ] {
            out.push(SourceFigure {
                name,
                value: value.load(Ordering::Relaxed) as u64,
                kind: FigureKind::Gauge,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_bytes_are_bounded_and_counted() {
        let usage = Usage::default();
        assert!(usage.reserve_trace(10, 16));
        assert!(!usage.reserve_trace(7, 16));
        usage.release_trace(10);
        assert!(usage.reserve_trace(16, 16));
        let value = |usage: &Usage, name: &str| {
            let figure = usage
                .figures()
                .into_iter()
                .find(|f| f.name == name)
                .unwrap();
            (figure.value, figure.kind)
        };
        assert_eq!(
            value(&usage, "refused_trace_bytes"),
            (1, FigureKind::Counter)
        );
        assert_eq!(value(&usage, "trace_bytes_held"), (16, FigureKind::Gauge));
        usage.refused(Limit::Policy);
        assert_eq!(value(&usage, "refused_by_policy").0, 1);
    }
}
