//! A perfetto-style reader of `per_cpu/cpuN/trace_pipe_raw`: opens every CPU's file with
//! O_NONBLOCK (giving up if one cannot be opened, as perfetto does), reads one page per CPU
//! every interval, and prints each record as one line:
//!
//! `cpu=N ts=SECONDS.MICROS event=NAME common_pid=PID field=value ...`
//!
//! Usage: `tracefs-rawread [--cpus N] [--interval-ms MS] [--idle-rounds K] [--max-ms MS]
//! [--expect-idle] [--drain] [--event SYSTEM/EVENT]... TRACING_DIR`. `--drain` reads each CPU
//! until it has no page left in every round, as trace-cmd does, instead of one page. It stops
//! after K rounds in a row without data once it has seen a record (or from the start with
//! `--expect-idle`), or after MAX-MS. The last line (stderr) counts pages, records, EAGAIN and 0-byte reads. A short
//! read, a page that does not decode, or a record whose fields lie outside its payload is an
//! error (exit status 2).

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracefs_raw::{decode_page, fields, EventFormat, PageLayout};

struct Args {
    dir: PathBuf,
    cpus: usize,
    interval: Duration,
    idle_rounds: u32,
    max: Duration,
    events: Vec<String>,
    /// `--idle-rounds` ends the run even before any record arrived.
    idle_stops: bool,
    /// `--drain`: each round reads every CPU until it has no page left (trace-cmd's pace)
    /// instead of one page per CPU (perfetto's).
    drain: bool,
}

fn parse_args() -> Result<Args, String> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let conf = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    let mut args = Args {
        dir: PathBuf::new(),
        cpus: usize::try_from(conf).unwrap_or(1).max(1),
        interval: Duration::from_millis(100),
        idle_rounds: 5,
        max: Duration::from_secs(30),
        events: Vec::new(),
        idle_stops: false,
        drain: false,
    };
    let mut it = std::env::args().skip(1);
    let mut dir = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--cpus" => args.cpus = number(value("--cpus")?)? as usize,
            "--interval-ms" => args.interval = Duration::from_millis(number(value(&arg)?)?),
            "--idle-rounds" => args.idle_rounds = number(value(&arg)?)? as u32,
            "--max-ms" => args.max = Duration::from_millis(number(value(&arg)?)?),
            "--event" => args.events.push(value(&arg)?),
            "--expect-idle" => args.idle_stops = true,
            "--drain" => args.drain = true,
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    args.dir = dir.ok_or("usage: tracefs-rawread [options] TRACING_DIR")?;
    Ok(args)
}

fn read_text(path: &Path) -> Result<String, String> {
    // One large read: tracefs serves files like header_page whole on the first read only.
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    String::from_utf8(out).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a run read: pages, records, reads that gave EAGAIN and reads that gave 0.
struct Totals {
    pages: u64,
    records: u64,
    eagain: u64,
    eof: u64,
}

fn run() -> Result<Totals, String> {
    let args = parse_args()?;
    let layout = PageLayout::parse(&read_text(&args.dir.join("events/header_page"))?)
        .ok_or("events/header_page does not describe a page")?;
    let mut formats: HashMap<u16, EventFormat> = HashMap::new();
    for event in &args.events {
        let path = args.dir.join("events").join(event).join("format");
        let format = EventFormat::parse(&read_text(&path)?)
            .ok_or_else(|| format!("{}: not a format", path.display()))?;
        formats.insert(format.id, format);
    }
    let mut files = Vec::with_capacity(args.cpus);
    for cpu in 0..args.cpus {
        let path = args.dir.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(file);
    }
    let page_size = layout.page_size();
    let mut page = vec![0u8; page_size];
    let (mut records, mut pages, mut eagain, mut eof) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut idle = 0;
    while started.elapsed() < args.max {
        let mut got = false;
        for (cpu, file) in files.iter_mut().enumerate() {
            // One page per CPU and round, or (--drain) every page there is.
            loop {
                let n = match file.read(&mut page) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        eagain += 1;
                        break;
                    }
                    Err(e) => return Err(format!("cpu{cpu}: read: {e}")),
                };
                if n == 0 {
                    eof += 1;
                    break;
                }
                if n != page_size {
                    return Err(format!("cpu{cpu}: short read of {n} bytes"));
                }
                let decoded = decode_page(&page, &layout).map_err(|e| format!("cpu{cpu}: {e}"))?;
                pages += 1;
                got = true;
                if let Some(count) = decoded.missed {
                    let count = count.map_or("unknown".to_string(), |c| c.to_string());
                    println!("missed cpu={cpu} count={count}");
                }
                for event in &decoded.events {
                    records += 1;
                    let id = event.id().unwrap_or(0);
                    // Microseconds rounded as the kernel's ns2usecs does for `trace`.
                    let us = (event.ts + 500) / 1000;
                    let ts = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
                    let Some(format) = formats.get(&id) else {
                        println!("cpu={cpu} ts={ts} id={id}");
                        continue;
                    };
                    let values = fields(&event.payload, format)
                        .map_err(|e| format!("cpu{cpu} {}: {e}", format.name))?;
                    let mut line = format!("cpu={cpu} ts={ts} event={}", format.name);
                    for (name, value) in &values {
                        match name.as_str() {
                            "common_pid" => line.push_str(&format!(" common_pid={value}")),
                            n if n.starts_with("common_") => {}
                            n => line.push_str(&format!(" {n}={value}")),
                        }
                    }
                    println!("{line}");
                }
                if !args.drain || started.elapsed() >= args.max {
                    break;
                }
            }
        }
        if got {
            idle = 0;
        } else {
            idle += 1;
            if idle >= args.idle_rounds && (records > 0 || args.idle_stops) {
                break;
            }
        }
        std::thread::sleep(args.interval);
    }
    Ok(Totals {
        pages,
        records,
        eagain,
        eof,
    })
}

fn main() {
    match run() {
        Ok(t) => eprintln!(
            "tracefs-rawread: {} pages, {} records, {} EAGAIN, {} EOF",
            t.pages, t.records, t.eagain, t.eof
        ),
        Err(e) => {
            eprintln!("tracefs-rawread: {e}");
            std::process::exit(2);
        }
    }
}
