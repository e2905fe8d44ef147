//! eventfsd: serves a tracefs/eventfs-shaped tree to QEMU guests over vhost-user virtio-fs, or on
//! the host through /dev/fuse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use fuse_backend_rs::api::server::Server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use eventfs_core::TreeConfig;
use eventfsd::cli::{self, Command, Options, Transport};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::source::catalog::{CatalogOptions, CatalogSource, CatalogSourceOptions};
use eventfsd::source::host::{ForwardLimits, HostOptions, HostSource};
use eventfsd::source::Source;
use eventfsd::stats::{spawn_stats_writer, write_stats_file, Stats, StatsHook};
use eventfsd::transport::fusedev::FuseMount;
use eventfsd::transport::vhost_user::{self, ServeOptions, Shutdown};

/// How often the main thread checks whether the transport ended by itself.
const POLL: Duration = Duration::from_millis(200);

/// Logs to stderr as `eventfsd: LEVEL: message`, which keeps journald and test logs readable.
fn init_logger(level: log::LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(
                buf,
                "eventfsd: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
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

/// SIGINT and SIGTERM, delivered as messages to the main thread.
fn termination_signals() -> Result<Receiver<i32>, String> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(rx)
}

/// Starts the chosen source: the only place that knows which one runs.
fn start_source(options: &Options) -> Result<Arc<dyn Source>, String> {
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
            config,
            control: CatalogOptions {
                rate: options.rate,
                seed: options.seed,
                nr_cpus: options.cpus,
                max_blocked_readers: max_blocked_readers.max(1),
                ..CatalogOptions::default()
            },
        })?),
        cli::Source::Host(args) => {
            let host_options = HostOptions {
                tracefs: args.tracefs.clone(),
                instance: args.instance.clone(),
                policy: args.policy.clone(),
                reclaim_stale: args.reclaim_stale,
                scope_pid: args.scope_pid,
                limits: ForwardLimits {
                    max_blocked_readers,
                    ..ForwardLimits::default()
                },
                ..HostOptions::default()
            };
            Arc::new(
                HostSource::start(&host_options, config)
                    .map_err(|e| format!("host source: {e}"))?,
            )
        }
    };
    log::info!("{}", source.describe());
    Ok(source)
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

fn serve(options: Options) -> Result<(), String> {
    let signals = termination_signals()?;
    let source = start_source(&options)?;
    let tree = source.tree().clone();
    let stats = Arc::new(Stats::default());
    let weak = Arc::downgrade(&source);
    let _ = stats.source.set(Box::new(move || {
        weak.upgrade().map_or_else(Vec::new, |s| s.counters())
    }));
    let policy = if source.listings_are_frozen() {
        CachePolicy::frozen_listings()
    } else {
        CachePolicy::default()
    };
    let fs = EventFs::new(tree.clone(), source.control(), stats.clone(), policy);
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

    let result = match &options.transport {
        Transport::Mount(dir) => {
            let mount = FuseMount::start(
                Arc::new(Server::new(fs)),
                stats.clone(),
                dir,
                options.thread_pool_size,
            )
            .map_err(|e| e.to_string())?;
            loop {
                match signals.recv_timeout(POLL) {
                    Ok(sig) => {
                        log::info!("signal {sig}: unmounting {}", dir.display());
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) if !mount.finished() => {}
                    Err(_) => {
                        log::info!("{} was unmounted", dir.display());
                        break;
                    }
                }
            }
            source.wake_readers();
            mount.stop();
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
                if let Ok(sig) = signals.recv_timeout(POLL) {
                    log::info!("signal {sig}: shutting down");
                    source.wake_readers();
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
            result.map_err(|e| e.to_string())
        }
    };
    source.shutdown();
    if let Some(path) = &options.stats_file {
        let _ = write_stats_file(path, &stats, &tree);
    }
    result
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
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
            // vhost-user.rst: a JSON object naming the device type.
            let caps = serde_json::json!({ "type": "fs" });
            println!(
                "{}",
                serde_json::to_string_pretty(&caps).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Serve(options) => {
            init_logger(options.log_level);
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
