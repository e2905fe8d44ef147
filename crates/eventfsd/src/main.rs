//! eventfsd: serves a tracefs/eventfs-shaped tree to QEMU guests over vhost-user virtio-fs, or on
//! the host through /dev/fuse.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use fuse_backend_rs::api::server::Server;

use eventfs_core::TreeConfig;
use vhost::vhost_user::Listener;

use eventfsd::cli::{self, Command, Options, SandboxMode, Transport};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::sandbox::{self, Side};
use eventfsd::source::catalog::{CatalogOptions, CatalogSource, CatalogSourceOptions};
use eventfsd::source::host::shared_image::{self, SharedImage};
use eventfsd::source::host::{
    handle_stale_instances, instance, ForwardLimits, HostError, HostOptions, HostSource, Policy,
    Tracefs,
};
use eventfsd::source::Source;
use eventfsd::stats::{Stats, StatsFile, StatsHook, StatsPacer};
use eventfsd::transport::fusedev::{self, FuseMounted};
use eventfsd::transport::vhost_user::{self, ServeOptions, Shutdown};
use eventfsd::wake::{MainWait, Woken};

/// Logs to syslog (`--syslog`), or to stderr as `eventfsd: LEVEL: message`. When stderr is the
/// journal (systemd sets `JOURNAL_STREAM`), each line starts with its sd-daemon(3) priority, so
/// that `journalctl -p` filters by level.
fn init_logger(level: log::LevelFilter, syslog: bool) {
    let syslog_error = if syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "eventfsd".into(),
            pid: std::process::id(),
        };
        // Connected now, before the sandbox hides /dev/log; the socket stays usable after it.
        match syslog::unix(formatter) {
            Ok(logger) => {
                let _ = log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger)));
                log::set_max_level(level);
                None
            }
            Err(e) => Some(e.to_string()),
        }
    } else {
        None
    };
    if !syslog || syslog_error.is_some() {
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        env_logger::Builder::new()
            .filter_level(level)
            .target(env_logger::Target::Stderr)
            .format(move |buf, record| {
                let level = record.level();
                if journal {
                    let priority = match level {
                        log::Level::Error => 3,
                        log::Level::Warn => 4,
                        log::Level::Info => 6,
                        log::Level::Debug | log::Level::Trace => 7,
                    };
                    write!(buf, "<{priority}>")?;
                }
                writeln!(
                    buf,
                    "eventfsd: {}: {}",
                    level.as_str().to_lowercase(),
                    record.args()
                )
            })
            .init();
    }
    if let Some(e) = syslog_error {
        log::warn!("--syslog: cannot reach the system logger ({e}); logging to stderr");
    }
    // fuse-backend-rs's trace lines transmute the guest's opcode into an enum before any
    // filter sees them, which is undefined for the numbers FUSE leaves unused (0, 7, 19): the
    // global level must stay below trace, so `--log-level trace` logs as debug.
    if level > log::LevelFilter::Debug {
        log::set_max_level(log::LevelFilter::Debug);
        log::warn!(
            "--log-level trace logs as debug: trace would let a guest reach undefined behaviour \
             in fuse-backend-rs"
        );
    }
}

/// The transport, opened before the sandbox.
enum OpenTransport {
    /// `--socket-path`: bound and listening; the file is removed when the daemon ends.
    Socket {
        listener: UnixListener,
        path: PathBuf,
    },
    /// `--fd`.
    Fd(Listener),
    /// `--mount`: mounted, not served yet.
    Mount { mounted: FuseMounted, dir: PathBuf },
}

/// Everything the daemon reads or opens by host path: done before the sandbox, after which no
/// host path is reachable.
struct Opened {
    transport: OpenTransport,
    stats_file: Option<Arc<StatsFile>>,
    /// `--catalog`'s bytes.
    catalog: Option<Vec<u8>>,
    /// `--policy`, loaded.
    policy: Option<Policy>,
    /// Host source, sandboxed: the tracefs the parent found (and, if it mounted one, keeps
    /// mounted until the child is gone).
    tracefs: Option<Tracefs>,
    /// Host source with a scope: its tasks, read from the host's `/proc`.
    scope_tasks: Option<std::collections::BTreeSet<u32>>,
    /// Host source, sandboxed: the catalog image, from the shared store (or built).
    shared_image: Option<SharedImage>,
}

