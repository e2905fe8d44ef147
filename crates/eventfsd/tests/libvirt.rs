//! The daemon as libvirt runs it: the exact command lines `qemuVirtioFSBuildCommandLine` builds
//! (libvirt 9's `-o` form and libvirt 10+'s separate options), on a listening socket libvirt
//! made and passes as `--fd=N`, with libvirt's locked pidfile descriptor inherited, stopped by
//! SIGTERM to its process group.

#[path = "sandbox/vhost_guest.rs"]
mod vhost_guest;

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vhost_guest::Guest;

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_eventfsd");
/// The descriptor number libvirt's log shows for the socket (any number must work).
const LIBVIRT_FD: RawFd = 43;
/// And the one its locked pidfile happens to get.
const PIDFILE_FD: RawFd = 44;

fn catalog_file() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eventfs-core/catalog/default.evcat"
    )
    .to_string()
}

/// A daemon started the way libvirt's virCommand starts it.
struct Spawned {
    child: Child,
    socket: PathBuf,
    pidfile: PathBuf,
}

/// Who holds a write lock on `path` (F_GETLK from this process), if anyone.
fn lock_holder(path: &Path) -> Option<i32> {
    let file = std::fs::OpenOptions::new().write(true).open(path).ok()?;
    // SAFETY: flock is plain data; F_GETLK fills it.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    // SAFETY: a valid fd and flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    assert_eq!(rc, 0, "F_GETLK: {}", std::io::Error::last_os_error());
    (lock.l_type != libc::F_UNLCK as i16).then_some(lock.l_pid)
}

