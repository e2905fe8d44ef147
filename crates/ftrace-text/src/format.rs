//! Parsing of an event's `format` file, in the exact text layout the kernel prints.
//!
//! Everything here borrows from the input text, so callers can parse formats on the fly
//! without keeping a second copy of each event's field table.

/// One `field:` line of a `format` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// C type as printed, without the field name or its `[N]` suffix
    /// (e.g. `char`, `pid_t`, `unsigned long`, `__data_loc char[]`, `const char *`).
    pub ty: &'a str,
    /// Field name (e.g. `prev_comm`).
    pub name: &'a str,
    /// `Some(N)` for `name[N]`, `Some(0)` for `name[]`, `None` for scalars.
    pub array_len: Option<u32>,
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// The kernel's `signed:` flag.
    pub signed: bool,
    /// True for fields of the first block (the `common_*` fields).
    pub common: bool,
}

/// Iterates over the fields of a `format` text, skipping lines that do not parse.
pub fn fields(format: &str) -> impl Iterator<Item = Field<'_>> {
    // The common block is the first run of field lines; the first blank line after a
    // field line ends it.
    let mut common = true;
    let mut seen_field = false;
    format.lines().filter_map(move |line| {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if seen_field {
                common = false;
            }
            return None;
        }
        let field = parse_field_line(trimmed, common)?;
        seen_field = true;
        Some(field)
    })
}

fn parse_field_line(line: &str, common: bool) -> Option<Field<'_>> {
    let rest = line.strip_prefix("field:")?;
    let mut parts = rest.split(';').map(str::trim);
    let decl = parts.next()?;
    let mut offset = None;
    let mut size = None;
    let mut signed = None;
    for part in parts {
        if let Some(v) = part.strip_prefix("offset:") {
            offset = Some(v.parse().ok()?);
        } else if let Some(v) = part.strip_prefix("size:") {
            size = Some(v.parse().ok()?);
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = Some(match v {
                "0" => false,
                "1" => true,
                _ => return None,
            });
        }
    }
    let (ty, name, array_len) = split_decl(decl)?;
    Some(Field {
        ty,
        name,
        array_len,
        offset: offset?,
        size: size?,
        signed: signed?,
        common,
    })
}

/// Splits `unsigned long args[]` into type, name and array length.
fn split_decl(decl: &str) -> Option<(&str, &str, Option<u32>)> {
    let decl = decl.trim();
    // The name is the last word; `char *name` glues the `*` to the name, so it goes back
    // to the type.
    let mut name_start = decl.rfind(char::is_whitespace)? + 1;
    while decl[name_start..].starts_with('*') {
        name_start += 1;
    }
    let ty = decl[..name_start].trim_end();
    let mut name = &decl[name_start..];
    let mut array_len = None;
    if let Some(open) = name.find('[') {
        let inner = name[open + 1..].strip_suffix(']')?;
        array_len = Some(if inner.is_empty() {
            0
        } else {
            inner.parse().ok()?
        });
        name = &name[..open];
    }
    if ty.is_empty() || name.is_empty() {
        return None;
    }
    Some((ty, name, array_len))
}

/// The text after `print fmt: `.
pub fn print_fmt(format: &str) -> Option<&str> {
    format.lines().find_map(|l| l.strip_prefix("print fmt: "))
}

/// The event name and numeric id from the `name:` and `ID:` lines.
pub fn name_and_id(format: &str) -> Option<(&str, u32)> {
    let mut name = None;
    let mut id = None;
    for line in format.lines() {
        if let Some(v) = line.strip_prefix("name: ") {
            name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("ID: ") {
            id = v.trim().parse().ok();
        }
        if name.is_some() && id.is_some() {
            break;
        }
    }
    Some((name?, id?))
}

/// True for fields the filter language treats as strings.
///
/// Mirrors the kernel's type classification: `__data_loc`/`__rel_loc` char arrays, fixed
/// char arrays (including `unsigned char x[N]`), and `char *`/`const char *` pointers.
pub fn is_string(field: &Field<'_>) -> bool {
    let ty = field.ty;
    if ty.contains("__data_loc") || ty.contains("__rel_loc") {
        return ty.contains("char");
    }
    if (field.array_len.is_some() || ty.contains('[')) && ty.contains("char") {
        return true;
    }
    matches!(ty, "char *" | "const char *")
}

/// Looks a field up by name.
pub fn find<'f, 'a>(fields: &'f [Field<'a>], name: &str) -> Option<&'f Field<'a>> {
    fields.iter().find(|f| f.name == name)
}