impl Opened {
    /// What the sandbox's parent keeps while the child serves; the rest is dropped.
    fn into_parent_part(self) -> (OpenTransport, Option<Tracefs>) {
        (self.transport, self.tracefs)
    }
}

/// `--rlimit-nofile`: the soft and hard open-file limit, as virtiofsd sets it.
fn set_open_file_limit(limit: u64) -> Result<(), String> {
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("--rlimit-nofile {limit}: {e}"));
    }
    log::debug!("open-file limit set to {limit}");
    Ok(())
}

fn open(options: &Options) -> Result<Opened, String> {
    if let Some(limit) = options.rlimit_nofile {
        set_open_file_limit(limit)?;
    }
    let catalog = match (&options.source, &options.catalog) {
        (cli::Source::Catalog, Some(path)) => {
            Some(eventfs_core::catalog::load_file(path).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let mut scope_tasks = None;
    let mut shared_image = None;
    let (policy, tracefs) = match &options.source {
        cli::Source::Host(args) => {
            let policy = args
                .policy
                .as_deref()
                .map(Policy::load)
                .transpose()
                .map_err(|e| format!("host source: {e}"))?;
            let scope_pid = args
                .scope_pid
                .or(policy.as_ref().map(|p| p.scope_pid).filter(|&pid| pid != 0));
            if let Some(pid) = scope_pid {
                scope_tasks = Some(
                    eventfsd::source::host::scope::process_tree(pid)
                        .map_err(|e| format!("--scope-pid {pid}: {e}"))?,
                );
            }
            let tracefs = if options.sandbox == SandboxMode::Namespace {
                let tracefs = Tracefs::find(args.tracefs.as_deref())
                    .map_err(|e| format!("host source: {e}"))?;
                // Here, in the host's pid namespace, where the pids in the names mean something.
                handle_stale_instances(&tracefs, args.reclaim_stale);
                // The child refuses an existing instance too, but only after the transport is
                // up, and it names the path as it sees it: say it here, in one line.
                let name = args.instance.clone().unwrap_or_else(|| {
                    format!("{}{}", instance::INSTANCE_PREFIX, std::process::id())
                });
                let existing = tracefs.root.join("instances").join(&name);
                instance::check_instance_name(&name)
                    .and_then(|()| match existing.exists() {
                        true => Err(HostError::InstanceExists(existing.display().to_string())),
                        false => Ok(()),
                    })
                    .map_err(|e| format!("host source: {e}"))?;
                // The store is a host path: reached here, mapped, and inherited by the child.
                let default_policy;
                let serving_policy = match &policy {
                    Some(policy) => policy,
                    None => {
                        default_policy = Policy::default();
                        &default_policy
                    }
                };
                shared_image = Some(
                    shared_image::obtain(
                        &tracefs,
                        serving_policy,
                        &args.snapshot_dir,
                        std::process::id(),
                    )
                    .map_err(|e| format!("host source: {e}"))?,
                );
                Some(tracefs)
            } else {
                None
            };
            (policy, tracefs)
        }
        cli::Source::Catalog => (None, None),
    };
    let stats_file = options
        .stats_file
        .as_deref()
        .map(|path| {
            StatsFile::open(path, options.stats_format.clone())
                .map(Arc::new)
                .map_err(|e| format!("stats file {}: {e}", path.display()))
        })
        .transpose()?;
    let transport = match &options.transport {
        Transport::SocketPath(path) => {
            let group = options
                .socket_group
                .as_deref()
                .map(vhost_user::resolve_group)
                .transpose()?;
            let listener = vhost_user::bind_socket(path, group).map_err(|e| e.to_string())?;
            log::info!("listening on {}", path.display());
            OpenTransport::Socket {
                listener,
                path: path.clone(),
            }
        }
        Transport::Fd(fd) => {
            OpenTransport::Fd(vhost_user::listener_from_fd(*fd).map_err(|e| e.to_string())?)
        }
        Transport::Mount(dir) => OpenTransport::Mount {
            mounted: FuseMounted::mount(dir).map_err(|e| e.to_string())?,
            dir: dir.clone(),
        },
    };
    Ok(Opened {
        transport,
        stats_file,
        catalog,
        policy,
        tracefs,
        scope_tasks,
        shared_image,
    })
}

/// Starts the chosen source: the only place that knows which one runs.
fn start_source(
    options: &Options,
    opened: &mut Opened,
    instance_pid: Option<u32>,
) -> Result<Arc<dyn Source>, String> {
    let config = TreeConfig {
        uid: options.uid,
        gid: options.gid,
        cpus: options.cpus,
    };
    // Waiting trace_pipe readers must leave a worker free for other requests.
    let max_blocked_readers = options.thread_pool_size.saturating_sub(1);
    let source: Arc<dyn Source> = match &options.source {
        cli::Source::Catalog => Arc::new(CatalogSource::start(&CatalogSourceOptions {
            catalog: options.catalog.clone(),
            loaded: opened.catalog.take(),
            config,
            control: CatalogOptions {
                profile: options.rate_profile.clone(),
                seed: options.seed,
                nr_cpus: options.cpus,
                max_blocked_readers: max_blocked_readers.max(1),
                ..CatalogOptions::default()
            },
        })?),
        cli::Source::Host(args) => {
            let tracefs = match instance_pid {
                // Sandboxed: the parent's tracefs is bind-mounted here.
                Some(_) => Some(PathBuf::from(sandbox::TRACEFS_IN_SANDBOX)),
                None => args.tracefs.clone(),
            };
            let host_options = HostOptions {
                tracefs,
                instance: args.instance.clone(),
                policy: args.policy.clone(),
                reclaim_stale: args.reclaim_stale,
                scope_pid: args.scope_pid,
                scope_tasks: opened.scope_tasks.take(),
                limits: ForwardLimits {
                    max_blocked_readers,
                    ..ForwardLimits::default()
                },
                instance_pid,
                loaded_policy: opened.policy.take(),
                shared_image: opened.shared_image.take(),
                snapshot_store: Some(args.snapshot_dir.clone()),
                ..HostOptions::default()
            };
            Arc::new(
                HostSource::start(&host_options, config)
                    .map_err(|e| format!("host source: {e}"))?,
            )
        }
    };
    log::info!("{}", source.describe());
    eventfsd::heap::give_back_free_pages();
    Ok(source)
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// The sandbox's parent: closes its copies of what the child serves, waits for the child, then
/// removes what only the host's namespaces can see.
fn supervise(child: sandbox::Child, opened: Opened) -> ExitCode {
    let (transport, tracefs) = opened.into_parent_part();
    // What only the child serves (the catalog, the policy, the image) goes, and with it the
    // heap pages start-up used: the parent only waits.
    eventfsd::heap::give_back_free_pages();
    log::debug!("sandboxed daemon is pid {}", child.pid());
    let status = child.wait().unwrap_or_else(|e| {
        log::error!("{e}");
        1
    });
    match transport {
        OpenTransport::Socket { listener, path } => {
            drop(listener);
            remove_socket(&path);
        }
        OpenTransport::Fd(listener) => drop(listener),
        OpenTransport::Mount { mounted, dir } => {
            mounted.close_without_unmount();
            fusedev::unmount(&dir);
        }
    }
    // Unmounts a tracefs the parent mounted itself.
    drop(tracefs);
    ExitCode::from(status)
}

fn serve(
    options: Options,
    mut opened: Opened,
    wait: MainWait,
    instance_pid: Option<u32>,
) -> Result<(), String> {
    let sandboxed = instance_pid.is_some();
    let source = start_source(&options, &mut opened, instance_pid)?;
    let tree = source.tree().clone();
    let stats = Arc::new(Stats::default());
    let weak = Arc::downgrade(&source);
    let _ = stats.source.set(Box::new(move || {
        weak.upgrade().map_or_else(Vec::new, |s| s.figures())
    }));
    let policy = if source.listings_are_frozen() {
        CachePolicy::frozen_listings()
    } else {
        CachePolicy::default()
    };
    let fs = EventFs::new(tree.clone(), source.control(), stats.clone(), policy)
        .read_only(options.read_only);
    // The main thread rewrites the stats file between its other wake-ups: no thread of its own.
    let pacer = opened.stats_file.as_ref().map(|file| {
        Arc::new(std::sync::Mutex::new(StatsPacer::new(
            file.clone(),
            stats.clone(),
            tree.clone(),
        )))
    });
    if let Some(file) = &opened.stats_file {
        file.write(&stats, &tree)
            .map_err(|e| format!("stats file {}: {e}", file.path().display()))?;
    }
    let tick = pacer.clone().map(|pacer| {
        move || {
            pacer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .tick()
        }
    });
    let period = tick.as_ref().map(|_| StatsPacer::PERIOD);
    let sleep = || -> Result<Woken, String> {
        let woken = wait.wait(period).map_err(|e| format!("main thread: {e}"))?;
        if let Some(tick) = &tick {
            tick();
        }
        Ok(woken)
    };
    // Every thread that exists now gets the filter too (TSYNC), and every later one inherits it.
    sandbox::seccomp::install(options.seccomp, sandboxed)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))?;

    let result = match opened.transport {
        OpenTransport::Mount { mounted, dir } => {
            let ended = wait.poke();
            let mount = mounted
                .serve(
                    Arc::new(Server::new(fs)),
                    stats.clone(),
                    options.thread_pool_size,
                    !sandboxed,
                    move || ended.poke(),
                )
                .map_err(|e| e.to_string())?;
            loop {
                match sleep()? {
                    Woken::Signal(sig) => {
                        log::info!("signal {sig}: unmounting {}", dir.display());
                        break;
                    }
                    _ if mount.finished() => {
                        log::info!("{} was unmounted", dir.display());
                        break;
                    }
                    _ => {}
                }
            }
            source.wake_readers();
            mount.stop();
            Ok(())
        }
        OpenTransport::Socket { .. } | OpenTransport::Fd(_) => {
            let (listener, socket_path) = match opened.transport {
                OpenTransport::Socket { listener, path } => (Listener::from(listener), Some(path)),
                OpenTransport::Fd(listener) => (listener, None),
                OpenTransport::Mount { .. } => unreachable!("handled above"),
            };
            // Served on this thread: a termination signal writes to the transport's own stop
            // request, which the serving loop polls along with its sockets.
            let shutdown = Shutdown::new().map_err(|e| format!("cannot create eventfd: {e}"))?;
            let forward = wait
                .signals_also_write(shutdown.as_raw_fd())
                .map_err(|e| format!("cannot handle signals: {e}"))?;
            // A signal that came before the forwarding (while the source started).
            if let Some(sig) = wait.seen().take() {
                log::info!("signal {sig}: shutting down");
                shutdown.trigger();
            }
            let readers = source.clone();
            let seen = wait.seen();
            let serve_options = ServeOptions {
                thread_pool_size: options.thread_pool_size,
                exit_on_disconnect: options.exit_on_disconnect,
                shutdown: Some(shutdown.clone()),
                metrics: Some(Arc::new(StatsHook(stats.clone()))),
                stats: stats.transport.clone(),
                on_shutdown: Some(Arc::new(move || {
                    if let Some(sig) = seen.take() {
                        log::info!("signal {sig}: shutting down");
                    }
                    readers.wake_readers();
                })),
                tick: tick.clone().map(|tick| {
                    (
                        StatsPacer::PERIOD,
                        Arc::new(tick) as Arc<dyn Fn() + Send + Sync>,
                    )
                }),
                ..ServeOptions::default()
            };
            let result = vhost_user::serve(Arc::new(fs), listener, serve_options);
            drop(forward);
            // A sandboxed daemon cannot see the socket's path: its parent removes it.
            if let (Some(path), false) = (&socket_path, sandboxed) {
                remove_socket(path);
            }
            result.map_err(|e| e.to_string())
        }
    };
    source.shutdown();
    if let Some(file) = &opened.stats_file {
        let _ = file.write(&stats, &tree);
    }
    result
}

/// Whether the daemon can confine itself without a supervising parent: nothing it made in the
/// host's namespaces has to be removed after it is gone ([`sandbox::enter_alone`]).
fn confines_alone(options: &Options, opened: &Opened) -> bool {
    let transport = match &opened.transport {
        // libvirt made the socket and removes it.
        OpenTransport::Fd(_) => true,
        // Served to one QEMU: the path goes once QEMU has connected ([`await_qemu`]).
        OpenTransport::Socket { .. } => options.exit_on_disconnect,
        // The mount point must be unmounted in the host's mount namespace.
        OpenTransport::Mount { .. } => false,
    };
    transport
        && !opened
            .tracefs
            .as_ref()
            .is_some_and(Tracefs::is_private_mount)
}

/// `--socket-path` with `--exit-on-disconnect`, before a sandbox without parent: waits for QEMU
/// to connect, then removes the socket file, which nobody else is to connect to and which the
/// confined daemon could no longer reach, and serves the listener like an inherited `--fd`.
/// `Ok(None)`: a termination signal came first (the file is removed too).
fn await_qemu(wait: &MainWait, transport: OpenTransport) -> Result<Option<OpenTransport>, String> {
    let OpenTransport::Socket { listener, path } = transport else {
        return Ok(Some(transport));
    };
    let waited = wait.wait_readable(std::os::fd::AsRawFd::as_raw_fd(&listener));
    remove_socket(&path);
    match waited.map_err(|e| format!("waiting for QEMU to connect: {e}"))? {
        Some(sig) => {
            log::info!("signal {sig} before QEMU connected: stopping");
            Ok(None)
        }
        None => Ok(Some(OpenTransport::Fd(Listener::from(listener)))),
    }
}

/// Opens what the daemon needs, enters the sandbox (unless `--sandbox none`) and serves.
/// Returns the exit code (the sandbox's parent passes on its child's).
fn run(options: Options) -> Result<ExitCode, String> {
    let wait = MainWait::new().map_err(|e| format!("cannot handle signals: {e}"))?;
    let mut opened = open(&options)?;
    let mut instance_pid = None;
    if options.sandbox == SandboxMode::Namespace {
        let plan = sandbox::Plan {
            tracefs: opened.tracefs.as_ref().map(|t| t.root.clone()),
        };
        if confines_alone(&options, &opened) {
            opened.transport = match await_qemu(&wait, opened.transport)? {
                Some(transport) => transport,
                None => return Ok(ExitCode::SUCCESS),
            };
            sandbox::enter_alone(&plan).map_err(|e| e.to_string())?;
            log::debug!("confined in place: nothing outside to clean up after the daemon");
            instance_pid = Some(std::process::id());
        } else {
            let parent_pid = std::process::id();
            match sandbox::enter(&plan) {
                Err(e) => {
                    if let OpenTransport::Socket { path, .. } = &opened.transport {
                        remove_socket(path);
                    }
                    return Err(e.to_string());
                }
                Ok(Side::Parent(child)) => return Ok(supervise(child, opened)),
                Ok(Side::Child) => {}
            }
            // The parent owns the tracefs mount; dropping this copy would unmount by a host
            // path.
            if let Some(tracefs) = opened.tracefs.take() {
                std::mem::forget(tracefs);
            }
            instance_pid = Some(parent_pid);
        }
        sandbox::caps::drop_all().map_err(|e| e.to_string())?;
    }
    serve(options, opened, wait, instance_pid).map(|()| ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let command = match cli::parse_in(std::env::args().skip(1), &cli::Environment::take()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("eventfsd: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Print(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::PrintCapabilities => {
            // vhost-user.rst: a JSON object naming the device type. libvirt reads `features`:
            // "separate-options" makes it pass --shared-dir, --cache ... rather than `-o`.
            // ("migrate-precopy" is not claimed: device state is not migrated.)
            let caps = serde_json::json!({ "type": "fs", "features": ["separate-options"] });
            println!(
                "{}",
                serde_json::to_string_pretty(&caps).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Serve(options) => {
            eventfsd::heap::one_arena();
            init_logger(options.log_level, options.syslog);
            for note in &options.compat_notes {
                log::info!("{note}");
            }
            let syslog = options.syslog;
            match run(*options) {
                Ok(code) => code,
                Err(e) => {
                    if syslog {
                        log::error!("{e}");
                    }
                    eprintln!("eventfsd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
