//! Compares the tree against this machine's live tracefs: every event's file list, modes,
//! `format` and `id`, and both headers byte for byte, through a fresh snapshot of a private
//! tracefs mount and, when the running kernel is the one the embedded catalog was taken from,
//! through the embedded catalog too.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use eventfs_core::catalog::{Catalog, EMBEDDED};
use eventfs_core::snapshot::snapshot;
use eventfs_core::tree::Image;
use eventfs_core::{Ino, NodeKind, Tree, TreeConfig, ROOT_INO};

/// Every file below `events/` in the tree: (relative path, perm, content if immutable).
fn tree_files(tree: &Tree) -> Vec<(String, u16, Option<Vec<u8>>)> {
    let events = tree.find(ROOT_INO, b"events").unwrap().node.ino;
    let mut out = Vec::new();
    let mut stack: Vec<(Ino, String)> = vec![(events, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        tree.readdir(dir, 2, &mut |e| {
            let name = format!("{prefix}{}", String::from_utf8_lossy(e.name));
            match e.attr.node.kind {
                NodeKind::Dir(_) => stack.push((e.attr.node.ino, format!("{name}/"))),
                NodeKind::File(kind) => {
                    let content = kind.is_immutable().then(|| {
                        tree.with_static_content(e.attr.node.ino, <[u8]>::to_vec)
                            .unwrap()
                    });
                    out.push((name, e.attr.perm, content));
                }
            }
            true
        })
        .unwrap();
    }
    out.sort();
    out
}

/// A live tracefs file as `cat` reads it: large reads until one returns 0. (Files like
/// `header_page` answer only the first read at offset 0; `fs::read` would probe with 32
/// bytes and get a cut file.)
fn read_live(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// (name, perm) of the files of the directory `rel` in the tree.
fn tree_dir_files(tree: &Tree, rel: &str) -> Vec<(String, u32)> {
    let mut dir = ROOT_INO;
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        dir = tree.find(dir, part.as_bytes()).unwrap().node.ino;
    }
    let mut out = Vec::new();
    tree.readdir(dir, 2, &mut |e| {
        if let NodeKind::File(_) = e.attr.node.kind {
            out.push((
                String::from_utf8_lossy(e.name).into_owned(),
                u32::from(e.attr.perm),
            ));
        }
        true
    })
    .unwrap();
    out
}

/// The per-CPU directory matches the live one file for file, and every root file the tree
/// serves that the live tracefs has carries the same mode.
fn compare_root_and_per_cpu(tree: &Tree, live: &Path) {
    let live_cpu0: Vec<(String, u32)> = {
        let mut v: Vec<_> = fs::read_dir(live.join("per_cpu/cpu0"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .filter(|(name, _)| !name.starts_with("snapshot"))
            .collect();
        v.sort();
        v
    };
    // Snapshot files depend on the kernel's configuration and on the source: left out on
    // both sides.
    let tree_cpu0: Vec<(String, u32)> = tree_dir_files(tree, "per_cpu/cpu0")
        .into_iter()
        .filter(|(name, _)| !name.starts_with("snapshot"))
        .collect();
    assert_eq!(tree_cpu0, live_cpu0, "per_cpu/cpu0");
    let mut checked = 0;
    for (name, perm) in tree_dir_files(tree, "") {
        // The tree has files some kernels lack (kprobe_events without CONFIG_KPROBE_EVENTS).
        if let Ok(meta) = fs::metadata(live.join(&name)) {
            assert_eq!(perm, meta.permissions().mode() & 0o7777, "mode of {name}");
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} root files found in the live tracefs"
    );
}

fn compare(tree: &Tree, live: &Path, what: &str) {
    let files = tree_files(tree);
    let mut live_count = 0;
    let mut pending = vec![live.join("events")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                live_count += 1;
            }
        }
    }
    assert_eq!(
        files.len(),
        live_count,
        "{what}: file count differs from live tracefs"
    );
    for (rel, perm, content) in &files {
        let path = live.join("events").join(rel);
        let meta = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{what}: {rel} not in live tracefs: {e}"));
        assert_eq!(
            u32::from(*perm),
            meta.permissions().mode() & 0o7777,
            "{what}: mode of {rel}"
        );
        if let Some(content) = content {
            assert_eq!(
                String::from_utf8_lossy(content),
                String::from_utf8_lossy(&read_live(&path)),
                "{what}: content of {rel}"
            );
        }
    }
    println!("{what}: {} files match the live tracefs", files.len());
}

#[test]
fn tree_matches_live_tracefs() {
    // A private mount: the host's own tracing state is never touched.
    let Some(tracefs) = test_prereq::PrivateTracefs::mount("tree_matches_live_tracefs") else {
        return;
    };
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string();
    let fresh = snapshot(&tracefs, &release).unwrap();
    // The page layout every raw-buffer reader derives from: whole, not cut at a first read.
    for (name, text) in [
        ("header_page", &fresh.header_page),
        ("header_event", &fresh.header_event),
    ] {
        assert_eq!(
            text.as_bytes(),
            read_live(&tracefs.join("events").join(name)),
            "{name} of the snapshot"
        );
        assert!(text.len() > 64, "{name}: {text:?}");
    }
    assert!(fresh.header_page.contains("field: u64 timestamp;"));
    assert!(fresh.header_page.contains("field: char data;"));
    assert!(fresh.header_event.contains("time_delta"));
    let tree =
        Tree::from_image(Image::Owned(fresh.encode().into()), TreeConfig::default()).unwrap();
    compare(&tree, &tracefs, "fresh snapshot");
    compare_root_and_per_cpu(&tree, &tracefs);

    let embedded = Catalog::decode(EMBEDDED).unwrap();
    if embedded.kernel_release == release {
        compare(
            &Tree::embedded(TreeConfig::default()),
            &tracefs,
            "embedded catalog",
        );
    } else {
        // The embedded catalog is one kernel's: a machine on another kernel can check only
        // the fresh snapshot. Counted as a skip, never required (CI's kernel may differ).
        test_prereq::note_skip(
            "tree_matches_live_tracefs (embedded catalog)",
            &format!(
                "embedded catalog is from kernel {}, this machine runs {release}",
                embedded.kernel_release
            ),
        );
    }
}
