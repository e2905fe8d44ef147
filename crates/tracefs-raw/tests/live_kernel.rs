//! The reader is an oracle only if it reads the real kernel right: decode the pages of a
//! private instance of this machine's tracefs and find every record in the kernel's own text.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use tracefs_raw::{decode_page, fields, EventFormat, PageLayout, Value};

/// Removes the instance even when an assertion fails.
struct Instance<'a>(&'a Path);

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("tracing_on"), "0");
        let _ = fs::write(self.0.join("events/enable"), "0");
        let _ = fs::remove_dir(self.0);
    }
}

/// A tracefs file read whole: large reads until 0 (`header_page` answers only the first read,
/// so the 32-byte probe of `read_to_string` would cut it).
fn read_all(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return String::from_utf8(out).unwrap();
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn decodes_the_live_kernels_pages_as_its_trace_text_shows_them() {
    let Some(tracefs) = test_prereq::PrivateTracefs::mount("tracefs_raw_live_kernel") else {
        return;
    };
    let dir = tracefs.join(format!("instances/tracefs-raw-{}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    let instance = Instance(&dir);
    let layout = PageLayout::parse(&read_all(&dir.join("events/header_page"))).unwrap();
    let formats: HashMap<u16, EventFormat> = ["sched_switch", "sched_wakeup"]
        .iter()
        .map(|e| {
            let f = EventFormat::parse(&read_all(&dir.join(format!("events/sched/{e}/format"))))
                .unwrap();
            fs::write(dir.join(format!("events/sched/{e}/enable")), "1").unwrap();
            (f.id, f)
        })
        .collect();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(2));
    }
    fs::write(dir.join("tracing_on"), "0").unwrap();
    let trace = read_all(&dir.join("trace"));
    let cpus = fs::read_dir(dir.join("per_cpu")).unwrap().count();
    let mut decoded = 0;
    let mut page = vec![0u8; layout.page_size()];
    for cpu in 0..cpus {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(dir.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw")))
            .unwrap();
        while let Ok(n) = file.read(&mut page) {
            if n == 0 {
                break;
            }
            assert_eq!(n, page.len());
            for event in decode_page(&page, &layout).unwrap().events {
                let Some(format) = formats.get(&event.id().unwrap()) else {
                    continue;
                };
                let values: HashMap<String, Value> = fields(&event.payload, format)
                    .unwrap()
                    .into_iter()
                    .collect();
                let us = (event.ts + 500) / 1000;
                let ts = format!(
                    " {}.{:06}: {}: ",
                    us / 1_000_000,
                    us % 1_000_000,
                    format.name
                );
                let key = match format.name.as_str() {
                    "sched_switch" => format!("prev_pid={} ", values["prev_pid"]),
                    _ => format!("comm={} pid={} ", values["comm"], values["pid"]),
                };
                assert!(
                    trace.lines().any(|l| l.contains(&ts)
                        && l.contains(&key)
                        && l.contains(&format!("[{cpu:03}]"))),
                    "cpu{cpu}: no line with {ts:?} and {key:?}"
                );
                decoded += 1;
            }
        }
    }
    let lines = trace.lines().filter(|l| !l.starts_with('#')).count();
    assert!(decoded > 0);
    assert_eq!(
        decoded, lines,
        "every record of the text, and no other, from the pages"
    );
    drop(instance);
}
