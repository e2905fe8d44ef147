//! The daemon binary: capabilities, one-line errors, clean shutdown on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "common/stop_on_drop.rs"]
mod stop_on_drop;
use stop_on_drop::StopOnDrop;

const BIN: &str = env!("CARGO_BIN_EXE_eventfsd");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eventfsd-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "daemon exited early");
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_and_wait(child: &mut Child, signal: i32) -> std::process::ExitStatus {
    // SAFETY: sending a signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not exit on signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prints_capabilities_for_qemu() {
    let out = run(&["--print-capabilities"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"type\": \"fs\""), "{text}");
}

#[test]
fn errors_are_one_clear_line() {
    let out = run(&["--socket-path", "/nonexistent-dir/x.sock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent-dir") && stderr(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );

    let dir = temp_dir("errors");
    let bad = dir.join("bad.evcat");
    std::fs::write(&bad, b"EVFSCAT\0not really").unwrap();
    let out = run(&[
        "--socket-path",
        dir.join("s.sock").to_str().unwrap(),
        "--catalog",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad.evcat") && stderr(&out).contains("truncated"),
        "{}",
        stderr(&out)
    );

    let out = run(&["--mount", dir.join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("mount point") && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );

    let out = run(&["--socket-path"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a value is required"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_and_sigint_remove_the_socket_and_a_second_daemon_is_refused() {
    let dir = temp_dir("signals");
    let socket = dir.join("eventfsd.sock");
    let stats = dir.join("stats.json");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child = StopOnDrop(
            Command::new(BIN)
                .args([
                    "--socket-path",
                    socket.to_str().unwrap(),
                    "--stats-file",
                    stats.to_str().unwrap(),
                ])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(&socket, &mut child);
        // The socket is bound before the sandbox; the stats file comes once the source runs.
        wait_for(&stats, &mut child);
        if signal == libc::SIGTERM {
            let second = run(&["--socket-path", socket.to_str().unwrap()]);
            assert_eq!(second.status.code(), Some(1));
            assert!(stderr(&second).contains("in use"), "{}", stderr(&second));
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(json["materialised_nodes"], 0, "{json}");
        assert!(signal_and_wait(&mut child, signal).success());
        assert!(!socket.exists(), "socket left behind after signal {signal}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mount_serves_and_unmounts_on_sigterm() {
    if !test_prereq::root_and_fuse("mount_serves_and_unmounts_on_sigterm") {
        return;
    }
    let dir = temp_dir("mount");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut child = StopOnDrop(
        Command::new(BIN)
            .args(["--mount", mnt.to_str().unwrap(), "--log-level", "warn"])
            .spawn()
            .unwrap(),
    );
    let format = mnt.join("events/sched/sched_switch/format");
    wait_for(&format, &mut child);
    assert!(std::fs::read_to_string(&format)
        .unwrap()
        .starts_with("name: sched_switch\n"));
    assert!(signal_and_wait(&mut child, libc::SIGTERM).success());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()), "still mounted");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// One thread waits for the mount's requests until a read may block: a guest that only walks
/// the tree costs one worker, and a reader blocked in `trace_pipe` still leaves the other
/// requests a worker. (No helper threads: signals and the stats file are the main thread's.)
#[test]
fn mount_workers_grow_only_while_reads_may_block() {
    if !test_prereq::root_and_fuse("mount_workers_grow_only_while_reads_may_block") {
        return;
    }
    let dir = temp_dir("workers");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let stats = dir.join("stats.json");
    let mut child = StopOnDrop(
        Command::new(BIN)
            .args(["--mount", mnt.to_str().unwrap(), "--sandbox", "none"])
            .args([
                "--stats-file",
                stats.to_str().unwrap(),
                "--log-level",
                "warn",
            ])
            .spawn()
            .unwrap(),
    );
    wait_for(&mnt.join("events/sched/enable"), &mut child);
    let walked = Command::new("find").arg(&mnt).output().unwrap();
    assert!(walked.status.success());
    assert!(walked.stdout.split(|&b| b == b'\n').count() > 10_000);
    assert_eq!(thread_names(child.id()), ["eventfsd", "fuse-0"]);
    let mut reader = Command::new("cat")
        .arg(mnt.join("trace_pipe"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The blocked read left a worker waiting: a lookup and a read are still answered.
    let format = std::fs::read_to_string(mnt.join("events/sched/sched_wakeup/format")).unwrap();
    assert!(format.starts_with("name: sched_wakeup\n"));
    let threads = thread_names(child.id());
    assert!(
        threads.len() >= 3 && threads.len() <= 5,
        "main thread and up to --thread-pool-size (4) workers: {threads:?}"
    );
    // The daemon first: a FUSE read already handed to it ends only when it answers.
    assert!(signal_and_wait(&mut child, libc::SIGTERM).success());
    let _ = reader.kill();
    let _ = reader.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `systemctl stop` and libvirt expect one SIGTERM to end the daemon, however its mount is
/// used: a shell with its working directory in it, a reader blocked in `trace_pipe`, and a
/// copy of the mount in another mount namespace.
#[test]
fn mount_stops_on_one_sigterm_while_busy() {
    let name = "mount_stops_on_one_sigterm_while_busy";
    if !test_prereq::root_and_fuse(name) {
        return;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        test_prereq::skip(name, "needs unshare (util-linux)");
        return;
    }
    for sandbox in ["namespace", "none"] {
        let dir = temp_dir(&format!("busy-{sandbox}"));
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut child = StopOnDrop(
            Command::new(BIN)
                .args(["--mount", mnt.to_str().unwrap(), "--sandbox", sandbox])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        wait_for(&mnt.join("events/sched/enable"), &mut child);
        let events = mnt.join("events");
        let mut users = vec![
            // Holds the mount busy by its working directory, reading nothing.
            Command::new("sleep")
                .arg("60")
                .current_dir(&events)
                .spawn()
                .unwrap(),
            // A blocked reader in our namespace.
            Command::new("cat")
                .arg(mnt.join("trace_pipe"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
            // A copy of the mount in another mount namespace, with its own blocked reader.
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "cat"])
                .arg(mnt.join("trace_pipe"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ];
        std::thread::sleep(Duration::from_millis(300));
        let status = signal_and_wait(&mut child, libc::SIGTERM);
        let mut log = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        for user in &mut users {
            let _ = user.kill();
            let _ = user.wait();
        }
        assert!(status.success(), "{sandbox}: {status:?}\n{log}");
        // Either the users had already failed (the connection ended) or it was busy.
        assert!(
            log.contains("detached lazily")
                || log.contains(&format!("unmounted {}", mnt.display())),
            "{sandbox}: {log}"
        );
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        assert!(
            !mounts.contains(mnt.to_str().unwrap()),
            "{sandbox}: still mounted"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn readme_shows_the_current_help() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // The README shows the help without its first line (the description) and blank line.
    let options = help.split_once("\n\n").map_or("", |(_, rest)| rest).trim();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split_once("`eventfsd --help`:\n\n```\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block.trim())
        .expect("README has an `eventfsd --help` block");
    assert_eq!(block, options, "README's option list is out of date");
}

/// The README's benchmark blocks are written by scripts/bench.sh; committed empty, the README
/// would promise figures it does not show.
#[test]
fn readme_benchmark_blocks_are_filled() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for name in ["footprint", "summary"] {
        let start = format!("<!-- bench:{name} -->");
        let end = format!("<!-- /bench:{name} -->");
        let block = readme
            .split_once(&start)
            .and_then(|(_, rest)| rest.split_once(&end))
            .map(|(block, _)| block.trim())
            .unwrap_or_else(|| panic!("README has no {start} block"));
        assert!(
            block.lines().count() >= 3 && block.contains("scripts/bench.sh"),
            "README's {name} block is empty: run scripts/bench.sh"
        );
    }
}