/// Real `format` texts copied from a 6.18 kernel's tracefs, for tests.
#[cfg(test)]
pub(crate) mod testdata {
    pub(crate) const SCHED_SWITCH: &str = r#"name: sched_switch
ID: 372
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:char prev_comm[16];	offset:8;	size:16;	signed:0;
	field:pid_t prev_pid;	offset:24;	size:4;	signed:1;
	field:int prev_prio;	offset:28;	size:4;	signed:1;
	field:long prev_state;	offset:32;	size:8;	signed:1;
	field:char next_comm[16];	offset:40;	size:16;	signed:0;
	field:pid_t next_pid;	offset:56;	size:4;	signed:1;
	field:int next_prio;	offset:60;	size:4;	signed:1;

print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), "|", { 0x00000001, "S" }, { 0x00000002, "D" }, { 0x00000004, "T" }, { 0x00000008, "t" }, { 0x00000010, "X" }, { 0x00000020, "Z" }, { 0x00000040, "P" }, { 0x00000080, "I" }) : "R", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio
"#;
    pub(crate) const SCHED_PROCESS_EXEC: &str = r#"name: sched_process_exec
ID: 365
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;
	field:pid_t pid;	offset:12;	size:4;	signed:1;
	field:pid_t old_pid;	offset:16;	size:4;	signed:1;

print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid
"#;
    pub(crate) const FTRACE_FUNCTION: &str = r#"name: function
ID: 1
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:unsigned long ip;	offset:8;	size:8;	signed:0;
	field:unsigned long parent_ip;	offset:16;	size:8;	signed:0;
	field:unsigned long args[];	offset:24;	size:0;	signed:0;

print fmt: " %ps <-- %ps", (void *)REC->ip, (void *)REC->parent_ip
"#;
    pub(crate) const SOCK_EXCEED_BUF_LIMIT: &str = r#"name: sock_exceed_buf_limit
ID: 2288
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:char name[32];	offset:8;	size:32;	signed:0;
	field:long sysctl_mem[3];	offset:40;	size:24;	signed:1;
	field:long allocated;	offset:64;	size:8;	signed:1;
	field:int sysctl_rmem;	offset:72;	size:4;	signed:1;
	field:int rmem_alloc;	offset:76;	size:4;	signed:1;
	field:int sysctl_wmem;	offset:80;	size:4;	signed:1;
	field:int wmem_alloc;	offset:84;	size:4;	signed:1;
	field:int wmem_queued;	offset:88;	size:4;	signed:1;
	field:int kind;	offset:92;	size:4;	signed:1;

print fmt: "proto:%s sysctl_mem=%ld,%ld,%ld allocated=%ld sysctl_rmem=%d rmem_alloc=%d sysctl_wmem=%d wmem_alloc=%d wmem_queued=%d kind=%s", REC->name, REC->sysctl_mem[0], REC->sysctl_mem[1], REC->sysctl_mem[2], REC->allocated, REC->sysctl_rmem, REC->rmem_alloc, REC->sysctl_wmem, REC->wmem_alloc, REC->wmem_queued, __print_symbolic(REC->kind, { 0, "SK_MEM_SEND" }, { 1, "SK_MEM_RECV" })
"#;
    pub(crate) const SYS_ENTER_OPENAT: &str = r#"name: sys_enter_openat
ID: 782
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:int dfd;	offset:16;	size:8;	signed:0;
	field:const char * filename;	offset:24;	size:8;	signed:0;
	field:int flags;	offset:32;	size:8;	signed:0;
	field:umode_t mode;	offset:40;	size:8;	signed:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
"#;
    pub(crate) const SCHED_PROCESS_HANG: &str = r#"name: sched_process_hang
ID: 361
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:__data_loc char[] comm;	offset:8;	size:4;	signed:0;
	field:pid_t pid;	offset:12;	size:4;	signed:1;

