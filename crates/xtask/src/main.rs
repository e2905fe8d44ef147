//! Build-time tasks of the repository, run with `cargo run --release -p xtask -- TASK`.
//!
//! - `man OUTDIR`: writes `OUTDIR/eventfsd.1`, the man page generated from the daemon's clap
//!   definition ([`eventfsd::cli::command`]), so that it never disagrees with `--help`.
//!
//! scripts/install.sh calls it; nothing here runs at build time of the daemon itself.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Sections clap does not know about, appended after the generated ones (roff). They describe
/// behaviour of the daemon that is not an option: the environment it reads, and where to read
/// more.
const EXTRA_SECTIONS: &str = r#".SH ENVIRONMENT
.TP
\fBLISTEN_FDS\fR, \fBLISTEN_PID\fR
systemd socket activation (sd_listen_fds(3)): without \fB\-\-socket\-path\fR, \fB\-\-fd\fR or
\fB\-\-mount\fR, eventfsd serves the one listening socket systemd passes as descriptor 3.
.TP
\fBJOURNAL_STREAM\fR
set by systemd when stderr goes to the journal: log lines then carry sd\-daemon \fB<N>\fR
priority prefixes, so no \fB\-\-syslog\fR is needed under systemd.
.SH SEE ALSO
\fBsystemd.socket\fR(5), \fBqemu\fR(1), \fBvirtiofsd\fR(1);
the README and docs/ of the eventfsd source (policy: docs/policy.example.toml).
"#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, outdir] if task == "man" => match write_man(Path::new(outdir)) {
            Ok(path) => {
                println!("{path}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask man: {outdir}: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo run -p xtask -- man OUTDIR");
            ExitCode::from(2)
        }
    }
}

/// Writes `outdir/eventfsd.1` (creating `outdir`) and returns its path.
fn write_man(outdir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(outdir)?;
    // No date: the page is the same bytes for the same source (reproducible packages).
    let man = clap_mangen::Man::new(eventfsd::cli::command()).title("EVENTFSD");
    let path = outdir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    std::fs::File::create(&path)?.write_all(&page)?;
    Ok(path.display().to_string())
}