impl Spawned {
    /// Binds and listens on the socket as libvirt does (qemuOpenChrChardevUNIXSocket), then
    /// starts eventfsd with `args` (where `{fd}` stands for the socket's number) in a new
    /// session, holding a locked pidfile descriptor, as virCommand's child does.
    fn start(dir: &Path, args: &[&str]) -> Spawned {
        let socket = dir.join("fs0-fs.sock");
        let pidfile = dir.join("1-guest-fs0-fs.pid");
        let listener = UnixListener::bind(&socket).unwrap();
        let listen_fd = listener.as_raw_fd();
        let pid_path = CString::new(pidfile.to_str().unwrap()).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{fd}", &LIBVIRT_FD.to_string()))
            .collect();
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // (dup2 onto itself would leave close-on-exec set: move it off first.)
                let moved = |fd: i32, to: i32| {
                    if fd == to {
                        libc::fcntl(fd, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(fd, to)
                    }
                };
                if libc::setsid() < 0 || moved(listen_fd, LIBVIRT_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::open(pid_path.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644);
                if fd < 0 || moved(fd, PIDFILE_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd != PIDFILE_FD {
                    libc::close(fd);
                }
                let mut lock: libc::flock = std::mem::zeroed();
                lock.l_type = libc::F_WRLCK as i16;
                lock.l_whence = libc::SEEK_SET as i16;
                if libc::fcntl(PIDFILE_FD, libc::F_SETLK, &lock) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(listener);
        Spawned {
            child,
            socket,
            pidfile,
        }
    }

    /// SIGTERM to the process group, as qemuVirtioFSStop does; the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id() as i32;
        assert_eq!(
            lock_holder(&self.pidfile),
            Some(pid),
            "libvirt decides whether to stop the daemon by its pidfile lock"
        );
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(lock_holder(&self.pidfile), None, "lock outlived the daemon");
        (status, stderr)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: our own process group (a test failed before stop()).
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Runs one libvirt command line against the catalog source and checks it serves.
fn serves_catalog(name: &str, args: &[&str]) -> String {
    let dir = TempDir::new(&format!("libvirt-{name}"));
    let daemon = Spawned::start(&dir.0, args);
    let mut guest = Guest::connect(&daemon.socket);
    let format = guest.read_file("events/sched/sched_switch/format").unwrap();
    assert!(String::from_utf8_lossy(&format).starts_with("name: sched_switch\n"));
    guest.write_file("tracing_on", "0\n").unwrap();
    assert_eq!(guest.read_file("tracing_on").unwrap(), b"0\n");
    drop(guest);
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{name}: {status:?}\n{stderr}");
    stderr
}

#[test]
fn libvirt_11_separate_options() {
    let catalog = catalog_file();
    // Example A of the domain XML in the README: cache, sandbox and a thread pool.
    let log = serves_catalog(
        "modern",
        &[
            "--fd={fd}",
            "--shared-dir",
            &catalog,
            "--cache",
            "always",
            "--sandbox",
            "namespace",
            "--thread-pool-size=16",
            "--rlimit-nofile=4096",
            "--log-level",
            "debug",
        ],
    );
    assert!(log.contains("--cache always ignored"), "{log}");
    // The installed copy of the embedded catalog is served from the binary.
    assert!(log.contains("default.evcat, the embedded one)"), "{log}");
    // qemu:///session without <idmap>: libvirt maps the user and its subordinate ids.
    let log = serves_catalog(
        "session",
        &[
            "--fd={fd}",
            "--shared-dir",
            &catalog,
            "--thread-pool-size=0",
            "--uid-map=:0:1000:1:",
            "--uid-map=:1:100000:65536:",
            "--gid-map=:0:1000:1:",
            "--gid-map=:1:100000:65536:",
        ],
    );
    assert!(log.contains("--uid-map/--gid-map ignored"), "{log}");
}

#[test]
fn libvirt_9_compat_options() {
    let catalog = catalog_file();
    let options =
        format!("source={catalog},cache=none,sandbox=namespace,no_xattr,no_flock,no_posix_lock");
    let log = serves_catalog(
        "legacy",
        &["--fd={fd}", "-o", &options, "--thread-pool-size=4", "-d"],
    );
    // -d is debug logging.
    assert!(log.contains("eventfsd: debug:"), "{log}");
    serves_catalog(
        "minimal",
        &["--fd={fd}", "-o", &format!("source={catalog}")],
    );
}

#[test]
fn libvirt_readonly_refuses_changes() {
    let dir = TempDir::new("libvirt-readonly");
    let catalog = catalog_file();
    let daemon = Spawned::start(
        &dir.0,
        &["--fd={fd}", "--shared-dir", &catalog, "--readonly"],
    );
    let mut guest = Guest::connect(&daemon.socket);
    assert!(guest.read_file("events/sched/enable").is_ok());
    assert_eq!(
        guest.write_file("events/sched/enable", "1\n"),
        Err(libc::EROFS)
    );
    assert_eq!(guest.mkdir("instances", "x"), Err(libc::EROFS));
    assert_eq!(guest.rmdir("instances", "x"), Err(libc::EROFS));
    assert_eq!(guest.read_file("events/sched/enable").unwrap(), b"0\n");
    drop(guest);
    assert!(daemon.stop().0.success());
}

#[test]
fn libvirt_tracefs_dir_means_the_host_source() {
    let name = "libvirt_tracefs_dir_means_the_host_source";
    if !test_prereq::is_root() {
        test_prereq::skip(name, "needs root");
        return;
    }
    let Some(tracefs) = test_prereq::PrivateTracefs::mount(name) else {
        return;
    };
    let dir = TempDir::new("libvirt-host");
    // (--snapshot-dir keeps the shared snapshot in the test's directory, not /run.)
    let store = dir.0.join("snapshots");
    let daemon = Spawned::start(
        &dir.0,
        &[
            "--fd={fd}",
            "--shared-dir",
            tracefs.to_str().unwrap(),
            "--snapshot-dir",
            store.to_str().unwrap(),
        ],
    );
    let mut guest = Guest::connect(&daemon.socket);
    let instance = tracefs.join(format!("instances/eventfsd-{}", daemon.child.id()));
    guest
        .write_file("events/sched/sched_switch/filter", "prev_pid != 0\n")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(instance.join("events/sched/sched_switch/filter"))
            .unwrap()
            .trim(),
        "prev_pid != 0"
    );
    drop(guest);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(!instance.exists(), "instance left behind");
}

#[test]
fn libvirt_options_without_meaning_are_refused_in_one_line() {
    let dir = TempDir::new("libvirt-refused");
    let catalog = catalog_file();
    let cases: [(Vec<String>, &str); 5] = [
        (
            vec!["--shared-dir".into(), catalog.clone(), "--xattr".into()],
            "no extended attributes",
        ),
        (
            vec!["-o".into(), format!("source={catalog},flock,posix_lock")],
            "does not forward file locks",
        ),
        (
            vec![
                "--shared-dir".into(),
                catalog.clone(),
                "--sandbox".into(),
                "chroot".into(),
            ],
            "confines itself with namespaces",
        ),
        (
            vec!["--shared-dir".into(), dir.0.to_str().unwrap().into()],
            "neither a tracefs mount",
        ),
        (
            vec!["-o".into(), format!("source={catalog},writeback")],
            "-o writeback",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .arg("--fd=3")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}
