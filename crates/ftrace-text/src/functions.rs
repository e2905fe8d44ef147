//! The kernel's traceable functions (`available_filter_functions`) and the language of
//! `set_ftrace_filter` / `set_ftrace_notrace`: names and globs as `filter_parse_regex` and
//! `ftrace_match` read them, `!` to remove, `:mod:<module>` for a module's functions.
//!
//! Functions are numbered by their line in `available_filter_functions`; a simulated kernel
//! gives function `n` the text address [`FunctionTable::address`] so that records and
//! `trace_pipe_raw` pages carry plausible `ip` values that render back to names.

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Where the simulated kernel's text starts (x86-64's `_text` without KASLR).
const TEXT_BASE: u64 = 0xffff_ffff_8100_0000;
/// Distance between two simulated functions: each function's size.
pub const FUNCTION_STRIDE: u64 = 0x40;
/// Most patterns one `set_ftrace_filter`/`set_ftrace_notrace` write may hold that need a walk
/// of the whole list (globs, `:mod:`): each costs host CPU, and the kernel's own bound (a
/// page per write, about a thousand patterns) would cost seconds. Plain names are looked up in
/// an index and are not counted.
pub const MAX_PATTERNS_PER_WRITE: usize = 64;

/// The functions of one kernel, in `available_filter_functions` order: the lines in one
/// string and where each starts (a tenth of the memory of a string per function).
#[derive(Debug, Clone, Default)]
pub struct FunctionTable {
    /// Every line as listed (`name`, or `name [module]`), each followed by `\n`.
    text: Box<str>,
    /// Where each line starts in `text`.
    starts: Vec<u32>,
    /// Line numbers in the order of their names (module suffixes aside), made the first time
    /// a plain name is looked up.
    by_name: OnceLock<Box<[u32]>>,
}

/// A rejected `set_ftrace_filter` / `set_ftrace_notrace` token (the kernel answers EINVAL
/// and logs nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionFilterError {
    /// No function matches the name or glob.
    #[error("no function matches {0:?}")]
    NoMatch(String),
    /// `function:command` (function triggers are not simulated).
    #[error("function commands are not simulated: {0:?}")]
    Command(String),
    /// More than [`MAX_PATTERNS_PER_WRITE`] globs in one write.
    #[error("more than {MAX_PATTERNS_PER_WRITE} patterns in one write (write them in several)")]
    TooManyPatterns,
}

