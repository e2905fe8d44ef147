//! `per_cpu/cpuN/trace_pipe_raw` of the catalog source through a real FUSE mount: the reads
//! raw-buffer clients make (perfetto's one page per O_NONBLOCK read, trace-cmd's large reads
//! and its bounded blocking ones), checked with the independent `tracefs-raw` decoder.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use common::Mounted;
use tracefs_raw::{decode_page, EventFormat, PageLayout};

fn layout(m: &Mounted) -> PageLayout {
    PageLayout::parse(&fs::read_to_string(m.path("events/header_page")).unwrap()).unwrap()
}

#[test]
fn nonblocking_page_reads_and_large_reads_carry_every_record() {
    let Some(m) = Mounted::with_cpus("raw_pages", 2) else {
        return;
    };
    let layout = layout(&m);
    let switch = EventFormat::parse(
        &fs::read_to_string(m.path("events/sched/sched_switch/format")).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = fs::read_dir(m.path("per_cpu"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Nothing recorded yet: O_NONBLOCK is EAGAIN, as perfetto expects.
    let mut cpu0 = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(m.path("per_cpu/cpu0/trace_pipe_raw"))
        .unwrap();
    let mut page = vec![0u8; 4096];
    let err = cpu0.read(&mut page).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));

    fs::write(m.path("events/sched/sched_switch/enable"), "1").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    fs::write(m.path("tracing_on"), "0").unwrap();
    let stats = |cpu: u32, key: &str| -> u64 {
        let text = fs::read_to_string(m.path(&format!("per_cpu/cpu{cpu}/stats"))).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let entries = [stats(0, "entries"), stats(1, "entries")];
    assert!(entries.iter().all(|&n| n > 0), "{entries:?}");

    // CPU 0 one page per read, as perfetto reads.
    let mut records = 0u64;
    loop {
        match cpu0.read(&mut page) {
            Ok(n) => {
                assert_eq!(n, 4096, "whole pages");
                let decoded = decode_page(&page, &layout).unwrap();
                for e in &decoded.events {
                    assert_eq!(e.id(), Some(switch.id));
                    tracefs_raw::fields(&e.payload, &switch).unwrap();
                }
                records += decoded.events.len() as u64;
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
                break;
            }
        }
    }
    assert_eq!(records, entries[0]);

    // CPU 1 in 64 KiB blocking reads, as a splice into a pipe asks on guest kernels whose
    // FUSE splices through read_iter (6.1; newer kernels splice a direct-io FUSE file through
    // the page cache, where a size-0 file is empty: see docs/guest.md).
    let mut cpu1 = fs::File::open(m.path("per_cpu/cpu1/trace_pipe_raw")).unwrap();
    let mut big = vec![0u8; 65536];
    let n = cpu1.read(&mut big).unwrap();
    assert!(
        n > 0 && n.is_multiple_of(4096),
        "a 64 KiB read gave {n} bytes"
    );
    let first_records: u64 = big[..n]
        .chunks(4096)
        .map(|p| decode_page(p, &layout).unwrap().events.len() as u64)
        .sum();
    assert!(first_records > 0 && first_records <= entries[1]);

    // A blocking read with nothing recorded returns 0 after a bounded wait, never EAGAIN
    // (which would end trace-cmd's recording of this CPU).
    let mut rest = 0u64;
    let started = Instant::now();
    loop {
        let n = cpu1.read(&mut page).unwrap();
        if n == 0 {
            break;
        }
        rest += decode_page(&page, &layout).unwrap().events.len() as u64;
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(first_records + rest, entries[1]);
    assert_eq!(stats(1, "read events"), entries[1]);
    assert_eq!(stats(1, "entries"), 0);
}
