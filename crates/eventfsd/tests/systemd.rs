//! The daemon as systemd runs it (packaging/systemd/eventfsd@.service): socket activation
//! (`LISTEN_FDS`), stderr to the journal with priorities, Prometheus stats for
//! node_exporter's textfile collector, and one SIGTERM to stop.

// The shared guest driver; this file uses only its reads.
#[allow(dead_code)]
#[path = "sandbox/vhost_guest.rs"]
mod vhost_guest;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vhost_guest::Guest;

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

#[path = "common/stop_on_drop.rs"]
mod stop_on_drop;
use stop_on_drop::StopOnDrop;

const BIN: &str = env!("CARGO_BIN_EXE_eventfsd");

#[test]
fn socket_activated_daemon_serves_logs_to_the_journal_and_writes_prometheus_stats() {
    let dir = TempDir::new("systemd-activation");
    let socket = dir.0.join("vm7.sock");
    let stats = dir.0.join("vm7.prom");
    let listener = UnixListener::bind(&socket).unwrap();
    let listen_fd = listener.as_raw_fd();
    // As systemd does: the socket at fd 3, LISTEN_PID naming the daemon itself (so a shell
    // that execs it sets it), JOURNAL_STREAM when stderr is the journal.
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", BIN])
        .args([
            "--stats-file",
            stats.to_str().unwrap(),
            "--log-level",
            "info",
        ])
        .env("LISTEN_FDS", "1")
        .env("JOURNAL_STREAM", "8:12345")
        .stderr(Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set.
            let rc = match listen_fd {
                3 => libc::fcntl(3, libc::F_SETFD, 0),
                _ => libc::dup2(listen_fd, 3),
            };
            match rc {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
    let mut child = StopOnDrop(command.spawn().unwrap());
    drop(listener);

    let mut guest = Guest::connect(&socket);
    let id = guest.read_file("events/sched/sched_switch/id").unwrap();
    assert!(String::from_utf8_lossy(&id).trim().parse::<u32>().is_ok());
    drop(guest);

    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        // The writer may catch the connection before the lookups: wait for both.
        let lookups = text
            .lines()
            .find(|l| l.starts_with("eventfsd_requests_total{vm=\"vm7\",opcode=\"lookup\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        if text.contains("eventfsd_vhost_user_connections_total{vm=\"vm7\"} 1") && lookups >= 3.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "stats never showed the connection:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    // The sandboxed daemon still sees its own memory (its rollup is bound into its root).
    assert!(value("eventfsd_process_private_memory_bytes{vm=\"vm7\"}") > 0.0);
    assert!(value("eventfsd_requests_total{vm=\"vm7\",opcode=\"lookup\"}") >= 3.0);
    assert!(text.contains("# TYPE eventfsd_requests_total counter"));

    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    // sd-daemon(3) priorities: journalctl -p filters on them.
    // (Continuation lines of a multi-line message are the journal's next entries.)
    assert!(!log.lines().any(|l| l.starts_with("eventfsd:")), "{log}");
    assert!(
        log.contains("<6>eventfsd: info: signal 15: shutting down"),
        "{log}"
    );
}

#[test]
fn syslog_falls_back_to_stderr_without_a_system_logger() {
    // A private mount namespace hides /dev/log only where unshare works (root).
    if !test_prereq::is_root() {
        test_prereq::skip(
            "syslog_falls_back_to_stderr_without_a_system_logger",
            "needs root",
        );
        return;
    }
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg("mount -t tmpfs none /dev && mount -t tmpfs none /run; exec \"$0\" --syslog --fd 999")
        .arg(BIN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--syslog: cannot reach the system logger"),
        "{stderr}"
    );
    // It then reports the real problem on stderr.
    assert!(stderr.contains("--fd 999"), "{stderr}");
}

#[test]
fn syslog_messages_reach_the_system_logger() {
    let name = "syslog_messages_reach_the_system_logger";
    if !test_prereq::is_root() {
        test_prereq::skip(name, "needs root (a private /dev/log)");
        return;
    }
    let dir = TempDir::new("systemd-syslog");
    let log_socket = dir.0.join("log");
    let logger = std::os::unix::net::UnixDatagram::bind(&log_socket).unwrap();
    logger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Our socket as /dev/log, in a mount namespace of the daemon's own.
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(
            "mount -t tmpfs none /dev && touch /dev/log && mount --bind \"$1\" /dev/log && \
             exec \"$0\" --syslog --fd 999",
        )
        .arg(BIN)
        .arg(&log_socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let mut buf = [0u8; 4096];
    let n = logger.recv(&mut buf).expect("a syslog datagram");
    let message = String::from_utf8_lossy(&buf[..n]);
    // RFC 3164: <facility daemon (3) * 8 + severity err (3)>, then the tag with the pid.
    assert!(message.starts_with("<27>"), "{message}");
    assert!(message.contains("eventfsd["), "{message}");
    assert!(message.contains("--fd 999"), "{message}");
}
