//! Tree identity, readdir cookies, lookup counting and dynamic add/remove.

use std::collections::{HashMap, HashSet};

use eventfs_core::catalog::{Catalog, EventEntry, SystemEntry};
use eventfs_core::layout::{all_files, FileKind, ROOT_FILES};
use eventfs_core::tree::{Image, NewEvent};
use eventfs_core::{FsError, Ino, NodeKind, SetAttr, Tree, TreeConfig, ROOT_INO};
use proptest::prelude::*;

fn event(name: &str, id: u32, files: u16) -> EventEntry {
    EventEntry {
        name: name.into(),
        id,
        files,
        format: format!("name: {name}\nID: {id}\nformat:\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n"),
    }
}

fn small_tree() -> Tree {
    let catalog = Catalog {
        kernel_release: "test".into(),
        header_page: "page\n".into(),
        header_event: "event\n".into(),
        readme: "readme\n".into(),
        available_tracers: "nop\n".into(),
        trace_clock: "[local] global\n".into(),
        functions: String::new(),
        options: vec![("overwrite".into(), true)],
        systems: vec![
            SystemEntry {
                name: "ftrace".into(),
                files: 0,
                events: vec![event("function", 1, 0b11000)],
            },
            SystemEntry {
                name: "sched".into(),
                files: 0b11,
                events: vec![
                    event("sched_switch", 10, 0b11111),
                    event("sched_wakeup", 11, 0b11111),
                ],
            },
        ],
    };
    Tree::from_image(Image::Owned(catalog.encode().into()), TreeConfig::default()).unwrap()
}

fn list(tree: &Tree, dir: Ino) -> Vec<(String, Ino, u64)> {
    let mut out = Vec::new();
    tree.readdir(dir, 0, &mut |e| {
        out.push((
            String::from_utf8_lossy(e.name).into_owned(),
            e.attr.node.ino,
            e.next_offset,
        ));
        true
    })
    .unwrap();
    out
}

/// Lists one entry per call, resuming from the previous cookie, as a tiny getdents buffer does.
fn list_one_at_a_time(tree: &Tree, dir: Ino) -> Vec<(String, Ino, u64)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut got = None;
        tree.readdir(dir, offset, &mut |e| {
            got = Some((
                String::from_utf8_lossy(e.name).into_owned(),
                e.attr.node.ino,
                e.next_offset,
            ));
            false
        })
        .unwrap();
        match got {
            Some(entry) => {
                offset = entry.2;
                out.push(entry);
            }
            None => return out,
        }
    }
}

fn path(tree: &Tree, p: &str) -> Result<Ino, FsError> {
    let mut ino = ROOT_INO;
    for part in p.split('/').filter(|s| !s.is_empty()) {
        ino = tree.find(ino, part.as_bytes())?.node.ino;
    }
    Ok(ino)
}

#[test]
fn shape_modes_and_kernel_file_order() {
    let tree = small_tree();
    let names = |p| {
        list(&tree, path(&tree, p).unwrap())
            .into_iter()
            .map(|e| e.0)
            .collect::<Vec<_>>()
    };
    let root = names("/");
    assert_eq!(&root[..4], [".", "..", "README", "available_events"]);
    assert_eq!(
        &root[root.len() - 4..],
        ["events", "instances", "options", "per_cpu"]
    );
    assert_eq!(names("per_cpu"), [".", "..", "cpu0"]);
    assert_eq!(
        names("per_cpu/cpu0"),
        [
            ".",
            "..",
            "buffer_size_kb",
            "snapshot",
            "snapshot_raw",
            "stats",
            "trace",
            "trace_pipe",
            "trace_pipe_raw"
        ]
    );
    // The snapshot files go with the top-level `snapshot`, in instances too.
    let snapshot_row = ROOT_FILES
        .iter()
        .position(|f| f.name == "snapshot")
        .unwrap();
    tree.set_root_files(all_files(ROOT_FILES) & !(1 << snapshot_row));
    assert_eq!(names("per_cpu/cpu0").len(), 7);
    tree.add_instance("no_snapshot").unwrap();
    assert!(path(&tree, "instances/no_snapshot/snapshot").is_err());
    assert_eq!(names("instances/no_snapshot/per_cpu/cpu0").len(), 7);
    tree.remove_instance("no_snapshot").unwrap();
    tree.set_root_files(all_files(ROOT_FILES));
    assert_eq!(names("options"), [".", "..", "overwrite"]);
    assert_eq!(names("instances"), [".", ".."]);
    assert_eq!(
        names("events"),
        [
            ".",
            "..",
            "enable",
            "header_page",
            "header_event",
            "ftrace",
            "sched"
        ]
    );
    assert_eq!(
        names("events/sched"),
        [
            ".",
            "..",
            "enable",
            "filter",
            "sched_switch",
            "sched_wakeup"
        ]
    );
    assert_eq!(names("events/ftrace"), [".", "..", "function"]);
    assert_eq!(names("events/ftrace/function"), [".", "..", "format", "id"]);
    assert_eq!(
        names("events/sched/sched_switch"),
        [".", "..", "enable", "filter", "trigger", "format", "id"]
    );
    let perm = |p| tree.getattr(path(&tree, p).unwrap()).unwrap().perm;
    assert_eq!(perm("/"), 0o700);
    assert_eq!(perm("instances"), 0o750);
    assert_eq!(perm("trace_marker"), 0o220);
    assert_eq!(perm("events/sched"), 0o755);
    assert_eq!(perm("events/sched/sched_switch/enable"), 0o640);
    assert_eq!(perm("events/sched/sched_switch/format"), 0o440);
    assert_eq!(perm("events/header_page"), 0o440);
}

