//! Kprobe commands checked against Linux 6.1 (Debian's 6.1.0-48 guest kernel, its own tracefs):
//! every accepted listing, format and refused command with its `error_log` entry below is what
//! that kernel answered.

use super::*;

/// A kernel with kprobes and a few functions (`dup_fn` twice, as static functions can be).
struct Kernel;

impl AttachTarget for Kernel {
    fn fields_of(&self, _: &str, _: &str) -> Option<Vec<(String, bool)>> {
        None
    }
    fn has_kprobes(&self) -> bool {
        true
    }
    fn functions_named(&self, symbol: &str) -> usize {
        match symbol {
            "vfs_read" | "vfs_write" | "vfs_open" | "ext4:ext4_file_read_iter" => 1,
            "dup_fn" => 2,
            _ => 0,
        }
    }
}

fn define(line: &str) -> ProbeDef {
    match parse_command(line, Via::KprobeEvents, &Kernel) {
        Ok(Some(ProbeCommand::Define(def))) => def,
        other => panic!("{line}: {other:?}"),
    }
}

/// The refusal's errno, message and caret column (in `Command: ...`), or the errno alone.
fn refused(line: &str) -> (i32, Option<(&'static str, usize)>) {
    let e = parse_command(line, Via::KprobeEvents, &Kernel).expect_err(line);
    (e.errno, e.logged.map(|l| (l.message, l.position)))
}

#[test]
fn kprobes_are_named_and_listed_as_the_kernel_lists_them() {
    let def = define("p vfs_read");
    assert_eq!(
        (def.group.as_str(), def.event.as_str()),
        ("kprobes", "p_vfs_read_0")
    );
    assert_eq!(def.listing(), "p:kprobes/p_vfs_read_0 vfs_read");
    assert_eq!(define("r vfs_read").event, "r_vfs_read_0");
    assert_eq!(
        define("r100:mx vfs_write").listing(),
        "r100:kprobes/mx vfs_write"
    );
    let def = define("p:ret2 vfs_write%return");
    assert!(def.is_return());
    assert_eq!(define("p:grp.ev2 vfs_read").listing(), "p:grp/ev2 vfs_read");
    assert_eq!(
        define("p:mem vfs_read +0(%di):u64 +8(+0(%si)):string +u0($arg2):ustring").listing(),
        "p:kprobes/mem vfs_read arg1=+0(%di):u64 arg2=+8(+0(%si)):string arg3=+u0($arg2):ustring"
    );
    assert_eq!(
        define("p:x14 vfs_read \\1:u8 \\\"hi\\\":string").listing(),
        "p:kprobes/x14 vfs_read arg1=\\1:u8 arg2=\\\"hi\\\":string"
    );
    assert_eq!(
        define("p:off vfs_read+5").listing(),
        "p:kprobes/off vfs_read+5"
    );
    // A module's function: no uniqueness check, and the `:` becomes `_` in the name.
    assert_eq!(
        define("p ext4:ext4_file_read_iter").event,
        "p_ext4_ext4_file_read_iter_0"
    );
    assert!(define("p:x2 vfs_read $arg99").args[0].fetch == Fetch::Arg(99));
}

#[test]
fn kprobe_formats_follow_the_kernel() {
    let format = define("r:myr vfs_read $retval").layout(1341).format;
    assert!(format.contains(
        "\tfield:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;\n\
         \tfield:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;\n\
         \tfield:u64 arg1;\toffset:24;\tsize:8;\tsigned:0;\n"
    ));
    assert!(format.ends_with(
        "print fmt: \"(%lx <- %lx) arg1=0x%Lx\", REC->__probe_func, REC->__probe_ret_ip, REC->arg1\n"
    ));
    let format = define("p:mem vfs_read +0(%di):u64 +8(+0(%si)):string +u0($arg2):ustring")
        .layout(1344)
        .format;
    assert!(format.ends_with(
        "print fmt: \"(%lx) arg1=%Lu arg2=\\\"%s\\\" arg3=\\\"%s\\\"\", REC->__probe_ip, \
         REC->arg1, __get_str(arg2), __get_str(arg3)\n"
    ));
    let format = define("p:x8 vfs_read a=$arg1:symbol").layout(1352).format;
    assert!(format.contains("\tfield:u64 a;\toffset:16;\tsize:8;\tsigned:0;\n"));
    assert!(format.ends_with("print fmt: \"(%lx) a=%pS\", REC->__probe_ip, REC->a\n"));
    let format = define("p:x14 vfs_read \\1:u8 \\\"hi\\\":string")
        .layout(1355)
        .format;
    assert!(format.contains("\tfield:__data_loc char[] arg2;\toffset:17;\tsize:4;\tsigned:1;\n"));
    // The kernel prints kprobes with their own output: the fmt `trace` uses is the arguments'.
    assert_eq!(
        define("p:x8 vfs_read a=$arg1:symbol").layout(1).display_fmt,
        "\" a=%pS\", REC->a"
    );
}

#[test]
fn kprobe_errors_are_the_kernels() {
    let e = libc_errno::EINVAL;
    let enoent = libc_errno::ENOENT;
    let place = "Invalid probed address or symbol";
    assert_eq!(
        refused("p:bad1 no_such_function_xyz"),
        (enoent, Some((place, 7)))
    );
    assert_eq!(
        refused("p:bad2 vfs_read+4 $arg1"),
        (e, Some(("Invalid $-valiable specified", 18)))
    );
    assert_eq!(
        refused("p:bad3 vfs_read $retval"),
        (e, Some(("$retval is not available on probe", 16)))
    );
    assert_eq!(
        refused("r:bad4 vfs_read+4"),
        (e, Some(("Retprobe address must be an function entry", 7)))
    );
    assert_eq!(
        refused("p5:bad5 vfs_read"),
        (e, Some(("Maxactive is not for kprobe", 1)))
    );
    assert_eq!(
        refused("r5000:bad6 vfs_write"),
        (e, Some(("Maxactive is too big", 1)))
    );
    assert_eq!(
        refused("r0:bad7 vfs_write"),
        (e, Some(("Invalid maxactive number", 1)))
    );
    assert_eq!(
        refused("p:bad8 vfs_read%foo"),
        (e, Some(("Invalid probed address suffix", 15)))
    );
    assert_eq!(
        refused("p:sym2 vfs_read @no_such_sym_xyz"),
        (enoent, Some((place, 7)))
    );
    assert_eq!(
        refused("p:x1 vfs_read $arg0"),
        (e, Some(("Invalid argument number", 14)))
    );
    assert_eq!(
        refused("p:x3 vfs_read $argx"),
        (e, Some(("Invalid $-valiable specified", 14)))
    );
    assert_eq!(
        refused("p:x4 vfs_read %zz"),
        (e, Some(("Invalid register name", 14)))
    );
    assert_eq!(
        refused("p:x5 vfs_read @+10"),
        (e, Some(("File offset is not available with kprobe", 14)))
    );
    assert_eq!(
        refused("p:x6 vfs_read $stack99999"),
        (e, Some(("Invalid stack number", 14)))
    );
    assert_eq!(
        refused("p:x9 vfs_read a=$arg1:u7"),
        (e, Some(("Unknown type is specified", 22)))
    );
    assert_eq!(
        refused("r:x10 vfs_read $arg1"),
        (e, Some(("Invalid $-valiable specified", 15)))
    );
    assert_eq!(refused("p:x11 vfs_read+0x100000000"), (e, Some((place, 6))));
    assert_eq!(refused("p:x12 vfs_read-4"), (e, Some((place, 6))));
    assert_eq!(
        refused("p:off vfs_read+4"),
        (
            libc_errno::EILSEQ,
            Some(("Probe point is not an instruction boundary", 6))
        )
    );
    assert_eq!(refused("p:x15 vfs_read $comm:u32"), (e, None));
    assert_eq!(
        refused("p:x16 vfs_read a=%di a=%si"),
        (e, Some(("This argument name is already used", 21)))
    );
    assert_eq!(
        refused("p:x17 vfs_read common_pid=%di"),
        (e, Some(("This argument name is already used", 15)))
    );
    assert_eq!(refused("p:x18 /bin/sh:0x10"), (e, None), "a uprobe's place");
    assert_eq!(
        refused("p:x23 vfs_read %ax:x16 %bx:s8 %cx:char %dx:x64"),
        (e, Some(("Unknown type is specified", 34)))
    );
    assert_eq!(
        refused("p:x24 vfs_read a=$stack:string"),
        (e, Some(("String accepts only memory argument", 24)))
    );
    assert_eq!(
        refused("r:x25 vfs_read %return"),
        (e, Some(("Invalid register name", 15)))
    );
    assert_eq!(
        refused("p:9bad vfs_read"),
        (
            e,
            Some(("Event name must follow the same rules as C identifiers", 2))
        )
    );
    assert_eq!(
        refused("p:x28 vfs_read+0x10%return"),
        (e, Some(("Retprobe address must be an function entry", 6)))
    );
    assert_eq!(
        refused("p:u dup_fn"),
        (
            libc_errno::EADDRNOTAVAIL,
            Some(("The symbol is not unique", 4))
        )
    );
    assert_eq!(
        refused("p:a 0x1234"),
        (enoent, Some((place, 4))),
        "no kernel text"
    );
}

#[test]
fn dynamic_events_hands_uprobe_places_on() {
    let parse = |line| parse_command(line, Via::DynamicEvents, &Kernel);
    assert!(matches!(
        parse("p:dyn vfs_read"),
        Ok(Some(ProbeCommand::Define(ProbeDef {
            kind: ProbeKind::Kprobe { .. },
            ..
        })))
    ));
    assert!(matches!(
        parse("p:dyn2 /bin/sh:0x10"),
        Ok(Some(ProbeCommand::Define(ProbeDef {
            kind: ProbeKind::Uprobe { .. },
            ..
        })))
    ));
    // uprobe_events never parses kprobes.
    assert!(parse_command("p:k vfs_read", Via::UprobeEvents, &Kernel).is_err());
}
