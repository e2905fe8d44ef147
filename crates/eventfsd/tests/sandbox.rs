//! The sandbox of the daemon binary: the confined child's namespaces, capabilities, seccomp
//! mode and empty root; that it still serves both sources through it (so the allow-list covers
//! what they do); that a syscall outside the allow-list kills; the parent's clean-up.

#[path = "sandbox/vhost_guest.rs"]
mod vhost_guest;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use eventfsd::cli::SeccompMode;
use eventfsd::sandbox::seccomp;
use vhost_guest::Guest;

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_eventfsd");

/// The daemon's parent process; killed (its child then dies with it) if a test fails early.
struct Daemon {
    parent: std::process::Child,
}

/// Whether `pid` has installed its seccomp filter: the last step before it serves.
fn filtered(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| s.lines().any(|l| l == "Seccomp:\t2"))
}

impl Daemon {
    /// Starts the daemon and waits until it serves: its socket exists, and the process that
    /// serves (the confined child, or the daemon itself with `unconfined`) runs under its
    /// filter.
    fn start(command: &mut Command, socket: &Path, unconfined: bool) -> Daemon {
        Daemon::spawn_until(command, |d| {
            let server = if unconfined {
                Some(d.parent.id())
            } else {
                d.child()
            };
            socket.exists() && server.is_some_and(filtered)
        })
    }

    /// Starts `command` for one guest (`--exit-on-disconnect`) and waits for its socket: it
    /// confines itself only once a guest connects.
    fn one_guest(mut command: Command, socket: &Path) -> Daemon {
        command.arg("--exit-on-disconnect");
        Daemon::spawn_until(&mut command, |_| socket.exists())
    }

