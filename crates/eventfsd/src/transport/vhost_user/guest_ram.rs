//! Letting go of the guest RAM an idle guest no longer needs mapped here.
//!
//! Every reply is written into guest RAM through this process's shared mapping of QEMU's
//! memory. The pages touched stay mapped, and their page tables stay allocated, for as long
//! as the connection lasts: after a `find` and a `cat` of every format, about 20 MiB of guest
//! RAM and 80 KiB of page tables, multiplied by the guests on a host. Once the guest has been
//! idle for a while, dropping the mappings costs nothing but a minor fault per page at the
//! next request, and the kernel frees the emptied page tables (CONFIG_PT_RECLAIM).

use log::debug;
use vm_memory::{GuestMemory, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress};

/// Drops this process's mappings of the shared guest memory regions of `mem` (their contents
/// stay in QEMU's memory: a shared mapping refaults to the same pages). Private regions are
/// left alone, since dropping them would drop data. Returns the bytes advised.
pub(super) fn release_mappings(mem: &GuestMemoryMmap) -> usize {
    let mut released = 0;
    for region in mem.iter() {
        if region.flags() & libc::MAP_SHARED == 0 {
            continue;
        }
        let Ok(start) = region.get_host_address(MemoryRegionAddress(0)) else {
            continue;
        };
        let len = region.len() as usize;
        // SAFETY: the range is exactly one live shared mapping of `mem`, which the caller
        // keeps alive; MADV_DONTNEED on a shared mapping changes no data, only whether the
        // pages are mapped until their next access.
        if unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) } == 0 {
            released += len;
        } else {
            debug!(
                "vhost-user: madvise of a guest memory region failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use std::os::fd::FromRawFd;

    use vm_memory::{Bytes, FileOffset, GuestAddress};

    use super::*;

    const SIZE: usize = 4 << 20;

    /// Rss (KiB) of this process's mapping that starts at `start`, from /proc/self/smaps.
    fn mapping_rss_kb(start: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_mapping = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((from, _)) = range.split_once('-') {
                    if let Ok(from) = usize::from_str_radix(from, 16) {
                        in_mapping = from == start;
                        continue;
                    }
                }
            }
            if let (true, Some(rss)) = (in_mapping, line.strip_prefix("Rss:")) {
                return rss.trim().trim_end_matches(" kB").parse().unwrap();
            }
        }
        panic!("no mapping at {start:#x}");
    }

    #[test]
    fn released_guest_ram_keeps_its_contents() {
        // SAFETY: a new memfd, owned by the File.
        let file = unsafe {
            std::fs::File::from_raw_fd(libc::memfd_create(c"guest-ram".as_ptr(), libc::MFD_CLOEXEC))
        };
        file.set_len(SIZE as u64).unwrap();
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
            GuestAddress(0),
            SIZE,
            Some(FileOffset::new(file, 0)),
        )])
        .unwrap();
        let pattern: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        mem.write_slice(&pattern, GuestAddress(0)).unwrap();
        let start = mem
            .iter()
            .next()
            .unwrap()
            .get_host_address(MemoryRegionAddress(0))
            .unwrap() as usize;
        assert_eq!(mapping_rss_kb(start), (SIZE / 1024) as u64);

        assert_eq!(release_mappings(&mem), SIZE);
        assert_eq!(mapping_rss_kb(start), 0, "pages still mapped");
        let mut back = vec![0u8; SIZE];
        mem.read_slice(&mut back, GuestAddress(0)).unwrap();
        assert!(back == pattern, "guest memory changed");
    }
}
