//! The examples of the kernel's code and self-tests (`test.d/dynevent/*.tc`,
//! `uprobe_syntax_errors.tc`).

use super::*;

struct Events;

impl AttachTarget for Events {
    fn fields_of(&self, system: &str, event: &str) -> Option<Vec<(String, bool)>> {
        (system == "syscalls" && event == "sys_enter_openat").then(|| {
            vec![
                ("dfd".to_string(), false),
                ("filename".to_string(), false),
                ("flags".to_string(), false),
            ]
        })
    }
}

fn define(line: &str, via: Via) -> ProbeDef {
    match parse_command(line, via, &Events) {
        Ok(Some(ProbeCommand::Define(def))) => def,
        other => panic!("{line}: {other:?}"),
    }
}

fn error(line: &str, via: Via) -> ProbeError {
    parse_command(line, via, &Events).expect_err(line)
}

#[test]
fn default_names_and_listings() {
    let def = define("p /bin/sh:10", Via::UprobeEvents);
    assert_eq!(
        (def.group.as_str(), def.event.as_str()),
        ("uprobes", "p_sh_0xa")
    );
    assert_eq!(
        def.listing(),
        "p:uprobes/p_sh_0xa /bin/sh:0x000000000000000a"
    );
    let def = define(
        "r /lib/x86_64-linux-gnu/libc.so.6:0x1000",
        Via::UprobeEvents,
    );
    assert_eq!(def.event, "p_libc_0x1000", "return probes are named p_ too");
    assert!(def.listing().starts_with("r:uprobes/p_libc_0x1000 "));
    assert_eq!(
        define("p /usr/sbin/my_daemon:16", Via::UprobeEvents).event,
        "p_my_0x10"
    );
    // Long names are cut to 63 bytes, never inside a character (found by the fuzzer).
    let long = define(&format!("p /{}:1", "é".repeat(40)), Via::UprobeEvents).event;
    assert!(long.len() <= 63 && long.starts_with("p_é"), "{long}");
    let def = define("p:myev /bin/sh:10(0x20)", Via::UprobeEvents);
    assert_eq!(
        def.listing(),
        "p:uprobes/myev /bin/sh:0x000000000000000a(0x20)"
    );
    let def = define("p:grp/ev /bin/sh:10%return", Via::DynamicEvents);
    assert!(def.is_return());
    assert_eq!(def.listing(), "r:grp/ev /bin/sh:0x000000000000000a");
    // No maxactive for uprobes: anything but `:` after the letter is ignored.
    assert_eq!(
        define("r5:foo /bin/sh:10", Via::UprobeEvents).event,
        "p_sh_0xa"
    );
    // `GRP/` alone keeps the generated name.
    let def = define("p:mygrp/ /bin/sh:10", Via::UprobeEvents);
    assert_eq!(
        (def.group.as_str(), def.event.as_str()),
        ("mygrp", "p_sh_0xa")
    );
}

#[test]
fn formats_follow_the_kernel_layout() {
    let def = define(
        "p:myev /bin/bash:0x4245c0 a=%ax b=+0(%sp):u32 s=+0(%di):string c=$comm",
        Via::UprobeEvents,
    );
    assert_eq!(
        def.listing(),
        "p:uprobes/myev /bin/bash:0x00000000004245c0 a=%ax b=+0(%sp):u32 s=+0(%di):string c=$comm"
    );
    let layout = def.layout(2001);
    let expected = "name: myev\nID: 2001\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
        \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
        \tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\
        \tfield:u64 a;\toffset:16;\tsize:8;\tsigned:0;\n\
        \tfield:u32 b;\toffset:24;\tsize:4;\tsigned:0;\n\
        \tfield:__data_loc char[] s;\toffset:28;\tsize:4;\tsigned:1;\n\
        \tfield:__data_loc char[] c;\toffset:32;\tsize:4;\tsigned:1;\n\n\
        print fmt: \"(%lx) a=0x%Lx b=%u s=\\\"%s\\\" c=\\\"%s\\\"\", REC->__probe_ip, REC->a, REC->b, __get_str(s), __get_str(c)\n";
    assert_eq!(layout.format, expected);
    assert_eq!(
        layout.display_fmt,
        "\"(0x%lx) a=0x%Lx b=%u s=\\\"%s\\\" c=\\\"%s\\\"\", REC->__probe_ip, REC->a, REC->b, __get_str(s), __get_str(c)"
    );
    let ret = define(
        "r:grp/ret /bin/bash:0x4245c0 rv=$retval:s32",
        Via::UprobeEvents,
    )
    .layout(7);
    assert!(ret
        .format
        .contains("\tfield:unsigned long __probe_func;\toffset:8;"));
    assert!(ret
        .format
        .contains("\tfield:unsigned long __probe_ret_ip;\toffset:16;"));
    assert!(ret
        .format
        .contains("\tfield:s32 rv;\toffset:24;\tsize:4;\tsigned:1;"));
    assert!(ret.format.ends_with(
        "print fmt: \"(%lx <- %lx) rv=%d\", REC->__probe_func, REC->__probe_ret_ip, REC->rv\n"
    ));
    let imm = define("p /bin/sh:10 \\1", Via::UprobeEvents).layout(1);
    assert!(imm.format.contains("\tfield:u64 arg1;\toffset:16;"));
}

