//! The guard against the attacks a guest can make with ordinary writes.

use super::*;

const SCHED_SWITCH_FORMAT: &str = "name: sched_switch\nID: 1\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:char *name;\toffset:32;\tsize:8;\tsigned:0;\n\n\
print fmt: \"prev_pid=%d\", REC->prev_pid\n";

struct Host {
    events: EventSet,
    hidden: EventSet,
    enabled: BTreeSet<(String, String)>,
}

fn host() -> Host {
    let key = |s: &str, e: &str| (s.to_string(), e.to_string());
    Host {
        events: [
            key("sched", "sched_switch"),
            key("sched", "sched_waking"),
            key("sched", "sched_wakeup"),
            key("kvm", "kvm_exit"),
            key("irq", "irq_handler_entry"),
        ]
        .into_iter()
        .collect(),
        hidden: [key("sched", "sched_waking"), key("kvm", "kvm_exit")]
            .into_iter()
            .collect(),
        enabled: BTreeSet::new(),
    }
}

fn write_with(
    policy: &Policy,
    host: &Host,
    kind: FileKind,
    path: &str,
    data: &[u8],
) -> Result<Decision, FsError> {
    let parts: Vec<&str> = path.split('/').collect();
    let (system, event) = match kind {
        FileKind::SystemEnable | FileKind::SystemFilter => (parts[1], ""),
        FileKind::EventEnable | FileKind::EventFilter | FileKind::EventTrigger => {
            (parts[1], parts[2])
        }
        _ => ("", ""),
    };
    let enabled = || Ok(host.enabled.clone());
    let ctx = WriteContext {
        kind,
        path,
        system,
        event,
        events: &host.events,
        hidden: &host.hidden,
        enabled: &enabled,
    };
    check_write(policy, &ctx, data, &|| Ok(SCHED_SWITCH_FORMAT.to_string()))
}

fn write(kind: FileKind, path: &str, data: &[u8]) -> Result<Decision, FsError> {
    write_with(&Policy::default(), &host(), kind, path, data)
}

fn forwards(kind: FileKind, path: &str, data: &[u8]) -> Vec<String> {
    match write(kind, path, data) {
        Ok(Decision::Forward { writes, .. }) => writes
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect(),
        other => panic!("{path} <- {data:?}: {other:?}"),
    }
}

fn errno(kind: FileKind, path: &str, data: &[u8]) -> i32 {
    match write(kind, path, data) {
        Err(FsError::Os(e)) => e,
        other => panic!("{path} <- {data:?} was not refused: {other:?}"),
    }
}

const TRIGGER: FileKind = FileKind::EventTrigger;
const SWITCH_TRIGGER: &str = "events/sched/sched_switch/trigger";

#[test]
fn enable_reads_numbers_as_kstrtoul() {
    let enable = |data: &[u8]| write(FileKind::SystemEnable, "events/sched/enable", data);
    // The kernel reads all of these as 1: so must the policy (the hidden-event fan-out).
    for one in [&b"1"[..], b"01", b"+1", b"1\n", b"1\0junk", b"0001"] {
        assert_eq!(enable(one), Ok(Decision::Enable(true)), "{one:?}");
    }
    assert_eq!(enable(b"0\n"), Ok(Decision::Enable(false)));
    for bad in [&b"2"[..], b" 1", b"1 ", b"x", b"", b"0x1", b"-1"] {
        assert_eq!(
            enable(bad),
            Err(FsError::Os(libc::EINVAL)),
            "{bad:?} must be refused as the kernel refuses it"
        );
    }
}

#[test]
fn numbers_are_forwarded_in_canonical_form_and_limits_apply_to_the_kernels_value() {
    let kb = FileKind::Root(RootFile::BufferSizeKb);
    assert_eq!(forwards(kb, "buffer_size_kb", b"+0100\n"), ["100\n"]);
    // The kernel stops at the NUL: the limit must see 99999999, not a parse failure.
    assert_eq!(errno(kb, "buffer_size_kb", b"99999999\0"), libc::EACCES);
    assert_eq!(errno(kb, "buffer_size_kb", b"0"), libc::EINVAL);
    let cpu_kb = FileKind::PerCpu(CpuFile::BufferSizeKb);
    assert_eq!(
        errno(cpu_kb, "per_cpu/cpu0/buffer_size_kb", b"4097"),
        libc::EACCES
    );
    assert_eq!(
        forwards(FileKind::Root(RootFile::TracingOn), "tracing_on", b"01\0"),
        ["1\n"]
    );
}