#[test]
fn inode_numbers_are_unique_and_agree_between_readdir_and_stat() {
    let tree = Tree::embedded(TreeConfig::default());
    let mut seen = HashSet::new();
    let mut stack = vec![ROOT_INO];
    while let Some(dir) = stack.pop() {
        for (name, ino, _) in list(&tree, dir) {
            if name == "." || name == ".." {
                continue;
            }
            let attr = tree.find(dir, name.as_bytes()).unwrap();
            assert_eq!(attr.node.ino, ino, "readdir and lookup disagree for {name}");
            assert_eq!(tree.getattr(ino).unwrap(), attr);
            assert!(seen.insert(ino), "duplicate inode {ino} for {name}");
            if matches!(attr.node.kind, NodeKind::Dir(_)) {
                stack.push(ino);
            }
        }
    }
    let (systems, events, dirs, files) = tree.counts();
    assert_eq!(
        seen.len(),
        dirs - 1 + files,
        "{systems} systems {events} events"
    );
    assert_eq!(
        tree.materialised(),
        0,
        "listing and finding must not materialise nodes"
    );
}

#[test]
fn tiny_buffer_listing_equals_normal_listing() {
    let tree = Tree::embedded(TreeConfig::default());
    for p in [
        "/",
        "events",
        "events/sched",
        "events/syscalls",
        "events/sched/sched_switch",
    ] {
        let dir = path(&tree, p).unwrap();
        assert_eq!(list_one_at_a_time(&tree, dir), list(&tree, dir), "{p}");
    }
}

