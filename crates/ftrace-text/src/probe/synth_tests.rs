//! Synthetic event commands checked against Linux 6.1 (Debian's 6.1.0-48 guest kernel, its
//! own tracefs): the listings, formats and refusals below are what that kernel answered.

use super::*;

/// A kernel with synthetic events, `wakeup_latency` already defined.
struct Kernel;

impl AttachTarget for Kernel {
    fn fields_of(&self, _: &str, _: &str) -> Option<Vec<(String, bool)>> {
        None
    }
    fn has_synthetic_events(&self) -> bool {
        true
    }
    fn synthetic_event_exists(&self, name: &str) -> bool {
        name == "wakeup_latency"
    }
}

fn define(line: &str, via: Via) -> ProbeDef {
    match parse_command(line, via, &Kernel) {
        Ok(Some(ProbeCommand::Define(def))) => def,
        other => panic!("{line}: {other:?}"),
    }
}

/// errno, message and caret column of a refused `synthetic_events` line.
fn refused(line: &str, via: Via) -> (i32, Option<(&'static str, usize)>) {
    let e = parse_command(line, via, &Kernel).expect_err(line);
    (e.errno, e.logged.map(|l| (l.message, l.position)))
}

#[test]
fn synthetic_events_are_listed_and_laid_out_as_the_kernel_does() {
    let s = Via::SyntheticEvents;
    let def = define("lat2 u64 lat; pid_t pid; char comm[16]; char fn[]", s);
    assert_eq!(
        (def.group.as_str(), def.event.as_str()),
        ("synthetic", "lat2")
    );
    assert_eq!(
        def.listing(),
        "s:synthetic/lat2\tu64 lat; pid_t pid; char[16] comm; char[] fn"
    );
    let format = def.layout(1338).format;
    assert!(format.ends_with(
        "\tfield:u64 lat;\toffset:8;\tsize:8;\tsigned:0;\n\
         \tfield:pid_t pid;\toffset:16;\tsize:4;\tsigned:1;\n\
         \tfield:char comm[];\toffset:24;\tsize:16;\tsigned:1;\n\
         \tfield:__data_loc char[] fn;\toffset:280;\tsize:8;\tsigned:1;\n\n\
         print fmt: \"lat=%llu, pid=%d, comm=%s, fn=%s\", REC->lat, REC->pid, REC->comm, \
         __get_str(fn)\n"
    ));
    // The legacy form: several fields in one `;` segment; every type 6.1 has.
    let def = define(
        "ev2 u64 lat pid_t pid unsigned int x; s8 a; unsigned char b; bool c; long d; \
         unsigned long e; gfp_t g; char[8] h; int i; u16 j; s64 k",
        s,
    );
    let format = def.layout(1339).format;
    for line in [
        "\tfield:unsigned int x;\toffset:24;\tsize:4;\tsigned:0;\n",
        "\tfield:bool c;\toffset:48;\tsize:1;\tsigned:1;\n",
        "\tfield:gfp_t g;\toffset:72;\tsize:4;\tsigned:0;\n",
        "\tfield:char h[];\toffset:80;\tsize:8;\tsigned:1;\n",
        "\tfield:int i;\toffset:336;\tsize:4;\tsigned:1;\n",
        "\tfield:s64 k;\toffset:352;\tsize:8;\tsigned:1;\n",
        "print fmt: \"lat=%llu, pid=%d, x=%u, a=%d, b=%u, c=%d, d=%ld, e=%lu, g=%x, h=%s, \
         i=%d, j=%u, k=%lld\"",
    ] {
        assert!(format.contains(line), "{line} in {format}");
    }
    // The format reader takes every field (a fixed string as the array it is).
    let fields: Vec<_> = crate::format::fields(&format).collect();
    assert_eq!(fields.len(), 4 + 13);
    assert_eq!(
        (fields[13].name, fields[13].offset, fields[13].size),
        ("h", 80, 8)
    );
    // Duplicate field names are not checked.
    assert_eq!(
        define("ev6 u64 a; u64 a", s).listing(),
        "s:synthetic/ev6\tu64 a; u64 a"
    );
    // dynamic_events: `s:[synthetic/]NAME`.
    let def = define("s:synthetic/dev1 u64 a; char s[]", Via::DynamicEvents);
    assert_eq!(def.listing(), "s:synthetic/dev1\tu64 a; char[] s");
    assert_eq!(define("s:dev2 u32 b", Via::DynamicEvents).event, "dev2");
    assert_eq!(
        parse_command("!ev2 u64 junk", s, &Kernel),
        Ok(Some(ProbeCommand::Remove {
            group: Some("synthetic".to_string()),
            event: "ev2".to_string(),
            words: Vec::new()
        }))
    );
}

#[test]
fn synthetic_event_errors_are_the_kernels() {
    let (s, d) = (Via::SyntheticEvents, Via::DynamicEvents);
    let e = libc_errno::EINVAL;
    let form = "Command must be of the form: <name> field[;field] ...";
    for line in [
        "myevent",
        "myevent; u64 a",
        "myevent u64",
        "mye;vent char str[]",
    ] {
        assert_eq!(refused(line, s), (e, Some((form, 0))), "{line}");
    }
    assert_eq!(
        refused("myevent ^chr arg", s),
        (e, Some(("Invalid type", 8)))
    );
    assert_eq!(
        refused("myevent char str; ^int", s),
        (e, Some(("Invalid field", 18)))
    );
    assert_eq!(
        refused("myevent char str[257]", s),
        (e, Some(("Invalid array specification", 13)))
    );
    assert_eq!(
        refused("wakeup_latency u64 lat", s),
        (libc_errno::EEXIST, Some(("Event already exists", 0)))
    );
    assert_eq!(refused("9bad u64 a", s), (e, Some(("Illegal name", 0))));
    assert_eq!(
        refused("ev3 unsigned x", s),
        (e, Some(("Incomplete type", 4)))
    );
    assert_eq!(refused("ev4 u64 x[4]", s), (e, Some(("Invalid type", 4))));
    assert_eq!(
        refused("ev5 char str[abc]", s),
        (e, Some(("Invalid array specification", 9)))
    );
    assert_eq!(
        refused("s:junk/myevent char str[", d),
        (
            e,
            Some((
                "Command must be of the form: s or -:[synthetic/]<name> field[;field] ...",
                0
            ))
        )
    );
    assert_eq!(refused("s:dev3", d), (e, Some((form, 0))));
    let too_many: String = (0..65).map(|i| format!("u64 f{i}; ")).collect();
    assert_eq!(
        refused(&format!("big {too_many}"), s),
        (e, Some(("Too many fields", 0)))
    );
}

/// `trace` shows a synthetic number through its field's unsigned width, as 6.1's
/// print_synth_event does: s8, char and s16 of -1 read 255 and 65535; s32 and s64 keep the sign.
#[test]
fn narrow_signed_synthetic_fields_print_as_the_kernel_shows_them() {
    use crate::format;
    use crate::record::{FieldValue, Record};
    use crate::render::CompiledFmt;
    let def = define(
        "narrow s8 a; char b; s16 c; s32 d; s64 e; u8 f",
        Via::SyntheticEvents,
    );
    let layout = def.layout(7);
    assert!(layout.format.ends_with(
        "print fmt: \"a=%d, b=%d, c=%d, d=%d, e=%lld, f=%u\", \
         REC->a, REC->b, REC->c, REC->d, REC->e, REC->f\n"
    ));
    let fields: Vec<format::Field<'_>> = format::fields(&layout.format).collect();
    let compiled = CompiledFmt::for_event("narrow", &layout.display_fmt, &fields);
    let mut values = vec![
        FieldValue::UInt(7),
        FieldValue::UInt(0),
        FieldValue::UInt(0),
    ];
    values.push(FieldValue::Int(1));
    values.extend([-1, -1, -1, -1, -1].map(FieldValue::Int));
    values.push(FieldValue::UInt(255));
    let record = Record {
        ts_ns: 0,
        cpu: 0,
        pid: 1,
        comm: "sh".into(),
        flags: 0,
        preempt_count: 0,
        event_id: 7,
        fields: values.into(),
    };
    let mut body = String::new();
    compiled.render(&record, &mut body);
    assert_eq!(body, "narrow: a=255 b=255 c=65535 d=-1 e=-1 f=255");
}