impl FunctionTable {
    /// The table of an `available_filter_functions` text.
    pub fn parse(list: &str) -> FunctionTable {
        let mut text = String::with_capacity(list.len());
        let mut starts = Vec::new();
        for line in list.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            starts.push(text.len() as u32);
            text.push_str(line);
            text.push('\n');
        }
        FunctionTable {
            text: text.into(),
            starts,
            by_name: OnceLock::new(),
        }
    }

    /// The functions whose name (module suffix aside) is `name`, in list order.
    fn exactly(&self, name: &str) -> &[u32] {
        let name_of = |n: u32| split_module(self.line(n).unwrap_or("")).0;
        let index = self.by_name.get_or_init(|| {
            let mut index: Vec<u32> = (0..self.starts.len() as u32).collect();
            index.sort_by(|&a, &b| name_of(a).cmp(name_of(b)).then(a.cmp(&b)));
            index.into()
        });
        let from = index.partition_point(|&n| name_of(n) < name);
        let to = from + index[from..].partition_point(|&n| name_of(n) == name);
        &index[from..to]
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none (a kernel that did not show its list).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Function `n` as the kernel prints it (`%ps`): its name, with ` [module]` for a
    /// module's.
    pub fn line(&self, n: u32) -> Option<&str> {
        let start = *self.starts.get(n as usize)? as usize;
        let end = self.text[start..].find('\n')? + start;
        Some(&self.text[start..end])
    }

    /// Function `n`'s name, without its module.
    pub fn name(&self, n: u32) -> Option<&str> {
        self.line(n).map(|line| split_module(line).0)
    }

    /// Every line, in order.
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    /// The simulated text address of function `n`.
    pub fn address(n: u32) -> u64 {
        TEXT_BASE + u64::from(n) * FUNCTION_STRIDE
    }

    /// The function at `address` (as [`FunctionTable::address`] gives them).
    pub fn at(&self, address: u64) -> Option<&str> {
        let offset = address.checked_sub(TEXT_BASE)?;
        if offset % FUNCTION_STRIDE != 0 {
            return None;
        }
        self.line(u32::try_from(offset / FUNCTION_STRIDE).ok()?)
    }

    /// The function `address` falls in and how far into it, as `%pS` prints it
    /// (`vfs_read+0x5/0x40`); `None` outside the simulated text.
    pub fn containing(&self, address: u64) -> Option<(&str, u64)> {
        let offset = address.checked_sub(TEXT_BASE)?;
        let name = self.line(u32::try_from(offset / FUNCTION_STRIDE).ok()?)?;
        Some((name, offset % FUNCTION_STRIDE))
    }

    /// The functions called `symbol` (`MODULE:NAME` for a module's), as kallsyms finds
    /// them; ftrace's placeholders for unnamed addresses are not symbols.
    pub fn named<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = u32> + 'a {
        let (module, name) = match symbol.split_once(':') {
            Some((module, name)) => (Some(module), name),
            None => (None, symbol),
        };
        let found = if name.starts_with("__ftrace_invalid_address__") {
            &[][..]
        } else {
            self.exactly(name)
        };
        found.iter().copied().filter(move |&n| {
            let listed_module = split_module(self.line(n).unwrap_or("")).1;
            module.is_none_or(|m| listed_module == Some(m))
        })
    }

    /// Applies one write to a filter set (`set`, the functions listed): every token in turn,
    /// as the kernel's parser hands them over. A token that matches nothing fails the write,
    /// with the tokens before it applied.
    pub fn apply(&self, set: &mut BTreeSet<u32>, text: &str) -> Result<(), FunctionFilterError> {
        let mut walks = 0;
        for token in text.split_ascii_whitespace() {
            let (remove, pattern) = match token.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, token),
            };
            let (name, module) = match pattern.split_once(':') {
                Some((name, rest)) => match rest.strip_prefix("mod:") {
                    Some(module) => (name, Some(module)),
                    None => return Err(FunctionFilterError::Command(token.to_string())),
                },
                None => (pattern, None),
            };
            let matcher = Matcher::new(if name.is_empty() { "*" } else { name });
            let mut found = false;
            let mut mark = |n: u32| {
                found = true;
                if remove {
                    set.remove(&n);
                } else {
                    set.insert(n);
                }
            };
            if let (Matcher::Full(name), None) = (&matcher, module) {
                self.exactly(name).iter().for_each(|&n| mark(n));
                if !found {
                    return Err(FunctionFilterError::NoMatch(token.to_string()));
                }
                continue;
            }
            walks += 1;
            if walks > MAX_PATTERNS_PER_WRITE {
                return Err(FunctionFilterError::TooManyPatterns);
            }
            let module_matcher = module.map(Matcher::new);
            for (n, line) in self.lines().enumerate() {
                let (function, line_module) = split_module(line);
                let module_ok = match (&module_matcher, line_module) {
                    (None, _) => true,
                    (Some(m), Some(lm)) => m.matches(lm),
                    (Some(_), None) => false,
                };
                if module_ok && matcher.matches(function) {
                    mark(n as u32);
                }
            }
            if !found {
                return Err(FunctionFilterError::NoMatch(token.to_string()));
            }
        }
        Ok(())
    }

    /// The listing of a filter set (function numbers in ascending order), in
    /// `available_filter_functions` order.
    pub fn listing<'a>(&self, set: impl IntoIterator<Item = &'a u32>) -> String {
        let mut out = String::new();
        for &n in set {
            if let Some(line) = self.line(n) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// `name [module]` → (`name`, `Some(module)`).
fn split_module(line: &str) -> (&str, Option<&str>) {
    match line.split_once(" [") {
        Some((name, rest)) => (name, rest.strip_suffix(']')),
        None => (line, None),
    }
}

/// How `filter_parse_regex` classifies a pattern.
enum Matcher<'a> {
    Full(&'a str),
    Front(&'a str),
    Middle(&'a str),
    End(&'a str),
    Glob(&'a str),
}

impl<'a> Matcher<'a> {
    fn new(pattern: &'a str) -> Matcher<'a> {
        let bytes = pattern.as_bytes();
        let mut kind = 0; // 0 full, 1 end-only (leading '*')
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'*' if i == 0 => kind = 1,
                b'*' if i == bytes.len() - 1 => {
                    let stem = &pattern[usize::from(kind == 1)..i];
                    return if kind == 1 {
                        Matcher::Middle(stem)
                    } else {
                        Matcher::Front(stem)
                    };
                }
                b'*' | b'[' | b'?' | b'\\' => return Matcher::Glob(pattern),
                _ => {}
            }
        }
        if kind == 1 {
            Matcher::End(&pattern[1..])
        } else {
            Matcher::Full(pattern)
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Full(p) => s == *p,
            Matcher::Front(p) => s.starts_with(p),
            Matcher::Middle(p) => s.contains(p),
            Matcher::End(p) => s.ends_with(p),
            Matcher::Glob(p) => glob_match(p.as_bytes(), s.as_bytes()),
        }
    }
}

/// The kernel's `glob_match`: `*`, `?`, `[...]` classes (`!` negates, ranges), `\` escapes.
fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut back_p, mut back_i) = (None, 0);
    loop {
        if p < pattern.len() {
            let c = pattern[p];
            match c {
                b'*' => {
                    back_p = Some(p + 1);
                    back_i = i;
                    p += 1;
                    continue;
                }
                b'?' if i < s.len() => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' if i < s.len() => {
                    if let Some((matched, next)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && i < s.len() && pattern[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                _ if c != b'?' && c != b'[' && c != b'\\' && i < s.len() && c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character.
        match back_p {
            Some(bp) if back_i < s.len() => {
                back_i += 1;
                p = bp;
                i = back_i;
            }
            _ => return false,
        }
    }
}

/// Matches `c` against the class starting at `pattern[at] == '['`: whether it matched and
/// where the pattern continues, or `None` if the class is not closed.
fn class_match(pattern: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = at + 1;
    let negate = pattern.get(j) == Some(&b'!');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    while j < pattern.len() && (first || pattern[j] != b']') {
        first = false;
        let lo = pattern[j];
        if pattern.get(j + 1) == Some(&b'-') && pattern.get(j + 2).is_some_and(|&h| h != b']') {
            let hi = pattern[j + 2];
            matched |= lo <= c && c <= hi;
            j += 3;
        } else {
            matched |= lo == c;
            j += 1;
        }
    }
    if j >= pattern.len() {
        return None;
    }
    Some((matched != negate, j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "schedule\nschedule_timeout\nvfs_read\nvfs_write\ndo_sys_open\n\
                        kvm_init [kvm]\nkvm_exit [kvm]\n";

    fn names(table: &FunctionTable, set: &BTreeSet<u32>) -> String {
        table.listing(set).replace('\n', " ")
    }

    #[test]
    fn names_globs_removal_and_modules_select_as_the_kernel_does() {
        let table = FunctionTable::parse(LIST);
        let mut set = BTreeSet::new();
        table.apply(&mut set, "vfs_*").unwrap();
        assert_eq!(names(&table, &set), "vfs_read vfs_write ");
        table.apply(&mut set, "!vfs_write *_open").unwrap();
        assert_eq!(names(&table, &set), "vfs_read do_sys_open ");
        set.clear();
        table.apply(&mut set, "*dule*").unwrap();
        assert_eq!(names(&table, &set), "schedule schedule_timeout ");
        set.clear();
        table.apply(&mut set, "s?hed*out :mod:kvm").unwrap();
        assert_eq!(
            names(&table, &set),
            "schedule_timeout kvm_init [kvm] kvm_exit [kvm] "
        );
        set.clear();
        table.apply(&mut set, "vfs_[rw]*").unwrap();
        assert_eq!(names(&table, &set), "vfs_read vfs_write ");
        // A name that matches nothing fails; the tokens before it stay applied.
        set.clear();
        let e = table.apply(&mut set, "vfs_read nosuch").unwrap_err();
        assert_eq!(e, FunctionFilterError::NoMatch("nosuch".into()));
        assert_eq!(names(&table, &set), "vfs_read ");
        assert!(matches!(
            table.apply(&mut set, "vfs_read:traceoff"),
            Err(FunctionFilterError::Command(_))
        ));
        // `schedule` is a full name: it does not match `schedule_timeout`.
        set.clear();
        table.apply(&mut set, "schedule").unwrap();
        assert_eq!(names(&table, &set), "schedule ");
    }

    #[test]
    fn addresses_render_back_to_names() {
        let table = FunctionTable::parse(LIST);
        assert_eq!(table.at(FunctionTable::address(2)), Some("vfs_read"));
        assert_eq!(table.at(FunctionTable::address(6)), Some("kvm_exit [kvm]"));
        assert_eq!(table.at(FunctionTable::address(7)), None);
        assert_eq!(table.at(FunctionTable::address(1) + 1), None);
        assert_eq!(
            table.containing(FunctionTable::address(2) + 5),
            Some(("vfs_read", 5))
        );
        assert_eq!(table.containing(FunctionTable::address(7)), None);
    }

    #[test]
    fn globs_per_write_are_bounded_and_names_are_not() {
        let table = FunctionTable::parse(LIST);
        let mut set = BTreeSet::new();
        let plain = "vfs_read ".repeat(10 * MAX_PATTERNS_PER_WRITE);
        assert_eq!(table.apply(&mut set, &plain), Ok(()));
        let globs = "vfs_* ".repeat(MAX_PATTERNS_PER_WRITE);
        assert_eq!(table.apply(&mut set, &globs), Ok(()));
        assert_eq!(names(&table, &set), "vfs_read vfs_write ");
        let too_many = format!("{globs} !vfs_*");
        assert_eq!(
            table.apply(&mut set, &too_many),
            Err(FunctionFilterError::TooManyPatterns)
        );
        // The patterns before the one over the bound applied, as a failing token leaves them.
        assert_eq!(names(&table, &set), "vfs_read vfs_write ");
    }

    #[test]
    fn symbols_are_found_as_kallsyms_finds_them() {
        let table = FunctionTable::parse(
            "vfs_read\nshow_stat\nkvm_exit [kvm]\nshow_stat\n__ftrace_invalid_address___64\n",
        );
        assert_eq!(table.named("vfs_read").collect::<Vec<_>>(), [0]);
        assert_eq!(table.named("show_stat").count(), 2);
        assert_eq!(table.named("kvm_exit").count(), 1);
        assert_eq!(table.named("kvm:kvm_exit").collect::<Vec<_>>(), [2]);
        assert_eq!(table.named("ext4:kvm_exit").count(), 0);
        assert_eq!(table.named("__ftrace_invalid_address___64").count(), 0);
    }

    #[test]
    fn glob_classes_and_escapes() {
        assert!(glob_match(b"a[!b]c", b"axc"));
        assert!(!glob_match(b"a[!b]c", b"abc"));
        assert!(glob_match(b"a[a-c]*", b"abzz"));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"a\\*", b"ab"));
        assert!(glob_match(b"*x*y", b"axbxy"));
    }
}
