//! Command line, following QEMU's vhost-user backend program conventions
//! (docs/interop/vhost-user.rst, "Backend program conventions"), parsed with clap, and
//! accepting the command lines libvirt builds for a virtio-fs daemon ([`compat`]).

pub mod compat;

use std::path::{Path, PathBuf};

use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};

use crate::stats::StatsFormat;

/// Where the daemon serves the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// vhost-user socket at this path.
    SocketPath(PathBuf),
    /// Inherited, already listening vhost-user socket (`--fd`, or systemd's socket activation).
    Fd(i32),
    /// Host mount through /dev/fuse.
    Mount(PathBuf),
}

/// Where the events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded (or `--catalog`) event catalog, with emulated control semantics.
    Catalog,
    /// A private instance of the host's live tracefs.
    Host(HostArgs),
}

/// Options of `--source host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostArgs {
    /// `--tracefs DIR`: the host tracefs (default: found in /proc/mounts, or mounted).
    pub tracefs: Option<PathBuf>,
    /// `--instance NAME` (default `eventfsd-<pid>`).
    pub instance: Option<String>,
    /// `--policy FILE`.
    pub policy: Option<PathBuf>,
    /// `--reclaim-stale-instances`.
    pub reclaim_stale: bool,
    /// `--scope-pid PID`: record only this process tree's events.
    pub scope_pid: Option<u32>,
    /// `--snapshot-dir DIR`: where daemons share the snapshot of the host's events.
    pub snapshot_dir: PathBuf,
}

/// `--sandbox`: how the daemon confines itself once it has opened what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// New mount, pid and IPC namespaces with an empty root, and no capabilities.
    Namespace,
    /// No confinement (debugging).
    None,
}

/// `--seccomp`: what a syscall outside the allow-list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// Kills the daemon (SIGSYS).
    Kill,
    /// Logs it to the kernel log (audit) and lets it run.
    Log,
    /// No filter.
    None,
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Event source.
    pub source: Source,
    /// Where to serve.
    pub transport: Transport,
    /// Catalog file; `None` means the embedded one.
    pub catalog: Option<PathBuf>,
    /// Owner reported for every node.
    pub uid: u32,
    /// Group reported for every node.
    pub gid: u32,
    /// Worker threads for requests.
    pub thread_pool_size: usize,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// Stats file kept up to date.
    pub stats_file: Option<PathBuf>,
    /// Its format (with the `vm` label for Prometheus).
    pub stats_format: StatsFormat,
    /// Log to syslog instead of stderr.
    pub syslog: bool,
    /// Exit when QEMU disconnects instead of waiting for the next connection.
    pub exit_on_disconnect: bool,
    /// Catalog source: how often each event fires (`--rate` for events the profile does
    /// not name, `--rate-profile` rules before the built-in ones).
    pub rate_profile: std::sync::Arc<crate::source::catalog::RateProfile>,
    /// Catalog source: seed of the record generator.
    pub seed: u64,
    /// Number of `per_cpu/cpuN/` directories (the guest's vCPU count, or more).
    pub cpus: u32,
    /// `--sandbox`.
    pub sandbox: SandboxMode,
    /// `--seccomp`.
    pub seccomp: SeccompMode,
    /// `--socket-group`: the group that may connect to the socket (mode 0660); `None`: 0600.
    pub socket_group: Option<String>,
    /// `--readonly`: refuse every change with EROFS.
    pub read_only: bool,
    /// `--rlimit-nofile`: the open-file limit to set.
    pub rlimit_nofile: Option<u64>,
    /// What was accepted for compatibility and means nothing here, for the start-up log.
    pub compat_notes: Vec<String>,
}

/// Most CPUs `--cpus` accepts: `tracing_cpumask` is kept in one 64-bit word.
pub const MAX_CPUS: u32 = 64;

/// The default of `--cpus`: this host's configured CPUs (QEMU guests rarely have more vCPUs
/// than their host has CPUs), at most [`MAX_CPUS`].
pub fn default_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    u32::try_from(n).unwrap_or(1).clamp(1, MAX_CPUS)
}

/// What the environment adds to the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Listening sockets systemd passed to this process (`LISTEN_FDS`, checked against
    /// `LISTEN_PID`).
    pub listen_fds: u32,
}