    /// Once a guest has connected to a [`Daemon::one_guest`]: waits until the daemon has
    /// confined itself, checks that it did so with no parent left, and returns its pid (the one
    /// spawned: setpriv execs it too).
    fn confined_alone(&self) -> u32 {
        let pid = self.parent.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !filtered(pid) {
            assert!(Instant::now() < deadline, "daemon never confined itself");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(self.child(), None, "a parent was left behind");
        pid
    }

    /// Spawns `command` and waits until `ready` says so.
    fn spawn_until(command: &mut Command, ready: impl Fn(&Daemon) -> bool) -> Daemon {
        let parent = command.stderr(Stdio::inherit()).spawn().unwrap();
        let mut daemon = Daemon { parent };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&daemon) {
            assert!(
                daemon.parent.try_wait().unwrap().is_none(),
                "daemon exited early"
            );
            assert!(Instant::now() < deadline, "daemon never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The confined child: the parent's only child.
    fn child(&self) -> Option<u32> {
        let pid = self.parent.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The exit status of a daemon that ends on its own (`--exit-on-disconnect`).
    fn ends_by_itself(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.parent.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon outlived its guest");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the parent; its exit status.
    fn stop(mut self) -> ExitStatus {
        // SAFETY: signalling the process we spawned.
        unsafe { libc::kill(self.parent.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.parent.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first, so that a host-source daemon removes its instance (tracefs instances
        // are global: a SIGKILLed daemon would leave one behind); SIGKILL if that hangs.
        if let Ok(None) = self.parent.try_wait() {
            // SAFETY: signalling the process we spawned.
            unsafe { libc::kill(self.parent.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.parent.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
    }
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn namespace(pid: &str, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
}

/// Everything the confined child can see of the file system from its root.
fn visible_tree(pid: u32) -> BTreeSet<String> {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut out = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            // The fd directory and tracefs have contents of their own; their names suffice.
            if entry.file_type().unwrap().is_dir() && rel != "proc/self/fd" && rel != "tracefs" {
                stack.push(path);
            }
            out.insert(rel);
        }
    }
    out
}

/// Asserts what every confined daemon shows: seccomp filter mode, no capabilities, its own
/// mount/pid/IPC namespaces, and a root with nothing of the host's in it. (The network is
/// closed by the allow-list, which has no `socket`: `a_forbidden_syscall_kills_the_process`.)
fn assert_confined(child: u32, expect_in_root: &[&str]) {
    assert_confined_in(child, expect_in_root, &["mnt", "pid", "ipc"]);
}

/// [`assert_confined`] for a daemon confined in the namespaces `own` (a daemon without a
/// parent keeps the host's pid namespace: the allow-list lets it signal only itself,
/// `tgkill_reaches_only_the_daemon_itself`).
fn assert_confined_in(child: u32, expect_in_root: &[&str], own: &[&str]) {
    assert_eq!(status_field(child, "Seccomp"), "2");
    assert_eq!(status_field(child, "CapEff"), "0000000000000000");
    assert_eq!(status_field(child, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(child, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(child, "NoNewPrivs"), "1");
    for &ns in own {
        assert_ne!(
            namespace(&child.to_string(), ns),
            namespace("self", ns),
            "{ns} namespace is the host's"
        );
    }
    // The daemon's own fds and memory rollup (for the stats file), nothing else of /proc.
    let mut want: BTreeSet<String> = [
        "proc",
        "proc/self",
        "proc/self/fd",
        "proc/self/smaps_rollup",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    want.extend(expect_in_root.iter().map(|s| s.to_string()));
    assert_eq!(visible_tree(child), want);
}

/// What a guest does with the catalog or host tree: walks, reads, control writes, an instance.
fn exercise(guest: &mut Guest) {
    let format = guest.read_file("events/sched/sched_switch/format").unwrap();
    assert!(format.starts_with(b"name: sched_switch\n"));
    guest
        .write_file("events/sched/sched_switch/enable", "1\n")
        .unwrap();
    assert_eq!(
        guest.read_file("events/sched/sched_switch/enable").unwrap(),
        b"1\n"
    );
    guest
        .write_file("events/sched/sched_switch/filter", "prev_pid != 0\n")
        .unwrap();
    guest
        .write_file("events/sched/sched_switch/trigger", "traceoff\n")
        .unwrap();
    guest
        .write_file("events/sched/sched_switch/trigger", "!traceoff\n")
        .unwrap();
    // A bad filter is refused with the kernel's errno, not a dead daemon.
    assert_eq!(
        guest.write_file("events/sched/sched_switch/filter", "nope ==\n"),
        Err(libc::EINVAL)
    );
    guest.write_file("tracing_on", "1\n").unwrap();
    guest.write_file("trace_marker", "hello\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(guest.read_file("trace").unwrap().starts_with(b"# tracer"));
    guest.read_file("per_cpu/cpu0/trace_pipe_raw").unwrap();
    guest.read_file("per_cpu/cpu0/stats").unwrap();
    guest.mkdir("instances", "sbx").unwrap();
    guest
        .write_file("instances/sbx/events/sched/enable", "1\n")
        .unwrap();
    guest
        .write_file("instances/sbx/events/sched/enable", "0\n")
        .unwrap();
    guest.rmdir("instances", "sbx").unwrap();
    guest.write_file("events/enable", "0\n").unwrap();
    assert_eq!(guest.walk("no/such/file"), Err(libc::ENOENT));
}

fn daemon_command(socket: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.args(["--socket-path", socket.to_str().unwrap(), "--cpus", "2"]);
    command
}

#[test]
fn catalog_daemon_is_confined_and_serves_through_the_filter() {
    let dir = TempDir::new("sandbox-catalog");
    let socket = dir.0.join("eventfsd.sock");
    let stats = dir.0.join("stats.json");
    let daemon = Daemon::start(
        daemon_command(&socket).args(["--stats-file", stats.to_str().unwrap()]),
        &socket,
        false,
    );
    let child = daemon.child().unwrap();
    assert_confined(child, &[]);
    // The socket is the owner's alone.
    let md = std::fs::metadata(&socket).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o600);

    // The default --seccomp kill is in force: had the daemon needed anything off the list, it
    // would be dead now.
    let mut guest = Guest::connect(&socket);
    exercise(&mut guest);
    assert!(Path::new(&format!("/proc/{child}")).exists(), "child died");
    // The stats file is rewritten from inside the sandbox through the directory's fd.
    std::thread::sleep(Duration::from_millis(700));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(json["requests"].as_u64().unwrap() > 10, "{json}");
    assert!(!dir.0.join("stats.json.tmp").exists());
    drop(guest);

    assert!(daemon.stop().success());
    assert!(
        !Path::new(&format!("/proc/{child}")).exists(),
        "child outlived its parent"
    );
    assert!(!socket.exists(), "the parent left the socket behind");
}

#[test]
fn one_guest_daemon_confines_itself_without_a_parent() {
    let dir = TempDir::new("sandbox-alone");
    let socket = dir.0.join("eventfsd.sock");
    let mut daemon = Daemon::one_guest(daemon_command(&socket), &socket);
    // Confined only once QEMU is there: until then it serves nothing.
    assert_eq!(status_field(daemon.parent.id(), "Seccomp"), "0");

    let mut guest = Guest::connect(&socket);
    let pid = daemon.confined_alone();
    assert_confined_in(pid, &[], &["mnt", "ipc"]);
    // Per guest: the main thread and vhost-user-backend's two (request handler, vring), plus
    // request workers only while requests keep them busy.
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|task| std::fs::read_to_string(task.path().join("comm")).unwrap())
        .map(|comm| comm.trim().to_string())
        .filter(|comm| !comm.starts_with("vfs-worker-"))
        .collect();
    threads.sort();
    assert_eq!(threads, ["eventfsd", "vfs-vhost-user", "vring_worker"]);
    // Nobody else is to connect, and the confined daemon could not remove it at exit.
    assert!(!socket.exists(), "socket left after QEMU connected");
    exercise(&mut guest);
    drop(guest);
    // QEMU gone: the daemon ends by itself.
    let status = daemon.ends_by_itself();
    assert!(status.success(), "{status}");
}

#[test]
fn one_guest_daemon_stopped_before_qemu_removes_its_socket() {
    let dir = TempDir::new("sandbox-alone-early");
    let socket = dir.0.join("eventfsd.sock");
    let daemon = Daemon::one_guest(daemon_command(&socket), &socket);
    assert!(daemon.stop().success());
    assert!(!socket.exists(), "socket left behind");
}

/// `tgkill(tgid, tid, 0)` at `tgid`, in a process under the filter built for its own pid.
fn tgkill_under_own_filter(target: fn() -> libc::pid_t) -> libc::c_int {
    let mut fds = [0; 2];
    // SAFETY: a valid array for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // The child cannot allocate after the fork: its program buffer is made before it.
    let empty = seccompiler::sock_filter {
        code: 0,
        jt: 0,
        jf: 0,
        k: 0,
    };
    let mut program = vec![empty; 4096];
    // SAFETY: the child only reads, makes raw syscalls and _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The length first, then the instructions: no EOF to wait for (other processes may
        // hold the write end).
        let mut length = 0usize;
        // SAFETY: reads into a local of the size given.
        let n = unsafe {
            libc::read(
                fds[0],
                (&mut length as *mut usize).cast(),
                std::mem::size_of::<usize>(),
            )
        };
        if n != std::mem::size_of::<usize>() as isize || length > program.len() {
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(102) };
        }
        let bytes = length * std::mem::size_of::<seccompiler::sock_filter>();
        let mut got = 0;
        while got < bytes {
            // SAFETY: reads into the preallocated buffer, within its length.
            let n = unsafe {
                libc::read(
                    fds[0],
                    program.as_mut_ptr().cast::<u8>().add(got).cast(),
                    bytes - got,
                )
            };
            if n <= 0 {
                // SAFETY: as above.
                unsafe { libc::_exit(103) };
            }
            got += n as usize;
        }
        let len = length;
        // SAFETY: plain prctl; then the filter, as the daemon installs it.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if seccompiler::apply_filter(&program[..len]).is_err() {
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(100) };
        }
        let tgid = target();
        // SAFETY: signal 0 only checks that the thread exists.
        unsafe { libc::syscall(libc::SYS_tgkill, tgid, tgid, 0) };
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let filter = seccomp::build_filter_for(SeccompMode::Kill, true, pid as u32)
        .unwrap()
        .unwrap();
    assert!(filter.len() <= program.len());
    let bytes = std::mem::size_of_val(filter.as_slice());
    let length = filter.len();
    // SAFETY: writes the length and the program's bytes from live buffers, then closes both
    // ends.
    unsafe {
        assert_eq!(
            libc::write(
                fds[1],
                (&length as *const usize).cast(),
                std::mem::size_of::<usize>()
            ),
            std::mem::size_of::<usize>() as isize
        );
        assert_eq!(
            libc::write(fds[1], filter.as_ptr().cast(), bytes),
            bytes as isize
        );
        libc::close(fds[1]);
        libc::close(fds[0]);
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

#[test]
fn tgkill_reaches_only_the_daemon_itself() {
    // SAFETY: getpid/getppid have no preconditions.
    let itself = tgkill_under_own_filter(|| unsafe { libc::getpid() });
    assert!(
        libc::WIFEXITED(itself) && libc::WEXITSTATUS(itself) == 0,
        "signalling itself: wait status {itself:#x}"
    );
    // Its parent (this test) stands for any other process of the host.
    let other = tgkill_under_own_filter(|| unsafe { libc::getppid() });
    assert!(
        libc::WIFSIGNALED(other) && libc::WTERMSIG(other) == libc::SIGSYS,
        "signalling another process: wait status {other:#x}"
    );
}

#[test]
fn unconfined_daemon_still_runs_under_the_filter() {
    let dir = TempDir::new("sandbox-none");
    let socket = dir.0.join("eventfsd.sock");
    let daemon = Daemon::start(
        daemon_command(&socket).args(["--sandbox", "none"]),
        &socket,
        true,
    );
    let pid = daemon.parent.id();
    assert_eq!(daemon.child(), None);
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(namespace(&pid.to_string(), "mnt"), namespace("self", "mnt"));
    let mut guest = Guest::connect(&socket);
    exercise(&mut guest);
    drop(guest);
    assert!(daemon.stop().success());
    assert!(!socket.exists());
}

#[test]
fn socket_group_gives_the_group_access() {
    if !test_prereq::is_root() {
        test_prereq::skip("socket_group_gives_the_group_access", "needs root (chown)");
        return;
    }
    let dir = TempDir::new("sandbox-group");
    let socket = dir.0.join("eventfsd.sock");
    let daemon = Daemon::start(
        daemon_command(&socket).args(["--socket-group", "65534"]),
        &socket,
        false,
    );
    let md = std::fs::metadata(&socket).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    assert_eq!(md.gid(), 65534);
    assert!(daemon.stop().success());
}

/// Runs `body` in a forked process with the daemon's filter for `mode` installed; returns how
/// that process ended.
fn with_filter(mode: SeccompMode, body: fn()) -> libc::c_int {
    // Built before the fork: after it, only async-signal-safe work (no allocation).
    let program = seccomp::build_filter(mode, true).unwrap().unwrap();
    // SAFETY: the child only makes raw syscalls and _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain prctl; then the filter, as the daemon installs it.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if seccompiler::apply_filter(&program).is_err() {
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(100) };
        }
        body();
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// An allowed call, then one the daemon must never make: an INET socket.
fn forbidden_socket() {
    // SAFETY: raw syscalls with no memory arguments.
    unsafe {
        if libc::syscall(libc::SYS_getpid) <= 0 {
            libc::_exit(101);
        }
        libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0);
    }
}

#[test]
fn a_forbidden_syscall_kills_the_process() {
    let status = with_filter(SeccompMode::Kill, forbidden_socket);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
        "wait status {status:#x}: not killed by SIGSYS"
    );
    // With `log`, the same call goes through (and is logged by the kernel).
    let status = with_filter(SeccompMode::Log, forbidden_socket);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "wait status {status:#x}"
    );
}

#[test]
fn host_source_runs_sandboxed_and_leaves_no_instance() {
    let name = "host_source_runs_sandboxed_and_leaves_no_instance";
    if !test_prereq::is_root() {
        test_prereq::skip(name, "needs root");
        return;
    }
    let Some(tracefs) = test_prereq::PrivateTracefs::mount(name) else {
        return;
    };
    let dir = TempDir::new("sandbox-host");
    let socket = dir.0.join("eventfsd.sock");
    let daemon = Daemon::start(
        daemon_command(&socket).args([
            "--source",
            "host",
            "--tracefs",
            tracefs.to_str().unwrap(),
            "--snapshot-dir",
            dir.0.join("snapshots").to_str().unwrap(),
        ]),
        &socket,
        false,
    );
    let child = daemon.child().unwrap();
    assert_confined(child, &["tracefs"]);
    // Named after the parent, whose pid means something outside the pid namespace, and made
    // on the guest's first open.
    let instance = tracefs.join(format!("instances/eventfsd-{}", daemon.parent.id()));
    assert!(
        !instance.exists(),
        "{} made before any open",
        instance.display()
    );

    let mut guest = Guest::connect(&socket);
    exercise(&mut guest);
    assert!(instance.is_dir(), "{} missing", instance.display());
    // Writes reach the daemon's instance of the host tracefs.
    guest
        .write_file("events/sched/sched_switch/filter", "prev_pid != 0\n")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(instance.join("events/sched/sched_switch/filter"))
            .unwrap()
            .trim(),
        "prev_pid != 0"
    );
    assert!(Path::new(&format!("/proc/{child}")).exists(), "child died");
    drop(guest);

    assert!(daemon.stop().success());
    assert!(!instance.exists(), "instance left behind");
    let guest_instance = tracefs.join(format!(
        "instances/{}.sbx",
        instance.file_name().unwrap().to_str().unwrap()
    ));
    assert!(!guest_instance.exists());
}

/// The daemon on `socket`, run as `nobody` through setpriv.
fn as_nobody(socket: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["--socket-path", socket.to_str().unwrap(), "--cpus", "2"]);
    command
}

/// Whether this test can run the daemon as `nobody` (root and setpriv), else says why not.
fn can_run_as_nobody(name: &str) -> bool {
    if !test_prereq::is_root() {
        test_prereq::skip(name, "needs root (to become nobody)");
        return false;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        test_prereq::skip(name, "needs setpriv (util-linux)");
        return false;
    }
    true
}

#[test]
fn one_guest_daemon_confines_itself_unprivileged() {
    let name = "one_guest_daemon_confines_itself_unprivileged";
    if !can_run_as_nobody(name) {
        return;
    }
    let dir = TempDir::new("sandbox-alone-nobody");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.0.join("eventfsd.sock");
    let mut daemon = Daemon::one_guest(as_nobody(&socket), &socket);
    let mut guest = Guest::connect(&socket);
    let pid = daemon.confined_alone();
    assert_eq!(
        status_field(pid, "Uid").split_whitespace().next(),
        Some("65534")
    );
    assert_confined_in(pid, &[], &["mnt", "ipc", "user"]);
    exercise(&mut guest);
    drop(guest);
    assert!(daemon.ends_by_itself().success());
    assert!(!socket.exists());
}

#[test]
fn catalog_daemon_runs_unprivileged() {
    let name = "catalog_daemon_runs_unprivileged";
    if !can_run_as_nobody(name) {
        return;
    }
    let dir = TempDir::new("sandbox-nobody");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.0.join("eventfsd.sock");
    let daemon = Daemon::start(&mut as_nobody(&socket), &socket, false);
    let child = daemon.child().unwrap();
    assert_eq!(
        status_field(child, "Uid").split_whitespace().next(),
        Some("65534")
    );
    assert_confined(child, &[]);
    assert_ne!(
        namespace(&child.to_string(), "user"),
        namespace("self", "user")
    );
    let md = std::fs::metadata(&socket).unwrap();
    assert_eq!((md.uid(), md.permissions().mode() & 0o777), (65534, 0o600));
    let mut guest = Guest::connect(&socket);
    exercise(&mut guest);
    drop(guest);
    assert!(daemon.stop().success());
    assert!(!socket.exists());
}