print fmt: "comm=%s pid=%d", __get_str(comm), REC->pid
"#;
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    fn all(text: &str) -> Vec<Field<'_>> {
        fields(text).collect()
    }

    #[test]
    fn sched_switch_fields() {
        let f = all(SCHED_SWITCH);
        assert_eq!(f.len(), 11);
        assert_eq!(
            f[0],
            Field {
                ty: "unsigned short",
                name: "common_type",
                array_len: None,
                offset: 0,
                size: 2,
                signed: false,
                common: true
            }
        );
        assert!(f[..4].iter().all(|f| f.common));
        assert!(f[4..].iter().all(|f| !f.common));
        assert_eq!(
            f[4],
            Field {
                ty: "char",
                name: "prev_comm",
                array_len: Some(16),
                offset: 8,
                size: 16,
                signed: false,
                common: false
            }
        );
        assert_eq!(
            (f[5].ty, f[5].name, f[5].signed),
            ("pid_t", "prev_pid", true)
        );
        assert_eq!((f[7].ty, f[7].offset, f[7].size), ("long", 32, 8));
        assert!(is_string(&f[4]));
        assert!(!is_string(&f[5]));
        assert_eq!(name_and_id(SCHED_SWITCH), Some(("sched_switch", 372)));
        let pf = print_fmt(SCHED_SWITCH).unwrap();
        assert!(pf.starts_with("\"prev_comm=%s prev_pid=%d"));
        assert!(pf.ends_with("REC->next_prio"));
    }

    #[test]
    fn data_loc_fields() {
        let f = all(SCHED_PROCESS_EXEC);
        let fname = find(&f, "filename").unwrap();
        assert_eq!(fname.ty, "__data_loc char[]");
        assert_eq!(fname.array_len, None);
        assert_eq!((fname.offset, fname.size), (8, 4));
        assert!(is_string(fname));
        assert!(!is_string(find(&f, "pid").unwrap()));
        assert_eq!(
            name_and_id(SCHED_PROCESS_EXEC),
            Some(("sched_process_exec", 365))
        );
    }

    #[test]
    fn ftrace_function_flexible_array() {
        let f = all(FTRACE_FUNCTION);
        assert_eq!(f.len(), 7);
        let args = find(&f, "args").unwrap();
        assert_eq!(
            (args.ty, args.array_len, args.size),
            ("unsigned long", Some(0), 0)
        );
        assert!(!is_string(args));
        assert_eq!(name_and_id(FTRACE_FUNCTION), Some(("function", 1)));
        assert_eq!(
            print_fmt(FTRACE_FUNCTION),
            Some("\" %ps <-- %ps\", (void *)REC->ip, (void *)REC->parent_ip")
        );
    }

    #[test]
    fn signed_array_and_char_array() {
        let f = all(SOCK_EXCEED_BUF_LIMIT);
        let mem = find(&f, "sysctl_mem").unwrap();
        assert_eq!(
            (mem.ty, mem.array_len, mem.size, mem.signed),
            ("long", Some(3), 24, true)
        );
        assert!(!is_string(mem));
        let name = find(&f, "name").unwrap();
        assert_eq!(name.array_len, Some(32));
        assert!(is_string(name));
    }

    #[test]
    fn pointer_types() {
        let f = all(SYS_ENTER_OPENAT);
        let fname = find(&f, "filename").unwrap();
        assert_eq!(fname.ty, "const char *");
        assert!(is_string(fname));
        assert_eq!(find(&f, "__syscall_nr").unwrap().ty, "int");
        let (ty, name, len) = split_decl("char *comm").unwrap();
        assert_eq!((ty, name, len), ("char *", "comm", None));
        let f = Field {
            ty,
            name,
            array_len: len,
            offset: 0,
            size: 8,
            signed: false,
            common: false,
        };
        assert!(is_string(&f));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "name: x\nID: 7\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n\
                    \tfield:int;\toffset:4;\tsize:4;\tsigned:1;\n\
                    \tfield:int b[x];\toffset:4;\tsize:4;\tsigned:1;\n\
                    \tfield:int c;\toffset:z;\tsize:4;\tsigned:1;\n\
                    \tfield:int d;\toffset:8;\tsize:4;\n\
                    \tfield:int e;\toffset:8;\tsize:4;\tsigned:2;\n\
                    \n\tfield:u8 f;\toffset:12;\tsize:1;\tsigned:0;\n\nprint fmt: \"\"\n";
        let f = all(text);
        assert_eq!(f.len(), 2);
        assert!(f[0].common && f[0].name == "a");
        assert!(!f[1].common && f[1].name == "f");
        assert_eq!(name_and_id(text), Some(("x", 7)));
        assert_eq!(name_and_id("name: x\n"), None);
        assert_eq!(print_fmt("nothing"), None);
    }
}