/// The first descriptor systemd passes (sd_listen_fds(3)).
pub const LISTEN_FDS_START: i32 = 3;

impl Environment {
    /// Reads this process's environment, and clears the socket-activation variables so that
    /// they describe nobody else (sd_listen_fds(3) with `unset_environment`).
    pub fn take() -> Environment {
        let pid_matches = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            == Some(std::process::id());
        let listen_fds = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|_| pid_matches)
            .unwrap_or(0);
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            // Called once at start-up, while single-threaded (set_var/remove_var race otherwise).
            std::env::remove_var(var);
        }
        Environment { listen_fds }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve the tree.
    Serve(Box<Options>),
    /// `--print-capabilities`: the JSON QEMU expects.
    PrintCapabilities,
    /// `--help` or `--version`: print this text and exit successfully.
    Print(String),
}

/// The command line as clap sees it; [`parse`] turns it into a [`Command`].
#[derive(Parser, Debug)]
#[command(
    name = "eventfsd",
    version,
    override_usage = "eventfsd (--socket-path PATH | --fd FD | --mount DIR) [OPTIONS]\n       \
                      eventfsd [OPTIONS]    (socket-activated: systemd passes the socket)\n       \
                      eventfsd --print-capabilities",
    about = "Serves a tracefs-shaped tree (the embedded kernel event catalog by default) to a \
             QEMU guest over vhost-user virtio-fs, or on the host through /dev/fuse.",
    group(ArgGroup::new("transport").args(["socket_path", "fd", "mount"])),
    // QEMU and management tools may repeat an option; the last one wins, as before.
    args_override_self = true
)]
struct Args {
    /// Listen for QEMU on this vhost-user socket.
    #[arg(long, value_name = "PATH")]
    socket_path: Option<PathBuf>,
    /// Use this inherited, listening vhost-user socket.
    #[arg(long, value_name = "FD")]
    fd: Option<i32>,
    /// Serve on the host at DIR through /dev/fuse (root).
    #[arg(long, value_name = "DIR")]
    mount: Option<PathBuf>,
    /// Event catalog to serve (default: the embedded snapshot).
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Where events come from: the catalog, or a private instance of the host tracefs.
    #[arg(long, value_name = "SOURCE", default_value = "catalog", value_parser = ["catalog", "host"])]
    source: String,
    /// Host source: the host tracefs (default: from /proc/mounts, else mounted).
    #[arg(long, value_name = "DIR")]
    tracefs: Option<PathBuf>,
    /// Host source: instance name (default eventfsd-<pid>).
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// Host source: TOML policy (default: the safe policy of docs/policy.example.toml).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Host source: remove eventfsd-<pid> instances of dead daemons.
    #[arg(long)]
    reclaim_stale_instances: bool,
    /// Host source: record only the events of this process tree (the VM's QEMU).
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    scope_pid: Option<u32>,
    /// Host source: where daemons share one snapshot of the host's events per boot [default:
    /// /run/eventfsd]
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
    /// Owner of every node.
    #[arg(long, value_name = "N", default_value_t = 0)]
    uid: u32,
    /// Group of every node.
    #[arg(long, value_name = "N", default_value_t = 0)]
    gid: u32,
    /// Most request worker threads, started as requests need them (0, as libvirt may pass it, means 1)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    thread_pool_size: u16,
    /// error, warn, info, debug or trace (logs as debug).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: log::LevelFilter,
    /// Keep counters in PATH (rewritten within 500 ms of activity, every 15 s when idle).
    #[arg(long, value_name = "PATH")]
    stats_file: Option<PathBuf>,
    /// json, or prometheus (node_exporter's textfile format) [default: prometheus for a .prom
    /// file, else json]
    #[arg(long, value_name = "FORMAT", value_parser = ["json", "prometheus"])]
    stats_format: Option<String>,
    /// The vm label of Prometheus stats [default: the stats file's name without extension]
    #[arg(long, value_name = "NAME")]
    vm_name: Option<String>,
    /// Log to syslog (journald's /dev/log) instead of stderr.
    #[arg(long)]
    syslog: bool,
    /// Exit when QEMU disconnects (default: serve the next QEMU).
    #[arg(long)]
    exit_on_disconnect: bool,
    /// Catalog source: records per second of an enabled event the rate profile does not name
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(..=100_000))]
    rate: u32,
    /// Catalog source: `system:event RATE` lines (globs; first match wins) before the built-in
    /// profile (see README)
    #[arg(long, value_name = "FILE")]
    rate_profile: Option<PathBuf>,
    /// Catalog source: seed of the synthetic record generator.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// per_cpu/cpuN directories: the guest's vCPU count (see README) [default: host CPUs]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CPUS)))]
    cpus: Option<u32>,
    /// Confinement after start-up, namespace (namespaces, empty root, no capabilities; see
    /// README) or none
    #[arg(long, value_name = "MODE", default_value = "namespace",
          value_parser = ["namespace", "none", "chroot"], hide_possible_values = true)]
    sandbox: String,
    /// What a syscall outside the daemon's allow-list does.
    #[arg(long, value_name = "ACTION", default_value = "kill", value_parser = ["kill", "log", "none"])]
    seccomp: String,
    /// Let this group connect to --socket-path (mode 0660; default 0600, owner only).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Print the vhost-user backend capabilities (JSON) and exit (other options are ignored).
    #[arg(long)]
    print_capabilities: bool,
    /// Refuse every change with EROFS (libvirt's <readonly/>).
    #[arg(long)]
    readonly: bool,
    /// Set the open-file limit (RLIMIT_NOFILE) to N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rlimit_nofile: Option<u64>,
    /// libvirt's <source dir>: a tracefs mount (host source) or a catalog file (catalog source).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["catalog", "tracefs"])]
    shared_dir: Option<PathBuf>,
    /// libvirt: accepted; eventfsd sets its own cache timeouts (control files are never cached).
    #[arg(long, value_name = "MODE", value_parser = ["never", "auto", "always", "metadata"])]
    cache: Option<String>,
    /// libvirt: refused, tracefs has no extended attributes.
    #[arg(long)]
    xattr: bool,
    /// libvirt: accepted and unused (nodes belong to --uid/--gid, in the guest's ids).
    #[arg(long, value_name = ":START:HOST:COUNT:", value_parser = compat::check_id_map)]
    uid_map: Vec<String>,
    /// libvirt: accepted and unused, as --uid-map.
    #[arg(long, value_name = ":START:HOST:COUNT:", value_parser = compat::check_id_map)]
    gid_map: Vec<String>,
}

