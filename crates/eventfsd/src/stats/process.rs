//! The daemon's own resource use, for the stats file: what one more guest costs the host.

use std::time::Duration;

/// Where the kernel sums the daemon's memory mappings. The sandbox binds this file into its
/// empty root, so the path works inside it too.
pub const SMAPS_ROLLUP: &str = "/proc/self/smaps_rollup";

/// Memory and CPU of this process (the serving one: a sandboxed daemon's parent only waits).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    /// Resident set size, bytes (`None` when smaps_rollup cannot be read).
    pub resident_bytes: Option<u64>,
    /// Proportional set size: shared pages (the binary, the embedded catalog) divided among
    /// the processes that map them, bytes.
    pub pss_bytes: Option<u64>,
    /// Pages no other process maps (Private_Clean + Private_Dirty), bytes.
    pub private_bytes: Option<u64>,
    /// CPU time in user mode, all threads.
    pub user_cpu: Duration,
    /// CPU time in the kernel on the daemon's behalf, all threads.
    pub system_cpu: Duration,
}

impl ProcessFigures {
    /// Reads them now.
    pub fn read() -> ProcessFigures {
        let mut figures = std::fs::read_to_string(SMAPS_ROLLUP)
            .map(|text| parse_smaps_rollup(&text))
            .unwrap_or_default();
        (figures.user_cpu, figures.system_cpu) = cpu_times();
        figures
    }
}

/// The memory lines of `/proc/PID/smaps_rollup` (values in kB).
fn parse_smaps_rollup(text: &str) -> ProcessFigures {
    let mut figures = ProcessFigures::default();
    let mut private = None::<u64>;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(kb), Some("kB")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(kb) = kb.parse::<u64>() else { continue };
        let bytes = kb.saturating_mul(1024);
        match key {
            "Rss:" => figures.resident_bytes = Some(bytes),
            "Pss:" => figures.pss_bytes = Some(bytes),
            "Private_Clean:" | "Private_Dirty:" => {
                private = Some(private.unwrap_or(0).saturating_add(bytes));
            }
            _ => {}
        }
    }
    figures.private_bytes = private;
    figures
}

/// User and system CPU time of the whole process.
fn cpu_times() -> (Duration, Duration) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rollup_lines() {
        let text = "55d0c0a6c000-7ffd3e5f3000 ---p 00000000 00:00 0  [rollup]\n\
                    Rss:                1000 kB\n\
                    Pss:                 400 kB\n\
                    Pss_Anon:            300 kB\n\
                    Shared_Clean:        600 kB\n\
                    Private_Clean:       100 kB\n\
                    Private_Dirty:       300 kB\n";
        let f = parse_smaps_rollup(text);
        assert_eq!(f.resident_bytes, Some(1000 * 1024));
        assert_eq!(f.pss_bytes, Some(400 * 1024));
        assert_eq!(f.private_bytes, Some(400 * 1024));
        assert_eq!(
            parse_smaps_rollup("garbage\nRss: x kB\n"),
            ProcessFigures::default()
        );
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        // Burn a little CPU so that the clock has something to show.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let f = ProcessFigures::read();
        assert!(f.private_bytes.unwrap() > 0 && f.resident_bytes.unwrap() > 0);
        assert!(f.pss_bytes.unwrap() <= f.resident_bytes.unwrap());
        assert!(f.user_cpu + f.system_cpu > Duration::ZERO);
    }
}