#[test]
fn event_probes_via_dynamic_events() {
    let def = define(
        "e:myopen syscalls.sys_enter_openat dfd=$dfd:s32 fn=+0($filename):ustring",
        Via::DynamicEvents,
    );
    assert_eq!(
        def.listing(),
        "e:eprobes/myopen syscalls.sys_enter_openat dfd=$dfd:s32 fn=+0($filename):ustring"
    );
    let layout = def.layout(9);
    assert!(layout
        .format
        .contains("\tfield:s32 dfd;\toffset:8;\tsize:4;\tsigned:1;"));
    assert!(layout
        .format
        .contains("\tfield:__data_loc char[] fn;\toffset:12;"));
    assert!(layout
        .format
        .ends_with("print fmt: \" dfd=%d fn=\\\"%s\\\"\", REC->dfd, __get_str(fn)\n"));
    assert!(layout
        .display_fmt
        .starts_with("\"(syscalls.sys_enter_openat) dfd=%d"));
    assert_eq!(
        def.value_sources()[0],
        (
            "dfd".to_string(),
            ProbeValueSource::Field("dfd".to_string())
        )
    );
    let def = define(
        "e syscalls/sys_enter_openat if dfd == 1",
        Via::DynamicEvents,
    );
    assert_eq!(
        (def.group.as_str(), def.event.as_str()),
        ("eprobes", "sys_enter_openat")
    );
    assert!(matches!(def.kind, ProbeKind::Eprobe { filter: Some(ref f), .. } if f == "dfd == 1"));
    // Event probes only through dynamic_events.
    assert_eq!(
        error("e syscalls.sys_enter_openat", Via::UprobeEvents).logged,
        None
    );
}

#[test]
fn removals() {
    let remove = |line: &str, via: Via| parse_command(line, via, &Events).unwrap().unwrap();
    assert_eq!(
        remove("-:uprobes/p_sh_0xa", Via::UprobeEvents),
        ProbeCommand::Remove {
            group: Some("uprobes".into()),
            event: "p_sh_0xa".into(),
            words: vec![]
        }
    );
    assert!(matches!(
        remove("!:mygrp/", Via::DynamicEvents),
        ProbeCommand::Remove { event, .. } if event.is_empty()
    ));
    assert_eq!(error("-:", Via::UprobeEvents).errno, libc_errno::EINVAL);
    // Blank and comment-only lines are no-ops.
    assert_eq!(parse_command("   ", Via::UprobeEvents, &Events), Ok(None));
    let lines: Vec<&str> = command_lines("p /bin/sh:1 # a comment\n\n").collect();
    assert_eq!(lines, ["p /bin/sh:1 ", "", ""]);
}

/// (command, message, caret position) as the kernel logs them.
fn logged(line: &str, via: Via) -> (String, &'static str, usize, i32) {
    let e = error(line, via);
    let logged = e.logged.unwrap_or_else(|| panic!("{line}: not logged"));
    (logged.command, logged.message, logged.position, e.errno)
}