/// The clap definition of the command line (for help and man pages).
pub fn command() -> clap::Command {
    Args::command()
}

/// Parses the arguments after the program name, in an environment without socket activation.
/// Errors are one line, without the usage.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    parse_in(args, &Environment::default())
}

/// The catalog's rate profile: the built-in rules with `default_rate` for the rest, after the
/// rules of `file` if one is given.
fn rate_profile(
    default_rate: u32,
    file: Option<&Path>,
) -> Result<std::sync::Arc<crate::source::catalog::RateProfile>, String> {
    let profile = crate::source::catalog::RateProfile::built_in(f64::from(default_rate));
    let Some(file) = file else {
        return Ok(profile.into());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--rate-profile {}: {e}", file.display()))?;
    profile
        .with_overrides(&text)
        .map(Into::into)
        .map_err(|e| format!("--rate-profile {}: {e}", file.display()))
}

/// Parses the arguments after the program name in `env`. Errors are one line, without the
/// usage.
pub fn parse_in(
    args: impl IntoIterator<Item = String>,
    env: &Environment,
) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    // vhost-user.rst, "Backend program conventions": with --print-capabilities every other
    // argument is ignored, so it must win before anything else is checked.
    if args.iter().any(|a| a == "--print-capabilities") {
        return Ok(Command::PrintCapabilities);
    }
    let args = compat::translate_legacy(args)?;
    let argv = std::iter::once("eventfsd".to_string()).chain(args);
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Command::Print(e.render().to_string()))
                }
                _ => Err(one_line(&e)),
            };
        }
    };
    let source_given =
        matches.value_source("source") == Some(clap::parser::ValueSource::CommandLine);
    let mut args = Args::from_arg_matches(&matches).map_err(|e| one_line(&e))?;
    if let Some(dir) = args.shared_dir.take() {
        let kind = match compat::resolve_shared_dir(&dir)? {
            compat::SharedDir::Tracefs(dir) => {
                args.tracefs = Some(dir);
                "host"
            }
            compat::SharedDir::Catalog(file) => {
                args.catalog = Some(file);
                "catalog"
            }
        };
        if source_given && args.source != kind {
            return Err(format!(
                "--shared-dir {} means --source {kind}, not --source {}",
                dir.display(),
                args.source
            ));
        }
        args.source = kind.into();
    }
    if args.xattr {
        return Err("--xattr: tracefs has no extended attributes (leave xattr off)".into());
    }
    if args.sandbox == "chroot" {
        return Err(
            "--sandbox chroot: eventfsd confines itself with namespaces (namespace, the \
             default) or not at all (none)"
                .into(),
        );
    }
    let mut compat_notes = Vec::new();
    if let Some(mode) = &args.cache {
        compat_notes.push(format!(
            "--cache {mode} ignored: eventfsd sets its own cache timeouts, and control files \
             are never cached"
        ));
    }
    if !args.uid_map.is_empty() || !args.gid_map.is_empty() {
        compat_notes.push(
            "--uid-map/--gid-map ignored: every node belongs to --uid/--gid, in the guest's \
             ids"
            .into(),
        );
    }
    let host = args.source == "host";
    if host && args.rate_profile.is_some() {
        return Err("--rate-profile needs the catalog source".into());
    }
    let rate_profile = rate_profile(args.rate, args.rate_profile.as_deref())?;
    let host_only = [
        ("--tracefs", args.tracefs.is_some()),
        ("--instance", args.instance.is_some()),
        ("--policy", args.policy.is_some()),
        ("--reclaim-stale-instances", args.reclaim_stale_instances),
        ("--scope-pid", args.scope_pid.is_some()),
        ("--snapshot-dir", args.snapshot_dir.is_some()),
    ];
    if !host {
        if let Some((flag, _)) = host_only.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} needs --source host"));
        }
    } else if args.catalog.is_some() {
        return Err("--catalog cannot be used with --source host".into());
    }
    if args.socket_group.is_some() && args.socket_path.is_none() {
        return Err("--socket-group needs --socket-path".into());
    }
    let transport =
        match (args.socket_path, args.fd, args.mount) {
            (Some(path), None, None) => Transport::SocketPath(path),
            (None, Some(fd), None) => Transport::Fd(fd),
            (None, None, Some(dir)) => Transport::Mount(dir),
            (None, None, None) => match env.listen_fds {
                1 => Transport::Fd(LISTEN_FDS_START),
                0 => return Err(
                    "one of --socket-path, --fd or --mount is required (or a socket from systemd)"
                        .into(),
                ),
                n => return Err(format!("systemd passed {n} sockets; eventfsd serves one")),
            },
            _ => unreachable!("clap's transport group allows at most one"),
        };
    if args.stats_format.is_some() && args.stats_file.is_none() {
        return Err("--stats-format needs --stats-file".into());
    }
    if args.vm_name.is_some() && args.stats_file.is_none() {
        return Err("--vm-name needs --stats-file".into());
    }
    let stats_format = stats_format(
        args.stats_file.as_deref(),
        args.stats_format.as_deref(),
        args.vm_name,
    );
    let source = if host {
        Source::Host(HostArgs {
            tracefs: args.tracefs,
            instance: args.instance,
            policy: args.policy,
            reclaim_stale: args.reclaim_stale_instances,
            scope_pid: args.scope_pid,
            snapshot_dir: args
                .snapshot_dir
                .unwrap_or_else(|| crate::source::host::shared_image::DEFAULT_STORE.into()),
        })
    } else {
        Source::Catalog
    };
    Ok(Command::Serve(Box::new(Options {
        source,
        transport,
        catalog: args.catalog,
        uid: args.uid,
        gid: args.gid,
        thread_pool_size: usize::from(args.thread_pool_size).max(1),
        log_level: args.log_level,
        stats_file: args.stats_file,
        stats_format,
        syslog: args.syslog,
        exit_on_disconnect: args.exit_on_disconnect,
        rate_profile,
        seed: args.seed,
        cpus: args.cpus.unwrap_or_else(default_cpus),
        sandbox: if args.sandbox == "none" {
            SandboxMode::None
        } else {
            SandboxMode::Namespace
        },
        seccomp: match args.seccomp.as_str() {
            "none" => SeccompMode::None,
            "log" => SeccompMode::Log,
            _ => SeccompMode::Kill,
        },
        socket_group: args.socket_group,
        read_only: args.readonly,
        rlimit_nofile: args.rlimit_nofile,
        compat_notes,
    })))
}