#[test]
fn triggers_split_like_the_kernel_and_cannot_reach_hidden_events() {
    for attack in [
        &b"enable_event:sched:sched_waking"[..],
        b"enable_event sched sched_waking",
        b"enable_event\tsched:sched_waking",
        b"enable_event:sched:sched_waking:5 if prev_pid > 0",
        b"enable_hist:kvm:kvm_exit",
        b"  enable_event:kvm:kvm_exit\n",
    ] {
        assert!(
            write(TRIGGER, SWITCH_TRIGGER, attack).is_err(),
            "{:?} reached a hidden event",
            String::from_utf8_lossy(attack)
        );
    }
    assert_eq!(
        forwards(
            TRIGGER,
            SWITCH_TRIGGER,
            b"  enable_event:sched:sched_wakeup:2 \n"
        ),
        ["enable_event:sched:sched_wakeup:2\n"]
    );
    assert_eq!(
        forwards(TRIGGER, SWITCH_TRIGGER, b"traceoff if prev_pid == 1\0 && x"),
        ["traceoff if prev_pid == 1\n"]
    );
}

#[test]
fn address_and_memory_leaks_are_refused() {
    for attack in [
        &b"stacktrace"[..],
        b"stacktrace:5 if prev_pid == 1",
        b"hist:keys=prev_pid.hex",
        b"hist:keys=prev_pid.sym",
        b"hist:keys=prev_pid.sym-offset",
        b"hist:keys=common_stacktrace",
        b"hist:keys=prev_pid:name=shared",
        b"snapshot",
    ] {
        assert_eq!(
            errno(TRIGGER, SWITCH_TRIGGER, attack),
            libc::EACCES,
            "{:?}",
            String::from_utf8_lossy(attack)
        );
    }
    assert_eq!(
        errno(
            FileKind::EventFilter,
            "events/sched/sched_switch/filter",
            b"name.ustring ~ \"secret*\""
        ),
        libc::EACCES
    );
    assert_eq!(
        errno(TRIGGER, SWITCH_TRIGGER, b"traceon if name.ustring == \"x\""),
        libc::EACCES
    );
    // A policy can open each deliberately.
    let open = Policy::parse(
        "[triggers]\nstacktrace = true\nnamed_hist = true\naddress_modifiers = true\n\
         [filters]\nustring = true\n",
    )
    .unwrap();
    let ok = |kind, path: &str, data: &[u8]| write_with(&open, &host(), kind, path, data);
    assert!(ok(TRIGGER, SWITCH_TRIGGER, b"stacktrace").is_ok());
    assert!(ok(TRIGGER, SWITCH_TRIGGER, b"hist:keys=prev_pid.hex:name=n").is_ok());
    assert!(ok(
        FileKind::EventFilter,
        "events/sched/sched_switch/filter",
        b"name.ustring == \"x\""
    )
    .is_ok());
}

#[test]
fn options_are_one_allow_list_through_either_file() {
    let options = FileKind::Root(RootFile::TraceOptions);
    assert_eq!(
        forwards(options, "trace_options", b"  nooverwrite \n"),
        ["nooverwrite\n"]
    );
    for attack in [
        &b"sym-addr"[..],
        b"nohash-ptr",
        b"trace_printk_dest",
        b"copy_trace_marker",
        b"userstacktrace",
        b"nopause-on-trace",
        b"noevent-fork",
        b"sym-addr\0overwrite",
    ] {
        assert_eq!(
            errno(options, "trace_options", attack),
            libc::EACCES,
            "{attack:?}"
        );
    }
    assert_eq!(errno(options, "trace_options", &[b'a'; 64]), libc::EINVAL);
    let file = FileKind::TraceOption(0);
    assert_eq!(forwards(file, "options/overwrite", b"0\n"), ["0\n"]);
    assert_eq!(errno(file, "options/sym-addr", b"1"), libc::EACCES);
    // The safe value of a refused option is accepted (tools reset instances with it).
    assert_eq!(forwards(file, "options/function-trace", b"0"), ["0\n"]);
    assert_eq!(forwards(file, "options/hash-ptr", b"01"), ["1\n"]);
    assert_eq!(errno(file, "options/hash-ptr", b"0"), libc::EACCES);
    assert_eq!(
        forwards(options, "trace_options", b"nosym-addr"),
        ["nosym-addr\n"]
    );
    assert_eq!(
        forwards(options, "trace_options", b"hash-ptr"),
        ["hash-ptr\n"]
    );
    assert_eq!(errno(file, "options/overwrite", b"2"), libc::EINVAL);
}

