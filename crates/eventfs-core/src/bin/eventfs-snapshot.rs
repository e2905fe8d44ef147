//! `eventfs-snapshot [--tracefs DIR] [--release STR] OUTPUT`: writes the event catalog of a live
//! tracefs mount to a catalog file that `eventfsd --catalog` (or the build, as the embedded
//! default) can load.

use std::path::PathBuf;
use std::process::ExitCode;

use eventfs_core::catalog::RawCatalog;
use eventfs_core::snapshot::snapshot;

const USAGE: &str = "usage: eventfs-snapshot [--tracefs DIR] [--release KERNEL_RELEASE] OUTPUT\n\
  --tracefs DIR   tracefs mount to read (default /sys/kernel/tracing)\n\
  --release STR   kernel release to record (default: the running kernel's)";

fn main() -> ExitCode {
    let mut tracefs = PathBuf::from("/sys/kernel/tracing");
    let mut release = None;
    let mut output = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tracefs" => tracefs = args.next().map(PathBuf::from).unwrap_or_default(),
            "--release" => release = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if output.is_none() && !arg.starts_with('-') => output = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("eventfs-snapshot: unexpected argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(output) = output else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let release = release.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    });
    let catalog = match snapshot(&tracefs, &release) {
        Ok(catalog) => catalog,
        Err(e) => {
            eprintln!(
                "eventfs-snapshot: {e} (is tracefs mounted there? try: mount -t tracefs nodev DIR)"
            );
            return ExitCode::FAILURE;
        }
    };
    let image = catalog.encode();
    // Never write an image this build would refuse to load.
    if let Err(problem) = RawCatalog::parse(&image) {
        eprintln!("eventfs-snapshot: internal error, image does not validate: {problem}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&output, &image) {
        eprintln!("eventfs-snapshot: {}: {e}", output.display());
        return ExitCode::FAILURE;
    }
    println!(
        "eventfs-snapshot: {} systems, {} events, {} bytes -> {}",
        catalog.systems.len(),
        catalog.event_count(),
        image.len(),
        output.display()
    );
    ExitCode::SUCCESS
}
