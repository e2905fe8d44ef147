//! The command lines management tools build for a virtio-fs daemon, as libvirt builds them for
//! virtiofsd (`qemuVirtioFSBuildCommandLine`):
//!
//! * libvirt 9 (and any libvirt for a binary without the `separate-options` capability):
//!   `--fd=N -o source=DIR[,cache=none|always][,sandbox=M][,xattr|,no_xattr][,flock|,no_flock]
//!   [,posix_lock|,no_posix_lock] [--thread-pool-size=N] [-d]`, with commas in DIR doubled;
//! * libvirt 10 and later, for a binary that prints `separate-options` (eventfsd does):
//!   `--fd=N --shared-dir DIR [--cache never|always] [--sandbox M] [--xattr]
//!   [--thread-pool-size=N] [--rlimit-nofile=N] [--log-level debug] [--uid-map=:a:b:c:]...
//!   [--gid-map=...]... [--readonly]`.
//!
//! [`translate_legacy`] rewrites the first form into the second; the clap definition then reads
//! the second. [`resolve_shared_dir`] says which source a shared directory means.

use std::path::{Path, PathBuf};

/// What `--shared-dir` / `-o source=` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedDir {
    /// A tracefs mount: the host source, with this tracefs.
    Tracefs(PathBuf),
    /// A regular file: a catalog for the catalog source.
    Catalog(PathBuf),
}

/// statfs(2)'s `f_type` of tracefs (include/uapi/linux/magic.h).
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// Which source `path` means: a tracefs mount is the host source, a regular file a catalog.
pub fn resolve_shared_dir(path: &Path) -> Result<SharedDir, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("--shared-dir {shown}: {e}"))?;
    if meta.is_file() {
        return Ok(SharedDir::Catalog(path.to_owned()));
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("--shared-dir {shown}: a NUL in the path"))?;
    // SAFETY: statfs fills the zeroed buffer we own; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("--shared-dir {shown}: {e}"));
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    if st.f_type as i64 == TRACEFS_MAGIC {
        Ok(SharedDir::Tracefs(path.to_owned()))
    } else {
        Err(format!(
            "--shared-dir {shown}: neither a tracefs mount (host source) nor a catalog file \
             (catalog source)"
        ))
    }
}

/// Splits a `-o` list on commas, reading `,,` as a comma (libvirt doubles commas in paths).
fn split_options(list: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                items.last_mut().expect("never empty").push(',');
            }
            ',' => items.push(String::new()),
            c => items.last_mut().expect("never empty").push(c),
        }
    }
    items
}

/// The separate options one `-o` item stands for.
fn legacy_item(item: &str) -> Result<Vec<String>, String> {
    let owned = |args: &[&str]| Ok(args.iter().map(|a| a.to_string()).collect());
    let (key, value) = match item.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (item, None),
    };
    match (key, value) {
        ("source", Some(dir)) => Ok(vec!["--shared-dir".into(), dir.into()]),
        // virtiofsd's legacy name for "never".
        ("cache", Some("none")) => owned(&["--cache", "never"]),
        ("cache", Some(mode)) => Ok(vec!["--cache".into(), mode.into()]),
        ("sandbox", Some(mode)) => Ok(vec!["--sandbox".into(), mode.into()]),
        ("loglevel", Some("err")) => owned(&["--log-level", "error"]),
        ("loglevel", Some(level)) => Ok(vec!["--log-level".into(), level.into()]),
        ("xattr", None) => owned(&["--xattr"]),
        // What eventfsd does anyway: no extended attributes, no locks forwarded to the host.
        ("no_xattr" | "no_flock" | "no_posix_lock", None) => Ok(Vec::new()),
        ("flock" | "posix_lock", None) => Err(format!(
            "-o {key}: eventfsd does not forward file locks to the host (the guest's own \
             locking applies); leave <lock> out of the domain XML"
        )),
        ("", None) => Ok(Vec::new()),
        _ => Err(format!("-o {item}: not an option eventfsd knows")),
    }
}

/// Rewrites virtiofsd's legacy options: `-o LIST` (or `-oLIST`) into separate options, `-d`
/// into `--log-level debug`, and drops `-f` (eventfsd never daemonizes). Everything after `--`
/// is left alone.
pub fn translate_legacy(args: Vec<String>) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let list = match arg.as_str() {
            "--" => {
                out.push(arg);
                out.extend(args.by_ref());
                break;
            }
            "-d" => {
                out.extend(["--log-level".to_string(), "debug".to_string()]);
                continue;
            }
            "-f" => continue,
            "-o" => args.next().ok_or("-o needs a value (see --help)")?,
            other => match other.strip_prefix("-o") {
                Some(list) => list.to_string(),
                None => {
                    out.push(arg);
                    continue;
                }
            },
        };
        for item in split_options(&list) {
            out.extend(legacy_item(&item)?);
        }
    }
    Ok(out)
}

/// Checks one `--uid-map`/`--gid-map` value, `:namespace_start:host_start:count:`.
pub fn check_id_map(value: &str) -> Result<String, String> {
    let fields: Vec<&str> = value.split(':').collect();
    let numbers = match fields.as_slice() {
        ["", a, b, c, ""] => [a, b, c],
        _ => return Err(format!("{value:?} is not :start:host_start:count:")),
    };
    for n in numbers {
        n.parse::<u32>()
            .map_err(|_| format!("{value:?}: {n:?} is not a number"))?;
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn legacy_options_become_separate_ones() {
        assert_eq!(
            translate_legacy(words(
                "--fd=43 -o source=/srv/a,,b,cache=none,sandbox=namespace,no_xattr,no_flock,\
                 no_posix_lock --thread-pool-size=4 -d -f"
            ))
            .unwrap(),
            words(
                "--fd=43 --shared-dir /srv/a,b --cache never --sandbox namespace \
                 --thread-pool-size=4 --log-level debug"
            )
        );
        assert_eq!(
            translate_legacy(words("-osource=/t,xattr,loglevel=err")).unwrap(),
            words("--shared-dir /t --xattr --log-level error")
        );
        // Not ours to touch: a value after `--`.
        assert_eq!(
            translate_legacy(words("--fd 3 -- -d")).unwrap(),
            words("--fd 3 -- -d")
        );
        for (line, want) in [
            ("-o source=/t,flock", "does not forward file locks"),
            ("-o source=/t,posix_lock", "does not forward file locks"),
            ("-o writeback", "not an option eventfsd knows"),
            ("-o", "needs a value"),
        ] {
            let e = translate_legacy(words(line)).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn id_maps_are_checked() {
        assert!(check_id_map(":0:1000:1:").is_ok());
        for bad in ["0:1000:1", ":0:1000:1", ":a:1:1:", ":0:1:1:2:"] {
            assert!(check_id_map(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_dir_picks_the_source() {
        let file = std::env::temp_dir().join(format!("eventfsd-compat-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            resolve_shared_dir(&file),
            Ok(SharedDir::Catalog(file.clone()))
        );
        std::fs::remove_file(&file).unwrap();
        let e = resolve_shared_dir(&std::env::temp_dir()).unwrap_err();
        assert!(e.contains("neither a tracefs mount"), "{e}");
        assert!(resolve_shared_dir(&file)
            .unwrap_err()
            .contains("No such file"));
    }
}
