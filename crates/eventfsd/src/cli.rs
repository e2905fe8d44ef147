//! Command line, following QEMU's vhost-user backend program conventions
//! (docs/interop/vhost-user.rst, "Backend program conventions").

use std::path::PathBuf;

/// Where the daemon serves the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// vhost-user socket at this path.
    SocketPath(PathBuf),
    /// Inherited, already listening vhost-user socket.
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
    /// JSON stats file kept up to date.
    pub stats_file: Option<PathBuf>,
    /// Exit when QEMU disconnects instead of waiting for the next connection.
    pub exit_on_disconnect: bool,
    /// Catalog source: records per second per enabled event.
    pub rate: u32,
    /// Catalog source: seed of the record generator.
    pub seed: u64,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve the tree.
    Serve(Options),
    /// `--print-capabilities`: the JSON QEMU expects.
    PrintCapabilities,
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Usage text.
pub const USAGE: &str = "\
usage: eventfsd (--socket-path PATH | --fd FD | --mount DIR) [options]
       eventfsd --print-capabilities

Serves a tracefs-shaped tree (the embedded kernel event catalog by default) to a QEMU guest
over vhost-user virtio-fs, or on the host through /dev/fuse.

  --socket-path PATH       listen for QEMU on this vhost-user socket
  --fd FD                  use this inherited, listening vhost-user socket
  --mount DIR              serve on the host at DIR through /dev/fuse (root)
  --catalog FILE           event catalog to serve (default: embedded snapshot)
  --source SOURCE          catalog (default) or host: a private instance of the host tracefs
  --tracefs DIR            host source: the host tracefs (default: from /proc/mounts, else mounted)
  --instance NAME          host source: instance name (default eventfsd-<pid>)
  --policy FILE            host source: TOML policy (default: all events, global files hidden)
  --reclaim-stale-instances  host source: remove eventfsd-<pid> instances of dead daemons
  --uid N, --gid N         owner and group of every node (default 0)
  --thread-pool-size N     request worker threads (default 4)
  --log-level LEVEL        error, warn, info, debug or trace (default info)
  --stats-file PATH        keep JSON counters in PATH (rewritten every 500 ms)
  --exit-on-disconnect     exit when QEMU disconnects (default: serve the next QEMU)
  --rate N                 synthetic records per second per enabled event (default 10)
  --seed N                 seed of the synthetic record generator (default 1)
  --print-capabilities     print the vhost-user backend capabilities and exit
  --version, --help";

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not a valid number"))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut transports = Vec::new();
    let mut source = None;
    let mut host = HostArgs::default();
    let mut host_only = Vec::new();
    let mut options = Options {
        source: Source::Catalog,
        transport: Transport::Fd(-1),
        catalog: None,
        uid: 0,
        gid: 0,
        thread_pool_size: 4,
        log_level: log::LevelFilter::Info,
        stats_file: None,
        exit_on_disconnect: false,
        rate: 10,
        seed: 1,
    };
    while let Some(arg) = args.next() {
        // QEMU passes `--flag=value` as often as `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().filter(|v| !v.starts_with("--")))
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--print-capabilities" => return Ok(Command::PrintCapabilities),
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--socket-path" => transports.push(Transport::SocketPath(value()?.into())),
            "--fd" => transports.push(Transport::Fd(number(&value()?, "--fd")?)),
            "--mount" => transports.push(Transport::Mount(value()?.into())),
            "--catalog" => options.catalog = Some(value()?.into()),
            "--uid" => options.uid = number(&value()?, "--uid")?,
            "--gid" => options.gid = number(&value()?, "--gid")?,
            "--thread-pool-size" => {
                options.thread_pool_size = number(&value()?, "--thread-pool-size")?;
                if !(1..=256).contains(&options.thread_pool_size) {
                    return Err("--thread-pool-size must be between 1 and 256".into());
                }
            }
            "--log-level" => {
                let v = value()?;
                options.log_level = v
                    .parse()
                    .map_err(|_| format!("--log-level: unknown level {v:?}"))?;
            }
            "--stats-file" => options.stats_file = Some(value()?.into()),
            "--exit-on-disconnect" => options.exit_on_disconnect = true,
            "--rate" => {
                options.rate = number(&value()?, "--rate")?;
                if options.rate > 100_000 {
                    return Err("--rate must be at most 100000 records/s per event".into());
                }
            }
            "--seed" => options.seed = number(&value()?, "--seed")?,
            "--source" => {
                source = Some(match value()?.as_str() {
                    "catalog" => false,
                    "host" => true,
                    other => {
                        return Err(format!(
                            "--source: unknown source {other:?} (catalog or host)"
                        ))
                    }
                })
            }
            "--tracefs" => {
                host.tracefs = Some(value()?.into());
                host_only.push(flag.clone());
            }
            "--instance" => {
                host.instance = Some(value()?);
                host_only.push(flag.clone());
            }
            "--policy" => {
                host.policy = Some(value()?.into());
                host_only.push(flag.clone());
            }
            "--reclaim-stale-instances" => {
                host.reclaim_stale = true;
                host_only.push(flag.clone());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if source == Some(true) {
        if options.catalog.is_some() {
            return Err("--catalog cannot be used with --source host".into());
        }
        options.source = Source::Host(host);
    } else if let Some(flag) = host_only.first() {
        return Err(format!("{flag} needs --source host"));
    }
    match transports.len() {
        0 => Err("one of --socket-path, --fd or --mount is required".into()),
        1 => {
            options.transport = transports.remove(0);
            Ok(Command::Serve(options))
        }
        _ => Err("--socket-path, --fd and --mount are mutually exclusive".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
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
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(args("")).unwrap_err().contains("required"));
        assert!(parse(args("--fd 3 --mount /x"))
            .unwrap_err()
            .contains("exclusive"));
        assert!(parse(args("--fd x"))
            .unwrap_err()
            .contains("not a valid number"));
        assert!(parse(args("--socket-path"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(args("--bogus")).unwrap_err().contains("unknown"));
        assert!(parse(args("--fd 3 --thread-pool-size 0")).is_err());
        assert!(parse(args("--fd 3 --policy p.toml"))
            .unwrap_err()
            .contains("needs --source host"));
        assert!(parse(args("--fd 3 --source host --catalog x")).is_err());
        assert!(parse(args("--fd 3 --source nope")).is_err());
    }

    #[test]
    fn parses_host_source() {
        let Command::Serve(o) = parse(args(
            "--mount /m --source host --tracefs /t --instance i --policy p --reclaim-stale-instances",
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
            })
        );
    }
}
