//! The host instance's `per_cpu/` files seen through the guest's CPUs.
//!
//! The guest's tools open `per_cpu/cpu0 .. cpu(G-1)` only, G being its vCPU count (`--cpus`).
//! So that every host CPU's records still reach the guest, guest CPU `k` stands for the host
//! CPUs `k, k + G, k + 2G, ...`: its `trace_pipe_raw` hands out those CPUs' pages in turn
//! (whole pages, as the host kernel gives them), its `trace_pipe` and `trace` their text, its
//! `stats` their sums, and a write of its `buffer_size_kb` resizes each of them. A guest CPU
//! with no host CPU behind it (G larger than the host) is an idle, empty CPU.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use eventfs_core::FsError;
use ftrace_text::CpuStats;

use super::hostio::read_fd;

/// Size of a ring-buffer page as the host's `events/header_page` declares it on x86_64.
pub const RAW_PAGE: usize = 4096;

/// The host CPUs guest CPU `cpu` stands for, out of `host_cpus`, with `guest_cpus` guest CPUs.
pub fn host_cpus_of(cpu: u32, guest_cpus: u32, host_cpus: u32) -> Vec<u32> {
    (cpu..host_cpus)
        .step_by(guest_cpus.max(1) as usize)
        .collect()
}

/// What a guest's open `trace_pipe_raw` keeps between reads.
#[derive(Default)]
pub struct RawState {
    /// The host CPU (index into the handle's fds) to read first next time, so that one busy
    /// CPU cannot starve the others folded into the same guest CPU.
    next: usize,
    /// The rest of a page a read smaller than a page left.
    pending: Vec<u8>,
}

/// Reads whole pages, without waiting, from the host files `fds` (opened O_NONBLOCK): up to
/// `size` bytes, at least one page's worth when any is there. `Ok(empty)` when none has data.
pub fn read_raw_pages(
    fds: &[OwnedFd],
    state: &Mutex<RawState>,
    size: u32,
) -> Result<Vec<u8>, FsError> {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let size = size as usize;
    if !st.pending.is_empty() {
        let n = st.pending.len().min(size);
        return Ok(st.pending.drain(..n).collect());
    }
    let mut out = Vec::new();
    // Stop when the guest's buffer is full or every CPU came up empty in a row.
    let mut empty_in_a_row = 0;
    while out.len() + RAW_PAGE <= size.max(RAW_PAGE) && empty_in_a_row < fds.len() {
        let i = st.next % fds.len();
        st.next = i + 1;
        match read_fd(&fds[i], RAW_PAGE as u32, None) {
            Ok(page) if !page.is_empty() => {
                out.extend_from_slice(&page);
                empty_in_a_row = 0;
            }
            Ok(_) | Err(FsError::Os(libc::EAGAIN)) => empty_in_a_row += 1,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    if out.len() > size {
        st.pending.extend_from_slice(&out[size..]);
        out.truncate(size);
    }
    Ok(out)
}

/// Waits up to `timeout_ms` for any of `fds` to become readable.
pub fn poll_any(fds: &[OwnedFd], timeout_ms: i32) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of its length. The result only shortens the wait.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
}

/// Nanoseconds of a `SECONDS.MICROS` stats value.
fn parse_ts(value: &str) -> Option<u64> {
    let (s, us) = value.trim().split_once('.')?;
    Some(s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1000)
}

/// One `stats` text for several host CPUs: counters summed, the oldest event the earliest,
/// `now` the latest, written as the kernel writes one CPU's.
pub fn merge_stats(texts: &[String]) -> String {
    let mut sum = CpuStats::default();
    let mut now = 0;
    for text in texts {
        for (key, value) in text.lines().filter_map(|l| l.split_once(':')) {
            let count = || value.trim().parse::<u64>().unwrap_or(0);
            match key {
                "entries" => sum.entries += count(),
                "overrun" => sum.overrun += count(),
                "commit overrun" => sum.commit_overrun += count(),
                "bytes" => sum.bytes += count(),
                "dropped events" => sum.dropped += count(),
                "read events" => sum.read += count(),
                "oldest event ts" => {
                    if let Some(ts) = parse_ts(value).filter(|&ts| ts > 0) {
                        sum.oldest_ts = if sum.oldest_ts == 0 {
                            ts
                        } else {
                            sum.oldest_ts.min(ts)
                        };
                    }
                }
                "now ts" => now = now.max(parse_ts(value).unwrap_or(0)),
                _ => {}
            }
        }
    }
    sum.text(now)
}

/// One `trace` text for several host CPUs: the first one's header, then every CPU's lines.
pub fn merge_trace(texts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        for line in text.split_inclusive(|&b| b == b'\n') {
            if i == 0 || !line.starts_with(b"#") {
                out.extend_from_slice(line);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_cpu_belongs_to_exactly_one_guest_cpu() {
        for host in 1..9u32 {
            for guest in 1..9u32 {
                let mut seen: Vec<u32> = (0..guest)
                    .flat_map(|g| host_cpus_of(g, guest, host))
                    .collect();
                seen.sort_unstable();
                assert_eq!(
                    seen,
                    (0..host).collect::<Vec<_>>(),
                    "{host} host, {guest} guest"
                );
            }
        }
        assert_eq!(host_cpus_of(1, 2, 5), [1, 3]);
        assert!(host_cpus_of(3, 4, 2).is_empty());
    }

    #[test]
    fn stats_merge_sums_counters_and_keeps_the_extreme_times() {
        let a = "entries: 3\noverrun: 1\ncommit overrun: 0\nbytes: 100\noldest event ts:  5.000001\nnow ts:  9.500000\ndropped events: 0\nread events: 2\n";
        let b = "entries: 4\noverrun: 0\ncommit overrun: 0\nbytes: 50\noldest event ts:  4.250000\nnow ts:  9.600000\ndropped events: 1\nread events: 0\n";
        let empty = "entries: 0\noverrun: 0\ncommit overrun: 0\nbytes: 0\noldest event ts:     0.000000\nnow ts:  9.000000\ndropped events: 0\nread events: 0\n";
        assert_eq!(
            merge_stats(&[a.into(), b.into(), empty.into()]),
            "entries: 7\noverrun: 1\ncommit overrun: 0\nbytes: 150\noldest event ts:     4.250000\nnow ts:     9.600000\ndropped events: 1\nread events: 2\n"
        );
    }

    #[test]
    fn trace_merge_keeps_one_header() {
        let a = b"# tracer: nop\n#\n a-1 [000] x\n".to_vec();
        let b = b"# tracer: nop\n#\n b-2 [001] y\n".to_vec();
        assert_eq!(
            merge_trace(&[a, b]),
            b"# tracer: nop\n#\n a-1 [000] x\n b-2 [001] y\n"
        );
    }
}