#[test]
fn names_are_checked() {
    let tree = small_tree();
    let events = path(&tree, "events").unwrap();
    assert_eq!(
        tree.lookup(events, &[b'a'; 256]).unwrap_err(),
        FsError::NameTooLong
    );
    assert_eq!(
        tree.lookup(events, &[b'a'; 255]).unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(tree.lookup(events, b"..").unwrap_err(), FsError::NotFound);
    assert_eq!(tree.lookup(events, b"a/b").unwrap_err(), FsError::NotFound);
    let format = path(&tree, "events/sched/sched_switch/format").unwrap();
    assert_eq!(tree.lookup(format, b"x").unwrap_err(), FsError::NotDir);
    assert_eq!(tree.materialised(), 0, "negative lookups store nothing");
}

#[test]
fn lookup_forget_reset_and_the_root() {
    let tree = small_tree();
    let a = tree.lookup(ROOT_INO, b"events").unwrap().node.ino;
    tree.lookup(ROOT_INO, b"events").unwrap();
    assert_eq!(tree.lookup_count(a), 2);
    assert!(tree.forget(a, 1));
    assert_eq!(tree.materialised(), 1);
    assert!(tree.forget(a, 1));
    assert_eq!(tree.materialised(), 0);
    assert!(!tree.forget(a, 1), "over-forget is reported");
    assert!(tree.forget(ROOT_INO, 100), "the root is never freed");
    assert!(tree.getattr(ROOT_INO).is_ok());
    tree.lookup(a, b"sched").unwrap();
    tree.reset();
    assert_eq!(tree.materialised(), 0);
    // Metadata stays: the node can be found again after forget/reset.
    assert!(tree.lookup(a, b"sched").is_ok());
}

#[test]
fn chmod_survives_forget() {
    let tree = small_tree();
    let enable = tree
        .lookup(path(&tree, "events/sched/sched_switch").unwrap(), b"enable")
        .unwrap();
    tree.setattr(
        enable.node.ino,
        SetAttr {
            mode: Some(0o600),
            uid: Some(7),
            gid: None,
        },
    )
    .unwrap();
    tree.forget(enable.node.ino, 1);
    let again = tree
        .find(path(&tree, "events/sched/sched_switch").unwrap(), b"enable")
        .unwrap();
    assert_eq!((again.perm, again.uid, again.gid), (0o600, 7, 0));
}

#[test]
fn static_content_is_exact() {
    let tree = small_tree();
    let id = path(&tree, "events/sched/sched_wakeup/id").unwrap();
    assert_eq!(
        tree.with_static_content(id, |b| b.to_vec()).unwrap(),
        b"11\n"
    );
    assert_eq!(tree.getattr(id).unwrap().size, 3);
    let page = path(&tree, "events/header_page").unwrap();
    assert_eq!(
        tree.with_static_content(page, |b| b.to_vec()).unwrap(),
        b"page\n"
    );
    let format = path(&tree, "events/sched/sched_switch/format").unwrap();
    let text = tree
        .with_static_content(format, |b| String::from_utf8(b.to_vec()).unwrap())
        .unwrap();
    assert!(text.starts_with("name: sched_switch\nID: 10\n"));
    let enable = path(&tree, "events/sched/sched_switch/enable").unwrap();
    assert_eq!(tree.getattr(enable).unwrap().size, 0);
    assert!(tree.with_static_content(enable, |_| ()).is_err());
}

#[test]
fn removal_and_generations() {
    let tree = small_tree();
    let old = path(&tree, "events/sched/sched_wakeup").unwrap();
    let old_enable = tree.lookup(old, b"enable").unwrap().node.ino;
    tree.remove("sched", Some("sched_wakeup")).unwrap();
    assert_eq!(
        tree.find(path(&tree, "events/sched").unwrap(), b"sched_wakeup")
            .unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(tree.getattr(old_enable).unwrap_err(), FsError::Removed);
    assert_eq!(
        tree.node(old_enable).unwrap_err().for_open_handle().errno(),
        libc::ENODEV
    );
    // Re-adding the same name reuses the slot under a new generation: old ids stay dead.
    let new = tree
        .add_event(&NewEvent {
            system: "sched",
            name: "sched_wakeup",
            id: 99,
            files: 0b11111,
            format: "name: sched_wakeup\nID: 99\n",
        })
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(tree.getattr(old).unwrap_err(), FsError::Removed);
    let id = tree.find(new, b"id").unwrap().node.ino;
    assert_eq!(
        tree.with_static_content(id, |b| b.to_vec()).unwrap(),
        b"99\n"
    );
    assert!(tree.getattr(new).unwrap().node.dynamic);
    // Forgetting the old node still works (the kernel forgets removed nodes later).
    assert!(tree.forget(old_enable, 1));
    assert_eq!(
        tree.add_event(&NewEvent {
            system: "sched",
            name: "sched_wakeup",
            id: 1,
            files: 1,
            format: ""
        })
        .unwrap_err(),
        FsError::Exists
    );
    // A new system appears with the event; removing the system removes its events.
    let kprobe = tree
        .add_event(&NewEvent {
            system: "kprobes",
            name: "p_open",
            id: 2000,
            files: 0b11111,
            format: "name: p_open\n",
        })
        .unwrap();
    assert!(list(&tree, path(&tree, "events").unwrap())
        .iter()
        .any(|e| e.0 == "kprobes"));
    tree.remove("kprobes", None).unwrap();
    assert_eq!(tree.getattr(kprobe).unwrap_err(), FsError::Removed);
    assert!(path(&tree, "events/kprobes").is_err());
}

#[test]
fn cookies_survive_concurrent_add_and_remove() {
    let tree = small_tree();
    let sched = path(&tree, "events/sched").unwrap();
    let first = list(&tree, sched);
    // Read up to and including sched_switch, then change the directory.
    let switch_pos = first.iter().position(|e| e.0 == "sched_switch").unwrap();
    let cookie = first[switch_pos].2;
    tree.remove("sched", Some("sched_switch")).unwrap();
    tree.add_event(&NewEvent {
        system: "sched",
        name: "aaa_new",
        id: 5,
        files: 1,
        format: "",
    })
    .unwrap();
    let mut rest = Vec::new();
    tree.readdir(sched, cookie, &mut |e| {
        rest.push(String::from_utf8_lossy(e.name).into_owned());
        true
    })
    .unwrap();
    assert_eq!(
        rest,
        ["sched_wakeup", "aaa_new"],
        "no skipped or repeated entries"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Lookup(usize),
    Forget(usize, u64),
    ReaddirPlus(usize),
    Reset,
    Add(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..32usize).prop_map(Op::Lookup),
        (0..32usize, 1..3u64).prop_map(|(i, n)| Op::Forget(i, n)),
        (0..8usize).prop_map(Op::ReaddirPlus),
        Just(Op::Reset),
        (0..4u8).prop_map(Op::Add),
        (0..4u8).prop_map(Op::Remove),
    ]
}

proptest! {
    /// Random lookup/forget/reset/add/remove sequences keep counts exact against a model, and
    /// readdir and lookup always agree.
    #[test]
    fn lookup_counts_match_a_model(ops in proptest::collection::vec(op(), 1..120)) {
        let tree = small_tree();
        let mut model: HashMap<Ino, u64> = HashMap::new();
        let mut known: Vec<(Ino, Vec<u8>)> = Vec::new();
        let dirs = |tree: &Tree| {
            let mut out = vec![ROOT_INO];
            let mut i = 0;
            while i < out.len() {
                let d = out[i];
                tree.readdir(d, 2, &mut |e| { if matches!(e.attr.node.kind, NodeKind::Dir(_)) { out.push(e.attr.node.ino); } true }).unwrap();
                i += 1;
            }
            out
        };
        for op in ops {
            match op {
                Op::Lookup(i) => {
                    let ds = dirs(&tree);
                    let dir = ds[i % ds.len()];
                    let entries = list(&tree, dir);
                    let (name, ino, _) = &entries[(i / ds.len()) % entries.len()];
                    if name != "." && name != ".." {
                        let attr = tree.lookup(dir, name.as_bytes()).unwrap();
                        prop_assert_eq!(attr.node.ino, *ino);
                        *model.entry(*ino).or_default() += 1;
                        known.push((*ino, name.as_bytes().to_vec()));
                    }
                }
                Op::Forget(i, n) => {
                    if !known.is_empty() {
                        let ino = known[i % known.len()].0;
                        let have = model.get(&ino).copied().unwrap_or(0);
                        let n = n.min(have);
                        tree.forget(ino, n);
                        if have == n { model.remove(&ino); } else { *model.get_mut(&ino).unwrap() -= n; }
                    }
                }
                Op::ReaddirPlus(i) => {
                    let ds = dirs(&tree);
                    let dir = ds[i % ds.len()];
                    tree.readdir(dir, 0, &mut |e| {
                        if !e.is_dot { tree.remember(e.attr.node.ino); *model.entry(e.attr.node.ino).or_default() += 1; known.push((e.attr.node.ino, e.name.to_vec())); }
                        true
                    }).unwrap();
                }
                Op::Reset => { tree.reset(); model.clear(); }
                Op::Add(k) => { let _ = tree.add_event(&NewEvent { system: "dyn", name: &format!("e{k}"), id: 100 + u32::from(k), files: 0b11111, format: "" }); }
                Op::Remove(k) => { let _ = tree.remove("dyn", Some(&format!("e{k}"))); }
            }
            for (ino, count) in &model {
                prop_assert_eq!(u64::from(tree.lookup_count(*ino)), *count);
            }
            prop_assert_eq!(tree.materialised(), model.len());
        }
    }
}

#[test]
fn event_queries_for_control_code() {
    let tree = small_tree();
    let sw = tree.find_event("sched", "sched_switch").unwrap();
    assert!(tree.event_has_file(sw, FileKind::EventEnable));
    let f = tree.find_event("ftrace", "function").unwrap();
    assert!(!tree.event_has_file(f, FileKind::EventEnable));
    let events = tree.find(ROOT_INO, b"events").unwrap().node.dir;
    assert_eq!(tree.events_below(events).len(), 3);
    // One lock for a fan-out: the enable-able events with their keys.
    let with_enable = tree.events_with_file(events, FileKind::EventEnable);
    assert_eq!(with_enable.len(), 2, "ftrace/function has no enable");
    for (dir, key) in with_enable {
        assert_eq!(key, tree.dir_ino(dir));
        assert!(tree.event_has_file(dir, FileKind::EventEnable));
    }
}

#[test]
fn dir_keys_without_the_lock_match_the_tree() {
    let tree = small_tree();
    // Removed and added again: the instance's slots are reused under a new generation.
    let first = tree.add_instance("k").unwrap();
    let first_ino = tree.dir_ino(first);
    tree.remove_instance("k").unwrap();
    let instance = tree.add_instance("k").unwrap();
    assert_ne!(
        tree.dir_ino(instance),
        first_ino,
        "a new generation, a new inode"
    );
    assert!(
        tree.dir_ino(instance) >> 48 > 0,
        "the reused slot carries generation > 0"
    );
    let mut stack = vec![ROOT_INO];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let mut cookie = 0;
        loop {
            let mut batch = Vec::new();
            tree.readdir(dir, cookie, &mut |e| {
                batch.push((e.attr.node, e.next_offset, e.is_dot));
                true
            })
            .unwrap();
            if batch.is_empty() {
                break;
            }
            for (node, next, dot) in batch {
                cookie = next;
                if dot {
                    continue;
                }
                seen += 1;
                assert_eq!(node.dir_ino(), tree.dir_ino(node.dir), "{node:?}");
                let expected_instance = tree.dir_ino(tree.instance_of(node.dir));
                assert_eq!(tree.instance_ino_of(node.dir), expected_instance);
                if matches!(node.kind, NodeKind::Dir(_)) {
                    stack.push(node.ino);
                }
            }
        }
    }
    assert!(seen > 50, "walked {seen} nodes");
    let inst_trace = tree
        .node(path(&tree, "instances/k/trace").unwrap())
        .unwrap();
    assert_eq!(tree.instance_ino_of(inst_trace.dir), tree.dir_ino(instance));
    let top_trace = tree.node(path(&tree, "trace").unwrap()).unwrap();
    assert_eq!(tree.instance_ino_of(top_trace.dir), ROOT_INO);
    assert_eq!(top_trace.dir_ino(), ROOT_INO);
}

#[test]
fn paths_and_instances() {
    let tree = small_tree();
    let enable = tree
        .node(path(&tree, "events/sched/sched_switch/enable").unwrap())
        .unwrap();
    assert_eq!(tree.path_of(enable), "events/sched/sched_switch/enable");
    let instance = tree.add_instance("foo").unwrap();
    assert_eq!(tree.add_instance("foo").unwrap_err(), FsError::Exists);
    let inst_enable = tree
        .node(path(&tree, "instances/foo/events/sched/sched_switch/enable").unwrap())
        .unwrap();
    assert_eq!(
        tree.path_of(inst_enable),
        "instances/foo/events/sched/sched_switch/enable"
    );
    assert_eq!(tree.instance_of(inst_enable.dir), instance);
    assert_ne!(inst_enable.ino, enable.ino, "an instance has its own nodes");
    assert_eq!(
        tree.getattr(path(&tree, "instances/foo/trace").unwrap())
            .unwrap()
            .perm,
        0o640
    );
    assert!(
        path(&tree, "instances/foo/README").is_err(),
        "global-only files are not in instances"
    );
    // Dynamic events appear in every instance and go away from all of them.
    tree.add_event(&NewEvent {
        system: "kprobes",
        name: "p1",
        id: 77,
        files: 0b11111,
        format: "name: p1\n",
    })
    .unwrap();
    assert!(path(&tree, "instances/foo/events/kprobes/p1/enable").is_ok());
    tree.remove("kprobes", Some("p1")).unwrap();
    assert!(path(&tree, "instances/foo/events/kprobes/p1").is_err());
    tree.remove_instance("foo").unwrap();
    assert_eq!(tree.getattr(inst_enable.ino).unwrap_err(), FsError::Removed);
    assert!(tree.instances().is_empty());
}
