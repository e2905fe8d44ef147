//! eventfsd: serves a tracefs/eventfs-shaped tree to QEMU guests over vhost-user virtio-fs, or on
//! the host through /dev/fuse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fuse_backend_rs::api::server::Server;

use eventfs_core::catalog;
use eventfs_core::control::{CatalogControl, CatalogOptions, ControlFiles};
use eventfs_core::tree::Image;
use eventfs_core::{Tree, TreeConfig};

use eventfsd::cli::{self, Command, Options, Source, Transport};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::fusedev::FuseMount;
use eventfsd::host::{ForwardLimits, HostOptions, HostSource};
use eventfsd::stats::{spawn_stats_writer, write_stats_file, Stats, StatsHook};
use eventfsd::vhost_user::{self, ServeOptions, Shutdown};

/// Logs to stderr as `eventfsd: LEVEL: message`, which keeps journald and test logs readable.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "eventfsd: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Blocks SIGINT/SIGTERM in this thread (and every thread it spawns afterwards) so that they
/// are only ever consumed by [`wait_for_signal`].
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits up to `timeout` for SIGINT/SIGTERM; returns the signal number if one arrived.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `set` is a valid signal set; a null siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

fn load_tree(options: &Options) -> Result<Tree, String> {
    let config = TreeConfig {
        uid: options.uid,
        gid: options.gid,
    };
    match &options.catalog {
        None => Ok(Tree::embedded(config)),
        Some(path) => {
            let bytes = catalog::load_file(path).map_err(|e| e.to_string())?;
            Tree::from_image(Image::Owned(bytes.into()), config)
                .map_err(|e| format!("catalog {}: {e}", path.display()))
        }
    }
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

fn serve(options: Options) -> Result<(), String> {
    let signals = block_termination_signals();
    // The host source owns a tracefs instance: it lives until the end of this function, and
    // dropping it (also on an early error return) removes the instance.
    let mut host: Option<HostSource> = None;
    let mut catalog: Option<Arc<CatalogControl>> = None;
    let (tree, control): (Arc<Tree>, Arc<dyn ControlFiles>) = match &options.source {
        Source::Catalog => {
            let tree = Arc::new(load_tree(&options)?);
            let (systems, events, dirs, files) = tree.counts();
            log::info!(
                "catalog: {systems} systems, {events} events, {dirs} directories, {files} files ({})",
                options
                    .catalog
                    .as_deref()
                    .map_or_else(|| "embedded".to_string(), |p| p.display().to_string())
            );
            let control = Arc::new(CatalogControl::with_options(CatalogOptions {
                rate: options.rate,
                seed: options.seed,
                // Waiting trace_pipe readers must leave a worker free for other requests.
                max_blocked_readers: options.thread_pool_size.saturating_sub(1).max(1),
                ..CatalogOptions::default()
            }));
            control.start_recording(&tree);
            catalog = Some(control.clone());
            (tree, control)
        }
        Source::Host(args) => {
            let host_options = HostOptions {
                tracefs: args.tracefs.clone(),
                instance: args.instance.clone(),
                policy: args.policy.clone(),
                reclaim_stale: args.reclaim_stale,
                limits: ForwardLimits {
                    // Waiting trace_pipe readers must leave a worker free for other requests.
                    max_blocked_readers: options.thread_pool_size.saturating_sub(1),
                    ..ForwardLimits::default()
                },
                ..HostOptions::default()
            };
            let config = TreeConfig {
                uid: options.uid,
                gid: options.gid,
            };
            let source = HostSource::start(&host_options, config)
                .map_err(|e| format!("host source: {e}"))?;
            let tree = source.tree();
            let (systems, events, dirs, files) = tree.counts();
            log::info!(
                "host instance {}: {systems} systems, {events} events, {dirs} directories, {files} files",
                source
                    .instance_dir()
                    .map_or_else(String::new, |d| d.display().to_string())
            );
            let control = source.control();
            host = Some(source);
            (tree, control)
        }
    };
    let wake_host_readers = |host: &Option<HostSource>| {
        if let Some(h) = host {
            h.wake_readers();
        }
    };
    let stats = Arc::new(Stats::default());
    if let Some(control) = catalog {
        let control = Arc::downgrade(&control);
        let _ = stats.source.set(Box::new(move || {
            let (records, filtered, fallbacks) = control
                .upgrade()
                .map_or((0, 0, 0), |c| c.data_plane_counters());
            vec![
                ("records", records),
                ("records_filtered", filtered),
                ("render_fallbacks", fallbacks),
            ]
        }));
    }
    // The catalog source's listings change only through the guest's own mkdir/rmdir; the host
    // source's rescan adds and removes events behind the guest's back.
    let policy = match &options.source {
        Source::Catalog => CachePolicy::frozen_listings(),
        _ => CachePolicy::default(),
    };
    let fs = EventFs::new(tree.clone(), control, stats.clone(), policy);
    if let Some(path) = &options.stats_file {
        write_stats_file(path, &stats, &tree)
            .map_err(|e| format!("stats file {}: {e}", path.display()))?;
        spawn_stats_writer(
            path.clone(),
            stats.clone(),
            tree.clone(),
            Duration::from_millis(500),
        );
    }
    let final_stats = |stats: &Stats| {
        if let Some(path) = &options.stats_file {
            let _ = write_stats_file(path, stats, &tree);
        }
    };

    match &options.transport {
        Transport::Mount(dir) => {
            let server = Arc::new(Server::new(fs));
            let mount = FuseMount::start(server, stats.clone(), dir, options.thread_pool_size)
                .map_err(|e| e.to_string())?;
            loop {
                if let Some(sig) = wait_for_signal(&signals, Duration::from_millis(200)) {
                    log::info!("signal {sig}: unmounting {}", dir.display());
                    wake_host_readers(&host);
                    break;
                }
                if mount.finished() {
                    log::info!("{} was unmounted", dir.display());
                    break;
                }
            }
            wake_host_readers(&host);
            mount.stop();
            if let Some(mut h) = host.take() {
                h.shutdown();
            }
            final_stats(&stats);
            Ok(())
        }
        Transport::SocketPath(_) | Transport::Fd(_) => {
            let (listener, socket_path): (_, Option<PathBuf>) = match &options.transport {
                Transport::SocketPath(path) => (
                    vhost_user::listener_from_path(path).map_err(|e| e.to_string())?,
                    Some(path.clone()),
                ),
                Transport::Fd(fd) => (
                    vhost_user::listener_from_fd(*fd).map_err(|e| e.to_string())?,
                    None,
                ),
                Transport::Mount(_) => unreachable!("handled above"),
            };
            if let Some(path) = &socket_path {
                log::info!("listening on {}", path.display());
            }
            let shutdown = Shutdown::new().map_err(|e| format!("cannot create eventfd: {e}"))?;
            let serve_options = ServeOptions {
                thread_pool_size: options.thread_pool_size,
                exit_on_disconnect: options.exit_on_disconnect,
                shutdown: Some(shutdown.clone()),
                metrics: Some(Arc::new(StatsHook(stats.clone()))),
                stats: stats.transport.clone(),
                ..ServeOptions::default()
            };
            let fs = Arc::new(fs);
            let server = std::thread::Builder::new()
                .name("vhost-user".into())
                .spawn(move || vhost_user::serve(fs, listener, serve_options))
                .map_err(|e| format!("cannot start the server thread: {e}"))?;
            let result = loop {
                if let Some(sig) = wait_for_signal(&signals, Duration::from_millis(200)) {
                    log::info!("signal {sig}: shutting down");
                    wake_host_readers(&host);
                    shutdown.trigger();
                }
                if server.is_finished() {
                    break server
                        .join()
                        .map_err(|_| "the server thread panicked".to_string())?;
                }
            };
            if let Some(path) = &socket_path {
                remove_socket(path);
            }
            if let Some(mut h) = host.take() {
                h.shutdown();
            }
            final_stats(&stats);
            result.map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("eventfsd: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("eventfsd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::PrintCapabilities => {
            // vhost-user.rst: a JSON object naming the device type.
            println!("{{\n  \"type\": \"fs\"\n}}");
            ExitCode::SUCCESS
        }
        Command::Serve(options) => {
            log::set_max_level(options.log_level);
            let _ = log::set_logger(&LOGGER);
            match serve(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("eventfsd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