/// The stats file's format: as asked, else from the file's extension.
fn stats_format(file: Option<&Path>, format: Option<&str>, vm: Option<String>) -> StatsFormat {
    let prom = file.is_some_and(|f| f.extension().is_some_and(|e| e == "prom"));
    match format {
        Some("prometheus") => {}
        None if prom => {}
        _ => return StatsFormat::Json,
    }
    let vm = vm.unwrap_or_else(|| {
        file.and_then(Path::file_stem)
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    StatsFormat::Prometheus { vm }
}

/// clap's message without its `error: ` prefix, usage and tips: one line for a log.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| {
            !l.starts_with("Usage:") && !l.starts_with("tip:") && !l.starts_with("For more")
        })
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    format!(
        "{} (see --help)",
        message.strip_prefix("error: ").unwrap_or(&message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn rate_profile_rules_come_first_and_bad_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("eventfsd-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "sched:sched_switch 3\n").unwrap();
        let bad = dir.join("bad");
        std::fs::write(&bad, "sched:sched_switch fast\n").unwrap();
        let line = format!("--mount m --rate 7 --rate-profile {}", good.display());
        let Command::Serve(o) = parse(args(&line)).unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(o.rate_profile.rate_of("sched", "sched_switch"), 3.0);
        assert_eq!(o.rate_profile.rate_of("irq", "irq_handler_entry"), 100.0);
        assert_eq!(o.rate_profile.rate_of("block", "block_rq_issue"), 7.0);
        let e = parse(args(&format!("--mount m --rate-profile {}", bad.display()))).unwrap_err();
        assert!(e.contains("line 1") && e.contains("fast"), "{e}");
        let e = parse(args("--mount m --rate-profile /nonexistent/profile")).unwrap_err();
        assert!(e.contains("/nonexistent/profile"), "{e}");
        let e = parse(args(&format!(
            "--mount m --source host --rate-profile {}",
            good.display()
        )))
        .unwrap_err();
        assert!(e.contains("catalog"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_qemu_style_arguments() {
        let Command::Serve(o) = parse(args(
            "--socket-path=/tmp/x.sock --thread-pool-size 2 --log-level debug",
        ))
        .unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(o.transport, Transport::SocketPath("/tmp/x.sock".into()));
        assert_eq!(o.thread_pool_size, 2);
        assert_eq!(o.log_level, log::LevelFilter::Debug);
        assert_eq!(o.source, Source::Catalog);
        assert_eq!(o.seed, 1);
        assert_eq!(o.rate_profile.rate_of("block", "block_rq_issue"), 10.0);
        assert_eq!(o.rate_profile.rate_of("sched", "sched_switch"), 400.0);
        // Confined by default, socket for the owner only.
        assert_eq!(o.sandbox, SandboxMode::Namespace);
        assert_eq!(o.seccomp, SeccompMode::Kill);
        assert_eq!(o.socket_group, None);
        let Command::Serve(o) = parse(args(
            "--socket-path s --sandbox none --seccomp log --socket-group kvm",
        ))
        .unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(
            (o.sandbox, o.seccomp, o.socket_group.as_deref()),
            (SandboxMode::None, SeccompMode::Log, Some("kvm"))
        );
        assert_eq!(
            parse(args("--print-capabilities")).unwrap(),
            Command::PrintCapabilities
        );
        assert_eq!(
            parse(args("--fd 3 --uid 5")).map(
                |c| matches!(c, Command::Serve(o) if o.uid == 5 && o.transport == Transport::Fd(3))
            ),
            Ok(true)
        );
        // Other arguments are ignored with --print-capabilities, even bad ones.
        assert_eq!(
            parse(args("--fd 3 --print-capabilities --bogus")).unwrap(),
            Command::PrintCapabilities
        );
        // A repeated option: the last one wins.
        let Command::Serve(o) = parse(args("--fd 3 --log-level info --log-level debug")).unwrap()
        else {
            panic!("expected serve");
        };
        assert_eq!(o.log_level, log::LevelFilter::Debug);
        assert!(
            matches!(parse(args("--help")), Ok(Command::Print(t)) if t.contains("--socket-path"))
        );
        assert!(
            matches!(parse(args("--version")), Ok(Command::Print(t)) if t.contains("eventfsd"))
        );
    }

    #[test]
    fn rejects_bad_arguments_in_one_line() {
        let cases = [
            ("", "required"),
            ("--fd 3 --syslog --bogus", "unexpected argument"),
            ("--fd 3 --mount /x", "cannot be used with"),
            ("--fd x", "invalid value"),
            ("--socket-path", "a value is required"),
            ("--bogus", "unexpected argument"),
            ("--fd 3 --thread-pool-size 257", "not in 0..=256"),
            ("--fd 3 --rate 100001", "100000"),
            ("--fd 3 --policy p.toml", "needs --source host"),
            (
                "--fd 3 --source host --catalog x",
                "cannot be used with --source host",
            ),
            ("--fd 3 --source nope", "invalid value"),
            ("--fd 3 --log-level loud", "invalid value"),
            ("--fd 3 --sandbox jail", "invalid value"),
            ("--fd 3 --sandbox chroot", "confines itself with namespaces"),
            ("--fd 3 --xattr", "no extended attributes"),
            ("--fd 3 --uid-map 0:1:1", "is not :start:host_start:count:"),
            ("--fd 3 --cache sometimes", "invalid value"),
            ("--fd 3 --seccomp trap", "invalid value"),
            ("--fd 3 --socket-group kvm", "needs --socket-path"),
        ];
        for (line, want) in cases {
            let err = parse(args(line)).expect_err(line);
            assert!(err.contains(want), "{line:?}: {err:?} lacks {want:?}");
            assert!(!err.contains('\n'), "{line:?}: not one line: {err:?}");
        }
    }

    #[test]
    fn socket_activation_and_stats_formats() {
        let activated = Environment { listen_fds: 1 };
        let Command::Serve(o) = parse_in(args("--log-level info"), &activated).unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(o.transport, Transport::Fd(LISTEN_FDS_START));
        // An explicit transport wins over the environment.
        let Command::Serve(o) = parse_in(args("--fd 7"), &activated).unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(o.transport, Transport::Fd(7));
        let two = Environment { listen_fds: 2 };
        assert!(parse_in(args(""), &two)
            .unwrap_err()
            .contains("passed 2 sockets"));
        assert!(parse(args("")).unwrap_err().contains("socket from systemd"));

        let format = |line: &str| match parse(args(line)).unwrap() {
            Command::Serve(o) => o.stats_format,
            other => panic!("{other:?}"),
        };
        assert_eq!(format("--fd 3 --stats-file s.json"), StatsFormat::Json);
        assert_eq!(
            format("--fd 3 --stats-file /run/eventfsd/vm7.prom"),
            StatsFormat::Prometheus { vm: "vm7".into() }
        );
        assert_eq!(
            format("--fd 3 --stats-file s --stats-format prometheus --vm-name guest"),
            StatsFormat::Prometheus { vm: "guest".into() }
        );
        assert_eq!(
            format("--fd 3 --stats-file s.prom --stats-format json"),
            StatsFormat::Json
        );
        for (line, want) in [
            ("--fd 3 --stats-format json", "needs --stats-file"),
            ("--fd 3 --vm-name x", "needs --stats-file"),
            ("--fd 3 --stats-file s --stats-format xml", "invalid value"),
        ] {
            assert!(parse(args(line)).unwrap_err().contains(want), "{line}");
        }
    }

    #[test]
    fn parses_host_source() {
        let Command::Serve(o) = parse(args(
            "--mount /m --source host --tracefs /t --instance i --policy p --reclaim-stale-instances \
             --scope-pid 7",
        ))
        .unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(
            o.source,
            Source::Host(HostArgs {
                tracefs: Some("/t".into()),
                instance: Some("i".into()),
                policy: Some("p".into()),
                reclaim_stale: true,
                scope_pid: Some(7),
                snapshot_dir: "/run/eventfsd".into(),
            })
        );
    }
}
