use super::parse::parse_i64;
use super::*;
use crate::format::Field;
use crate::format::{fields, testdata::*};
use FilterErrorKind::*;

fn sw() -> Vec<Field<'static>> {
    fields(SCHED_SWITCH).collect()
}

/// Parses against sched_switch and returns (kind, pos, errno).
fn bad(text: &str) -> (FilterErrorKind, usize, i32) {
    let e = parse(text, &sw()).expect_err(text);
    (e.kind(), e.pos(), e.errno())
}

fn ok(text: &str) -> Filter {
    parse(text, &sw()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn rec<'v>(pairs: &'v [(&'v str, Value<'v>)]) -> impl Fn(&str) -> Option<Value<'v>> + 'v {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn m(filter: &str, pairs: &[(&str, Value<'_>)]) -> bool {
    ok(filter).matches(&rec(pairs))
}

#[test]
fn accepted_forms_keep_text() {
    for t in [
        "prev_pid == 0",
        "next_pid > 10 && prev_comm ~ \"sw*\"",
        "prev_pid == 0x10",
        "prev_pid == -5",
        "prev_pid != -0x10",
        "prev_pid == 0777",
        "prev_pid <= -9223372036854775808",
        "!prev_pid == 1",
        "!(prev_pid == 1)",
        "!!(prev_pid == 1)",
        "(((prev_pid==1)))",
        "prev_pid & 3",
        "prev_comm == 'sw'",
        "prev_comm ~ 'a\"'",
        "common_pid == 1",
        "cpu == 0",
        "CPU == 0",
        "common_cpu == 0",
        "comm == \"bash\"",
        "COMM ~ \"b*\"",
        "stacktrace == 1",
        "cpu & CPUS{0}",
        "cpu == CPUS{0-1}",
        "prev_pid & CPUS{0}",
        "prev_comm ~ \"\"",
        "prev_pid>=1",
        "prev_pid==1&&next_pid==2",
        "prev_pid == 1 && !(next_pid == 2 || prev_prio > 3)",
    ] {
        let f = ok(t);
        assert_eq!(f.text(), Some(t));
        assert_eq!(f.filter_file_text(), format!("{t}\n"));
    }
}

#[test]
fn trailing_whitespace_stripped_leading_kept() {
    assert_eq!(ok("  prev_pid==1   \n").text(), Some("  prev_pid==1"));
    // A dangling && / || is ignored by the kernel.
    assert_eq!(ok("prev_pid == 1 &&").text(), Some("prev_pid == 1 &&"));
    assert_eq!(ok("prev_pid == 1 || \n").text(), Some("prev_pid == 1 ||"));
}

#[test]
fn zero_clears() {
    for t in ["0", "0\n", " 0 "] {
        let f = ok(t);
        assert!(f.is_none());
        assert_eq!(f.filter_file_text(), "none\n");
        assert!(f.matches(&|_| None));
    }
}

#[test]
fn errors_match_kernel() {
    // (input, reason, caret position as in error_log, errno) observed on 6.18.
    let cases: &[(&str, FilterErrorKind, usize, i32)] = &[
        ("prev_pid = 5", InvalidOp, 10, 22),
        ("foo == 1", FieldNotFound, 4, 22),
        ("  foo == 1", FieldNotFound, 6, 22),
        ("prev_pid", InvalidOp, 9, 22),
        ("prev_pid ==", InvalidValue, 12, 22),
        ("prev_pid == \n", InvalidValue, 12, 22),
        ("(prev_pid == 1", TooManyOpen, 0, 2),
        ("((prev_pid == 1)", TooManyOpen, 0, 2),
        ("prev_pid == 1 (", TooManyOpen, 14, 2),
        ("prev_pid == 1)", TooManyClose, 13, 1),
        ("(prev_pid == 1))", TooManyClose, 15, 1),
        (")(", TooManyClose, 0, 1),
        ("prev_pid ==1)(", TooManyClose, 12, 1),
        ("prev_pid ~ \"a*\"", ExpectDigit, 12, 22),
        ("prev_comm > \"a\"", IllegalFieldOp, 13, 22),
        ("prev_comm & 1", ExpectString, 13, 22),
        ("prev_comm == abc", InvalidValue, 14, 22),
        ("prev_comm == \"abc", MissingQuote, 13, 3),
        ("prev_comm ~ \"", MissingQuote, 12, 3),
        ("prev_pid == abc", InvalidValue, 13, 22),
        ("prev_pid == 1.5", TooManyPreds, 13, 1),
        ("prev_pid == \"5\"", ExpectDigit, 13, 22),
        ("prev_comm == 5", ExpectString, 14, 22),
        ("prev_pid == 1 prev_pid == 2", TooManyPreds, 14, 1),
        ("prev_pid == 1 | prev_pid == 2", TooManyPreds, 14, 1),
        ("prev_pid == 1 & prev_pid == 2", TooManyPreds, 14, 1),
        ("prev_comm ~ sw*", InvalidValue, 13, 22),
        ("prev_comm==sw", InvalidValue, 12, 22),
        ("prev_pid >= 18446744073709551615", IllegalIntval, 13, 22),
        ("prev_pid == 0b11", IllegalIntval, 13, 22),
        ("prev_pid == 08", IllegalIntval, 13, 22),
        ("prev_pid == 0x", IllegalIntval, 13, 22),
        ("common_type == -1", IllegalIntval, 16, 22),
        ("prev_pid ==   -", IllegalIntval, 15, 22),
        ("prev_pid == +5", InvalidValue, 13, 22),
        (
            "prev_pid == 123456789012345678901234",
            OperandTooLong,
            37,
            22,
        ),
        ("prev_pid == 12345678901234567890123", IllegalIntval, 13, 22),
        ("!", NoFilter, 1, 22),
        ("!!", NoFilter, 2, 22),
        ("()", Errno(22), 0, 22),
        ("   ", Errno(22), 0, 22),
        ("\n", Errno(22), 0, 22),
        ("== 5", Errno(1), 0, 1),
        ("&& prev_pid == 1", Errno(1), 0, 1),
        ("|| prev_pid == 1", Errno(1), 0, 1),
        ("prev_pid == 1 &&& prev_pid == 2", Errno(1), 0, 1),
        ("prev_pid == 1 && ()", Errno(1), 0, 1),
        ("comm == 5", ExpectString, 9, 22),
        ("COMM & 1", ExpectString, 8, 22),
        ("comm < \"a\"", IllegalFieldOp, 8, 22),
        ("cpu ~ \"x\"", ExpectDigit, 7, 22),
        ("stacktrace ~ \"x\"", ExpectDigit, 14, 22),
        ("stacktrace", InvalidOp, 11, 22),
        ("1 == prev_pid", FieldNotFound, 2, 22),
        ("prev_pid ! = 1", InvalidOp, 10, 22),
        ("prev_pid =~ 1", InvalidOp, 10, 22),
        ("prev_pid=<1", InvalidOp, 9, 22),
        ("prev_pid.hex == 1", InvalidOp, 9, 22),
        ("prev_pid.function == 1", IllegalFieldOp, 22, 22),
        ("prev_state.function < x", InvalidOp, 23, 22),
        ("prev_state.function == sym", NoFunction, 27, 22),
        ("cpu & CPUS{0-99}", InvalidCpulist, 16, 22),
        ("cpu < CPUS{0-1}", IllegalFieldOp, 7, 22),
        ("prev_comm & CPUS{0}", IllegalFieldOp, 13, 22),
        ("cpu & CPUS{0", MissingBraceClose, 13, 22),
        ("cpu & CPUS0", MissingBraceOpen, 12, 22),
        ("cpu & {0}", InvalidValue, 7, 22),
    ];
    for &(text, kind, pos, errno) in cases {
        assert_eq!(bad(text), (kind, pos, errno), "{text}");
    }
}

#[test]
fn long_operands() {
    let ok_str = format!("prev_comm == \"{}\"", "a".repeat(255));
    ok(&ok_str);
    let long = format!("prev_comm == \"{}\"", "a".repeat(256));
    assert_eq!(bad(&long), (OperandTooLong, 271, 22));
    let mut big = String::from("prev_pid == 1");
    while big.len() + 17 <= MAX_FILTER_WRITE {
        big.push_str(" || prev_pid == 1");
    }
    while big.len() < MAX_FILTER_WRITE {
        big.push(' ');
    }
    ok(&big);
    big.push('\n');
    let e = parse(&big, &sw()).unwrap_err();
    assert_eq!((e.kind(), e.errno()), (WriteTooLarge, 22));
    assert_eq!(e.error_log_entry(), None);
    assert_eq!(e.filter_file_text(), None);
}

#[test]
fn rendering_of_errors() {
    let e = parse("foo == 1\n", &sw()).unwrap_err();
    assert_eq!(
        e.error_log_entry().unwrap(),
        "event filter parse error: error: Field not found\n  Command: foo == 1\n               ^\n"
    );
    assert_eq!(
        e.filter_file_text().unwrap(),
        "foo == 1\n    ^\nparse_error: Field not found\n\n"
    );
    let e = parse("prev_pid = 5", &sw()).unwrap_err();
    assert_eq!(
        e.filter_file_text().unwrap(),
        "prev_pid = 5\n          ^\nparse_error: Invalid operator\n\n"
    );
    // The filter view clamps the caret to the text, error_log does not.
    let e = parse("prev_pid", &sw()).unwrap_err();
    assert_eq!(
        e.filter_file_text().unwrap(),
        "prev_pid\n        ^\nparse_error: Invalid operator\n\n"
    );
    assert!(e
        .error_log_entry()
        .unwrap()
        .ends_with(&format!("\n{}^\n", " ".repeat(20))));
    let e = parse("== 5", &sw()).unwrap_err();
    assert_eq!(e.filter_file_text().unwrap(), "== 5\nError: (0)\n\n");
    assert_eq!(
        e.error_log_entry().unwrap(),
        "event filter parse error: error: Error\n  Command: == 5\n           ^\n"
    );
    assert_eq!(e.reason(), "Error");
    assert_eq!(
        parse("(x", &sw()).unwrap_err().to_string(),
        "Too many '(' (at byte 0)"
    );
}

#[test]
fn system_filters() {
    let hang: Vec<_> = fields(SCHED_PROCESS_HANG).collect();
    assert!(applies_to("prev_pid == 1", &sw()));
    assert!(!applies_to("prev_pid == 1", &hang));
    let e = parse_for_system("prev_pid == 1\n", &hang).unwrap_err();
    assert_eq!(
        e.filter_file_text().unwrap(),
        "prev_pid == 1\n^\nparse_error: Couldn't find or set field in one of a subsystem's events\n\n"
    );
    assert_eq!(
        e.error_log_entry().unwrap(),
        "event filter parse error: error: Couldn't find or set field in one of a subsystem's events\n  Command: prev_pid == 1\n           ^\n"
    );
    assert!(parse_for_system("0", &hang).unwrap().is_none());
    assert!(SYSTEM_FILTER_TEXT.ends_with("displayed here\n"));
}

#[test]
fn numeric_signed_and_unsigned() {
    use Value::*;
    assert!(m("prev_pid == -5", &[("prev_pid", Int(-5))]));
    assert!(m("prev_pid < 0", &[("prev_pid", Int(-5))]));
    assert!(!m("prev_pid > 0", &[("prev_pid", Int(-5))]));
    // 32-bit signed field: 0xffffffff is -1.
    assert!(m("prev_pid == -1", &[("prev_pid", UInt(0xffff_ffff))]));
    assert!(m("prev_pid < 0", &[("prev_pid", UInt(0xffff_ffff))]));
    // Unsigned 2-byte field: comparisons are unsigned, constants truncated.
    let ct = |v| [("common_type", UInt(v))];
    assert!(m("common_type > 100", &ct(65535)));
    assert!(m("common_type == 65536", &ct(0)));
    assert!(m("common_type >= 0x10", &ct(16)));
    assert!(!m("common_type <= 15", &ct(16)));
    assert!(m("common_type != 3", &ct(4)));
    let ps = |v| [("prev_state", Int(v))];
    assert!(m("prev_state <= 0x7fffffffffffffff", &ps(i64::MAX)));
    assert!(m("prev_state >= -9223372036854775808", &ps(i64::MIN)));
    // Wrong kind or missing value never matches.
    assert!(!m("prev_pid == 1", &[("prev_pid", Str("1"))]));
    assert!(!m("prev_pid == 1", &[]));
    assert!(!m("prev_comm == \"a\"", &[("prev_comm", Int(1))]));
}

#[test]
fn bit_test() {
    use Value::*;
    assert!(m("prev_state & 1", &[("prev_state", Int(3))]));
    assert!(!m("prev_state & 4", &[("prev_state", Int(3))]));
    assert!(m("prev_state & 0x80", &[("prev_state", Int(0x80))]));
    // Bits above the field's size do not count.
    assert!(!m(
        "common_type & 0x10000",
        &[("common_type", UInt(0x1_0000))]
    ));
    assert!(m("!(prev_state & 2)", &[("prev_state", Int(1))]));
}

#[test]
fn strings_and_globs() {
    use Value::*;
    let c = |s| [("prev_comm", Str(s))];
    assert!(m("prev_comm == \"swapper/0\"", &c("swapper/0")));
    assert!(!m("prev_comm == \"swapper*\"", &c("swapper/0")));
    assert!(m("prev_comm != \"bash\"", &c("sh")));
    assert!(m("prev_comm ~ \"swapper*\"", &c("swapper/1")));
    assert!(m("prev_comm ~ \"*per/1\"", &c("swapper/1")));
    assert!(m("prev_comm ~ \"*app*\"", &c("swapper/1")));
    assert!(m("prev_comm ~ \"*\"", &c("")));
    assert!(m("prev_comm ~ \"\"", &c("")));
    assert!(!m("prev_comm ~ \"\"", &c("a")));
    assert!(m("prev_comm ~ \"sw?pper/[0-9]\"", &c("swapper/7")));
    assert!(!m("prev_comm ~ \"sw?pper/[0-6]\"", &c("swapper/7")));
    assert!(m("prev_comm ~ \"[!s]*\"", &c("bash")));
    assert!(!m("prev_comm ~ \"[!s]*\"", &c("sh")));
    assert!(m("prev_comm ~ \"!swapper*\"", &c("bash")));
    assert!(!m("prev_comm ~ \"!swapper*\"", &c("swapper/0")));
    assert!(m("prev_comm ~ \"swapper/\\0\"", &c("swapper/0")));
    assert!(m("prev_comm ~ \"*apper?[01]\"", &c("swapper/1")));
    assert!(m("prev_comm ~ 'a[b'", &c("a[b")));
    // char[16]: only 16 bytes take part.
    assert!(m(
        "prev_comm == \"0123456789abcdefXYZ\"",
        &c("0123456789abcdef")
    ));
    // __data_loc strings compare whole.
    let exec: Vec<_> = fields(SCHED_PROCESS_EXEC).collect();
    let f = parse("filename ~ \"/usr/*\"", &exec).unwrap();
    assert!(f.matches(&|n| (n == "filename").then_some(Str("/usr/bin/true"))));
    let f = parse("comm == \"bash\"", &exec).unwrap();
    assert!(f.matches(&|n| (n == "comm").then_some(Str("bash"))));
    assert_eq!(f.field_names(), ["comm"]);
}

#[test]
fn glob_matcher() {
    let g = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
    assert!(g("a*b*c", "aXXbYYc"));
    assert!(!g("a*b*c", "aXXbYY"));
    assert!(g("*", ""));
    assert!(g("**", "abc"));
    assert!(!g("?", ""));
    assert!(g("[]a]", "]"));
    assert!(g("[!]a]", "b"));
    assert!(g("[a-]", "-"));
    assert!(g("[z-a]x", "zx") || !g("[z-a]x", "zx"));
    assert!(g("[abc", "[abc"));
    assert!(g("\\*", "*"));
    assert!(!g("\\*", "a"));
    assert!(g("a\\", "a\\"));
    assert!(g("*a*a*a*", "aaaa"));
    assert!(!g("*a*a*a*a*a", "aaaa"));
}

#[test]
fn precedence_parens_and_not() {
    use Value::*;
    let v = |a, b, c| {
        [
            ("prev_pid", Int(a)),
            ("next_pid", Int(b)),
            ("prev_prio", Int(c)),
        ]
    };
    // && binds tighter than || (checked live).
    let f = "prev_pid == 1 || next_pid == 1 && prev_prio == 1";
    assert!(m(f, &v(1, 0, 0)));
    assert!(!m(f, &v(0, 1, 0)));
    assert!(m(f, &v(0, 1, 1)));
    let f = "next_pid == 1 && prev_prio == 1 || prev_pid == 1";
    assert!(m(f, &v(1, 0, 0)));
    let f = "(prev_pid == 1 || next_pid == 1) && prev_prio == 1";
    assert!(!m(f, &v(1, 0, 0)));
    assert!(m(f, &v(1, 0, 1)));
    assert!(m("!prev_pid == 1", &v(0, 0, 0)));
    assert!(!m("!prev_pid == 1", &v(1, 0, 0)));
    assert!(m("!prev_pid == 1 && next_pid == 2", &v(0, 2, 0)));
    assert!(!m("!prev_pid == 1 && next_pid == 2", &v(0, 3, 0)));
    let f = "!(prev_pid == 1 || next_pid == 1)";
    assert!(m(f, &v(0, 0, 0)));
    assert!(!m(f, &v(0, 1, 0)));
    assert!(m("!!(prev_pid == 1)", &v(1, 0, 0)));
    assert!(m("!(!prev_pid == 1)", &v(1, 0, 0)));
    let f = "prev_pid == 1 && !(next_pid == 2 || (prev_prio > 3 && !next_pid == 5))";
    assert!(m(f, &v(1, 5, 9)));
    assert!(!m(f, &v(1, 4, 9)));
    assert!(m("prev_pid == 1 &&", &v(1, 0, 0)));
}

#[test]
fn cpus() {
    use Value::*;
    let c = |n| [("common_cpu", Int(n))];
    assert!(m("cpu & CPUS{1,3-5}", &c(4)));
    assert!(!m("cpu & CPUS{1,3-5}", &c(2)));
    assert!(m("CPU == CPUS{3}", &c(3)));
    assert!(!m("cpu == CPUS{3-4}", &c(3)));
    assert!(m("cpu != CPUS{3-4}", &c(3)));
    assert!(m("cpu & CPUS{0-7:1/4}", &c(4)));
    assert!(!m("cpu & CPUS{0-7:1/4}", &c(5)));
    assert!(m("cpu & CPUS{N}", &c(63)));
    assert!(m("common_cpu & CPUS{all}", &c(17)));
    assert!(m("cpu & CPUS{0,,1}", &c(1)));
    assert!(m("cpu & CPUS{ 0}", &c(0)));
    for bad_list in ["", "a", "1-", "3-1", "64", "1:1/2", "0-1:2/1"] {
        let t = format!("cpu & CPUS{{{bad_list}}}");
        assert_eq!(bad(&t).0, InvalidCpulist, "{t}");
    }
    let f = parse_with_nr_cpus("cpu & CPUS{0-3}", &sw(), 2).unwrap_err();
    assert_eq!((f.kind(), f.pos()), (InvalidCpulist, 15));
}

#[test]
fn numbers() {
    assert_eq!(parse_u64("0x1F"), Some(31));
    assert_eq!(parse_u64("010"), Some(8));
    assert_eq!(parse_u64("0"), Some(0));
    assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_u64("18446744073709551616"), None);
    assert_eq!(parse_u64("-1"), None);
    assert_eq!(parse_i64("-0x8000000000000000"), Some(i64::MIN));
    assert_eq!(parse_i64("-0x8000000000000001"), None);
    assert_eq!(parse_i64("9223372036854775808"), None);
    assert_eq!(parse_i64("-"), None);
    assert_eq!(parse_i64("-0"), Some(0));
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s, &sw());
        let _ = parse_for_system(&s, &sw());
    }

    #[test]
    fn never_panics_on_filter_alphabet(s in "[a-z_ ()!&|=<>~'\"0-9x{}CPUS,.*?\\[\\]-]{0,60}") {
        if let Ok(f) = parse(&s, &sw()) {
            let _ = f.matches(&|_| Some(Value::Int(1)));
            let _ = f.matches(&|_| Some(Value::Str("swapper")));
        } else if let Err(e) = parse(&s, &sw()) {
            let _ = e.error_log_entry();
            let _ = e.filter_file_text();
        }
    }

    #[test]
    fn glob_never_panics(p in "[a*?\\[\\]!\\\\-]{0,12}", s in "[a\\[\\]!-]{0,12}") {
        let _ = glob_match(p.as_bytes(), s.as_bytes());
    }
}
