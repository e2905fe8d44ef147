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

/// Parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
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
  --uid N, --gid N         owner and group of every node (default 0)
  --thread-pool-size N     request worker threads (default 4)
  --log-level LEVEL        error, warn, info, debug or trace (default info)
  --stats-file PATH        keep JSON counters in PATH (rewritten every 500 ms)
  --exit-on-disconnect     exit when QEMU disconnects (default: serve the next QEMU)
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
    let mut options = Options {
        transport: Transport::Fd(-1),
        catalog: None,
        uid: 0,
        gid: 0,
        thread_pool_size: 4,
        log_level: log::LevelFilter::Info,
        stats_file: None,
        exit_on_disconnect: false,
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
            other => return Err(format!("unknown argument {other:?}")),
        }
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
    }
}