#[test]
fn tracers_are_an_allow_list() {
    let tracer = FileKind::Root(RootFile::CurrentTracer);
    assert_eq!(forwards(tracer, "current_tracer", b"nop\n"), ["nop\n"]);
    assert_eq!(
        forwards(tracer, "current_tracer", b" nop\0function"),
        ["nop\n"]
    );
    for attack in [
        "function",
        "hwlat",
        "osnoise",
        "timerlat",
        "function_graph",
        "nop x",
    ] {
        assert!(
            write(tracer, "current_tracer", attack.as_bytes()).is_err(),
            "{attack}"
        );
    }
}

#[test]
fn set_event_tokens_cannot_reach_hidden_events() {
    let set_event = FileKind::Root(RootFile::SetEvent);
    assert_eq!(
        forwards(set_event, "set_event", b"sched:sched_switch"),
        ["sched:sched_switch\n"]
    );
    // A hidden event is as absent as an event that does not exist.
    assert_eq!(
        errno(set_event, "set_event", b"sched:sched_waking"),
        libc::EINVAL
    );
    // 0xA0 is white space to the kernel: the second token is a token of its own.
    assert_eq!(
        forwards(
            set_event,
            "set_event",
            b"irq:irq_handler_entry\xa0sched:sched_wakeup"
        ),
        ["irq:irq_handler_entry\n", "sched:sched_wakeup\n"]
    );
    assert_eq!(
        forwards(
            set_event,
            "set_event",
            b"irq:irq_handler_entry\xa0sched:sched_waking"
        ),
        ["irq:irq_handler_entry\n"]
    );
    // A system with a hidden event is enabled event by event.
    assert_eq!(
        forwards(set_event, "set_event", b"sched:*"),
        ["sched:sched_switch\n", "sched:sched_wakeup\n"]
    );
    assert_eq!(forwards(set_event, "set_event", b"*:*").len(), 3);
    assert_eq!(
        errno(set_event, "set_event", b"sched:sched_waking:x"),
        libc::EINVAL
    );
    // The kernel's parser lives for one write: a token split over two writes is two tokens,
    // and neither is the hidden event.
    let (policy, host) = (Policy::default(), host());
    let first = write_with(&policy, &host, set_event, "set_event", b"sched:sched_wak");
    assert!(
        matches!(first, Ok(Decision::Forward { ref writes, .. }) if writes == &[b"sched:sched_wak\n".to_vec()])
    );
    let second = write_with(&policy, &host, set_event, "set_event", b"ing\n");
    assert!(
        matches!(second, Ok(Decision::Forward { ref writes, .. }) if writes == &[b"ing\n".to_vec()])
    );
}

#[test]
fn enabling_is_bounded() {
    let policy = Policy::parse("[limits]\nmax_enabled_events = 2\n").unwrap();
    let mut h = host();
    let run = |h: &Host, kind, path: &str, data: &[u8]| write_with(&policy, h, kind, path, data);
    assert!(run(
        &h,
        FileKind::Root(RootFile::SetEvent),
        "set_event",
        b"sched:*"
    )
    .is_ok());
    assert_eq!(
        run(&h, FileKind::EventsEnable, "events/enable", b"1"),
        Err(FsError::Os(libc::ENOSPC))
    );
    h.enabled.insert(("sched".into(), "sched_switch".into()));
    h.enabled.insert(("sched".into(), "sched_wakeup".into()));
    assert_eq!(
        run(
            &h,
            FileKind::EventEnable,
            "events/irq/irq_handler_entry/enable",
            b"1"
        ),
        Err(FsError::Os(libc::ENOSPC))
    );
    // Already enabled, and disabling, are not counted.
    assert!(run(&h, FileKind::SystemEnable, "events/sched/enable", b"1").is_ok());
    assert!(run(&h, FileKind::EventsEnable, "events/enable", b"0").is_ok());
}

#[test]
fn pid_lists_and_other_files() {
    assert_eq!(
        write(
            FileKind::Root(RootFile::SetEventPid),
            "set_event_pid",
            b"0x10 010\t7\n"
        ),
        Ok(Decision::Pids(vec![16, 8, 7]))
    );
    assert_eq!(
        errno(
            FileKind::Root(RootFile::SetEventPid),
            "set_event_pid",
            b"1 x"
        ),
        libc::EINVAL
    );
    let mask = FileKind::Root(RootFile::TracingCpumask);
    assert_eq!(forwards(mask, "tracing_cpumask", b"3\n"), ["3\n"]);
    assert_eq!(errno(mask, "tracing_cpumask", b"3 && 1"), libc::EINVAL);
    assert_eq!(
        errno(
            FileKind::EventInject,
            "events/sched/sched_switch/inject",
            b"x"
        ),
        libc::EACCES
    );
    assert_eq!(
        write(FileKind::Root(RootFile::Trace), "trace", b"anything"),
        Ok(Decision::Ignore(8))
    );
}