#[test]
fn errors_carry_the_kernels_messages_and_carets() {
    use libc_errno::*;
    let u = Via::UprobeEvents;
    assert_eq!(
        logged("p /bin/sh:10a", u),
        ("p /bin/sh:10a".into(), "Invalid uprobe offset", 10, EINVAL)
    );
    assert_eq!(
        logged("p /bin/sh:10(10)%return", u).1,
        "Reference counter has wrong suffix"
    );
    assert_eq!(logged("p /bin/sh:10(10)%return", u).2, 16, "under the %");
    assert_eq!(
        logged("p /bin/sh:10%hoge", u).1,
        "Invalid probed address suffix"
    );
    assert_eq!(
        logged("p /bin/sh:10 @symbol", u).1,
        "Symbol is not available with uprobe"
    );
    assert_eq!(
        logged("p /bin/sh:10 @+ab", u).1,
        "Invalid file offset value"
    );
    assert_eq!(
        logged("p /bin/sh:10 $retval", u).1,
        "$retval is not available on probe"
    );
    assert_eq!(
        logged("p /bin/sh:10 x=%ax:symbol", u).1,
        "Unknown type is specified"
    );
    assert_eq!(
        logged("p /bin/sh:10 x=%ax:symbol", u).2,
        19,
        "under the type"
    );
    assert_eq!(logged("p /bin/sh:10 %zz", u).1, "Invalid register name");
    assert_eq!(
        logged("p /bin/sh:10 +0(%ax", u).1,
        "Dereference brace is not closed"
    );
    assert_eq!(
        logged("p /bin/sh:10 +0%ax", u).1,
        "Dereference needs a brace"
    );
    assert_eq!(
        logged("p /bin/sh:10 +0($comm)", u).1,
        "$comm can not be dereferenced"
    );
    assert_eq!(
        logged("p /bin/sh:10 \\\"abc", u).1,
        "String is not closed with '\"'"
    );
    assert_eq!(logged("p /bin/sh:10 \\xyz", u).1, "Invalid immediate value");
    assert_eq!(
        logged("p /bin/sh:10 %ax:string", u).1,
        "String accepts only memory argument"
    );
    assert_eq!(
        logged("p /bin/sh:10 $comm:u8", u).1,
        "$comm and immediate-string only accepts string type"
    );
    assert_eq!(
        logged("p /bin/sh:10 a=%ax a=%bx", u).1,
        "This argument name is already used"
    );
    assert_eq!(
        logged("p /bin/sh:10 __probe_ip=%ax", u).1,
        "This argument name is already used"
    );
    assert_eq!(
        logged("p /bin/sh:10 =%ax", u).1,
        "Argument name is not specified"
    );
    assert_eq!(
        logged("p /bin/sh:10 9a=%ax", u).1,
        "Argument name must follow the same rules as C identifiers"
    );
    assert_eq!(
        logged("p /bin/sh:10 foo", u).1,
        "BTF is not available or not supported"
    );
    assert_eq!(
        logged("p /bin/sh:10 $arg1", u).1,
        "$arg* can be used only on function entry or exit"
    );
    assert_eq!(logged("p /bin/sh:10 $arg0", u).1, "Invalid argument number");
    assert_eq!(
        logged("p:/ev /bin/sh:10", u).1,
        "Group name is not specified"
    );
    assert_eq!(
        logged("p:g/9ev /bin/sh:10", u),
        (
            "p:g/9ev /bin/sh:10".into(),
            "Event name must follow the same rules as C identifiers",
            4,
            EINVAL
        )
    );
    assert_eq!(
        logged("p:g+/ev /bin/sh:10", u).1,
        "Group name must follow the same rules as C identifiers"
    );
    let long = format!("p:{} /bin/sh:10", "e".repeat(64));
    assert_eq!(logged(&long, u).1, "Event name is too long");
    let many: String = (0..129).map(|i| format!(" a{i}=%ax")).collect();
    assert_eq!(logged(&format!("p /bin/sh:10{many}"), u).3, E2BIG);
    let d = Via::DynamicEvents;
    assert_eq!(
        logged("e a.b", d),
        ("e a.b".into(), "Attached event does not exist", 2, ENODEV)
    );
    assert_eq!(
        logged("e foo", d).1,
        "This requires both group and event name to attach"
    );
    assert_eq!(
        logged("e syscalls/sys_enter_openat arg=$foo", d).1,
        "Invalid $-valiable specified"
    );
    assert_eq!(
        logged("e syscalls/sys_enter_openat arg=$foo", d).2,
        28,
        "under arg="
    );
    assert_eq!(
        logged("e syscalls.sys_enter_openat if", d).1,
        "No filter rule after 'if'"
    );
    // Refusals the kernel does not log.
    for silent in [
        "p bash:10",
        "p /bin/sh",
        "p /bin/sh:abc",
        "x /bin/sh:1",
        "p",
    ] {
        assert_eq!(
            error(silent, u),
            ProbeError {
                errno: EINVAL,
                logged: None
            },
            "{silent}"
        );
    }
}

#[test]
fn an_error_entry_reads_like_the_kernels() {
    let e = error("p /bin/sh:10a", Via::UprobeEvents).logged.unwrap();
    assert_eq!(
        e.entry_text(),
        "trace_uprobe: error: Invalid uprobe offset\n  Command: p /bin/sh:10a\n                     ^\n"
    );
}

#[test]
fn appending_needs_the_same_shape() {
    let a = define("p:ev /bin/sh:10 x=%ax", Via::UprobeEvents);
    let b = define("p:ev /bin/sh:20 x=%bx", Via::UprobeEvents);
    assert_eq!(a.same_event_shape(&b), Ok(()));
    assert!(!a.same_probe(&b));
    assert!(a.same_probe(&define("p:ev /bin/sh:10 x=%ax", Via::UprobeEvents)));
    let r = define("r:ev /bin/sh:10 x=%ax", Via::UprobeEvents);
    assert_eq!(
        a.same_event_shape(&r),
        Err(layout::ShapeMismatch::ProbeType)
    );
    let c = define("p:ev /bin/sh:10 y=%ax", Via::UprobeEvents);
    assert_eq!(
        a.same_event_shape(&c),
        Err(layout::ShapeMismatch::Arguments(0))
    );
    let d = define("p:ev /bin/sh:10 x=%ax z=%cx", Via::UprobeEvents);
    assert_eq!(
        a.same_event_shape(&d),
        Err(layout::ShapeMismatch::Arguments(1))
    );
}
