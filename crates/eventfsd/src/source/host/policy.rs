//! The host source's policy: which events the guest sees, which files it may write, whether
//! dynamic events and the global dynamic-event files are exposed, and write limits.
//!
//! The policy is a TOML file (see `docs/policy.example.toml`). Every section and key is
//! optional; an empty file (or no `--policy`) gives the safe default, which is written for a
//! guest the operator does not trust: systems that carry other tenants' or the host's data
//! hidden, an allow-list of writable files, tracers and options, no dynamic events, no global
//! files, no kernel addresses (`.sym`/`.hex` hist keys, `stacktrace`), no `.ustring` filters, no
//! named histograms, and limits on everything the guest can make the host hold.

use std::path::Path;

use serde::Deserialize;

/// Errors while loading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy {path}: {source}")]
    Io {
        /// The policy file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or bad values.
    #[error("policy {path}: {reason}")]
    Invalid {
        /// The policy file.
        path: String,
        /// What is wrong (from the TOML parser or our checks).
        reason: String,
    },
}

/// Global (top-level only) files a policy may expose; all hidden by default.
pub const GLOBAL_FILES: &[&str] = &[
    "kprobe_events",
    "dynamic_events",
    "synthetic_events",
    "uprobe_events",
    "available_filter_functions",
    // Host-wide: other processes' comms and pids, kernel addresses.
    "printk_formats",
    "saved_cmdlines",
    "saved_cmdlines_size",
    "saved_tgids",
];

/// Systems hidden unless a policy lists its own `events.hidden`: what they carry belongs to
/// other tenants or to the host itself.
pub const DEFAULT_HIDDEN: &[&str] = &[
    // Other VMs' exits, guest RIPs, port and MMIO values.
    "kvm",
    "kvmmmu",
    // The host's kernel log.
    "printk",
    // Other programs' bpf_trace_printk output.
    "bpf_trace",
    // MSR values the host (and other VMs) read and write.
    "msr",
    // Every process's system call arguments.
    "syscalls",
    "raw_syscalls",
    // Host network metadata: addresses, ports, devices.
    "net",
    "skb",
    "sock",
    "tcp",
    "udp",
    "icmp",
    "napi",
    "qdisc",
    "neigh",
    "fib",
    "fib6",
    "netlink",
    "mptcp",
    "xdp",
    "bridge",
    "vsock",
    // Device assignment and DMA addresses.
    "iommu",
    "swiotlb",
];

/// Control files writable unless a policy lists its own `files.writable` (patterns without
/// `/` match the file name anywhere). Each is checked by the kernel's own parse of the write.
pub const DEFAULT_WRITABLE: &[&str] = &[
    "enable",
    "filter",
    "trigger",
    "tracing_on",
    "buffer_size_kb",
    "set_event",
    "set_event_pid",
    "trace",
    "trace_marker",
    "trace_clock",
    "trace_options",
    "options/*",
    "current_tracer",
    "error_log",
    "tracing_cpumask",
];

/// Options the guest may set (through `options/NAME` and `trace_options` alike) unless a policy
/// lists its own `options.allowed`. Left out: what shows kernel or user addresses (`sym-*`,
/// `hash-ptr`, `*stacktrace`), what pulls host data into the instance (`trace_printk*`,
/// `printk-msg-only`, `copy_trace_marker`), what instruments every function (`function-*`,
/// `func*`), `pause-on-trace` (the daemon streams `trace` and relies on it), `event-fork` (it
/// pins the tenant scope) and test options.
pub const DEFAULT_OPTIONS: &[&str] = &[
    "annotate",
    "bin",
    "block",
    "context-info",
    "disable_on_free",
    "fields",
    "hex",
    "irq-info",
    "latency-format",
    "markers",
    "overwrite",
    "raw",
    "record-cmd",
    "record-tgid",
    "verbose",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PolicyFile {
    events: EventsSection,
    files: FilesSection,
    tracers: TracersSection,
    options: OptionsSection,
    triggers: TriggersSection,
    filters: FiltersSection,
    dynamic: DynamicSection,
    scope: ScopeSection,
    limits: LimitsSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EventsSection {
    visible: Vec<String>,
    hidden: Vec<String>,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            visible: vec!["*".into()],
            hidden: strings(DEFAULT_HIDDEN),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FilesSection {
    writable: Vec<String>,
    read_only: Vec<String>,
}

impl Default for FilesSection {
    fn default() -> Self {
        FilesSection {
            writable: strings(DEFAULT_WRITABLE),
            read_only: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TracersSection {
    allowed: Vec<String>,
}

impl Default for TracersSection {
    fn default() -> Self {
        TracersSection {
            allowed: vec!["nop".into()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct OptionsSection {
    allowed: Vec<String>,
}

impl Default for OptionsSection {
    fn default() -> Self {
        OptionsSection {
            allowed: strings(DEFAULT_OPTIONS),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct TriggersSection {
    stacktrace: bool,
    snapshot: bool,
    named_hist: bool,
    address_modifiers: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FiltersSection {
    ustring: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DynamicSection {
    show: bool,
    global_files: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ScopeSection {
    pid: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsSection {
    max_filter_len: usize,
    writes_per_second: u32,
    max_buffer_size_kb: u64,
    max_instances: usize,
    max_open_handles: usize,
    max_trace_bytes: usize,
    max_enabled_events: usize,
    max_hist_triggers: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            // The kernel refuses control writes of PAGE_SIZE bytes or more.
            max_filter_len: eventfs_core::control::MAX_CONTROL_WRITE,
            // trace-cmd's set-up and reset write a few dozen files; a flood is not tracing.
            writes_per_second: 200,
            // Per CPU: 4 MiB is 3x the kernel's default, and bounds a 64-CPU host to 256 MiB.
            max_buffer_size_kb: 4096,
            // Enough for trace-cmd's `record -B` with a few buffers; each is a host ring buffer.
            max_instances: 4,
            max_open_handles: 256,
            max_trace_bytes: 16 << 20,
            max_enabled_events: 256,
            max_hist_triggers: 16,
        }
    }
}

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    visible: Vec<Glob>,
    hidden: Vec<Glob>,
    writable: Vec<Glob>,
    read_only: Vec<Glob>,
    /// Tracers the guest may write to `current_tracer` (and sees in `available_tracers`).
    pub tracers: Vec<String>,
    /// Options the guest may set, through `options/NAME` and `trace_options` alike.
    pub options: Vec<String>,
    /// Allow the `stacktrace` trigger (kernel addresses in the raw records).
    pub allow_stacktrace: bool,
    /// Allow the `snapshot` trigger (a second ring buffer).
    pub allow_snapshot: bool,
    /// Allow `name=` on hist triggers (a namespace shared by every instance of the host).
    pub allow_named_hist: bool,
    /// Allow the `.sym`, `.sym-offset` and `.hex` hist modifiers (kernel addresses).
    pub allow_address_modifiers: bool,
    /// Allow `.ustring` in filters (reads other processes' memory).
    pub allow_ustring: bool,
    /// Show dynamic events (kprobes, uprobes, synthetic, eprobes, and events that appear after
    /// start-up).
    pub show_dynamic: bool,
    /// Global files exposed to the guest (names from [`GLOBAL_FILES`]).
    pub global_files: Vec<String>,
    /// Pin the instance's `set_event_pid` to this process tree (0: no scope).
    pub scope_pid: u32,
    /// Longest `filter`/`trigger` write accepted (bytes).
    pub max_filter_len: usize,
    /// Guest writes per second across all control files; 0 means unlimited.
    pub writes_per_second: u32,
    /// Largest `buffer_size_kb` value the guest may write; 0 means unlimited.
    pub max_buffer_size_kb: u64,
    /// Most instances the guest may create under `instances/` (each one a host instance).
    pub max_instances: usize,
    /// Most files the guest may hold open at once; 0 means unlimited.
    pub max_open_handles: usize,
    /// Most bytes of `trace` text held for the guest's open files at once; 0 means unlimited.
    pub max_trace_bytes: usize,
    /// Most events enabled in an instance; 0 means unlimited.
    pub max_enabled_events: usize,
    /// Most hist triggers the guest may have set at once; 0 means unlimited.
    pub max_hist_triggers: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_file(PolicyFile::default()).expect("the default policy is valid")
    }
}

impl Policy {
    /// What the served catalog depends on (visible and hidden events, tracers, dynamic
    /// events): daemons whose policies agree on it may share one snapshot.
    pub fn catalog_fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{}",
            self.visible, self.hidden, self.tracers, self.show_dynamic
        )
    }

    /// Loads a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text).map_err(|reason| PolicyError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses policy text (TOML).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        Policy::from_file(file)
    }

    fn from_file(file: PolicyFile) -> Result<Policy, String> {
        for name in &file.dynamic.global_files {
            if !GLOBAL_FILES.contains(&name.as_str()) {
                return Err(format!(
                    "dynamic.global_files: unknown file {name:?} (known: {})",
                    GLOBAL_FILES.join(", ")
                ));
            }
        }
        if file.limits.max_filter_len == 0 {
            return Err("limits.max_filter_len must be at least 1".into());
        }
        let event_globs = |patterns: &[String]| -> Result<Vec<Glob>, String> {
            patterns
                .iter()
                .map(|p| {
                    // A bare system name means every event of the system.
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/*")
                    };
                    Glob::new(&p)
                })
                .collect()
        };
        let file_globs = |patterns: &[String]| -> Result<Vec<Glob>, String> {
            patterns.iter().map(|p| Glob::new(p)).collect()
        };
        Ok(Policy {
            visible: event_globs(&file.events.visible)?,
            hidden: event_globs(&file.events.hidden)?,
            writable: file_globs(&file.files.writable)?,
            read_only: file_globs(&file.files.read_only)?,
            tracers: file.tracers.allowed,
            options: file.options.allowed,
            allow_stacktrace: file.triggers.stacktrace,
            allow_snapshot: file.triggers.snapshot,
            allow_named_hist: file.triggers.named_hist,
            allow_address_modifiers: file.triggers.address_modifiers,
            allow_ustring: file.filters.ustring,
            show_dynamic: file.dynamic.show,
            global_files: file.dynamic.global_files,
            scope_pid: file.scope.pid,
            max_filter_len: file.limits.max_filter_len,
            writes_per_second: file.limits.writes_per_second,
            max_buffer_size_kb: file.limits.max_buffer_size_kb,
            max_instances: file.limits.max_instances,
            max_open_handles: file.limits.max_open_handles,
            max_trace_bytes: file.limits.max_trace_bytes,
            max_enabled_events: file.limits.max_enabled_events,
            max_hist_triggers: file.limits.max_hist_triggers,
        })
    }

    /// Whether the event `system/event` is visible to the guest.
    pub fn event_visible(&self, system: &str, event: &str) -> bool {
        let path = format!("{system}/{event}");
        self.visible.iter().any(|g| g.matches(&path))
            && !self.hidden.iter().any(|g| g.matches(&path))
    }

    /// Whether the guest may write the file at `path` (relative to the instance root, e.g.
    /// `events/sched/sched_switch/enable`). Patterns without `/` match the file name alone.
    pub fn file_writable(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        let hit = |g: &Glob| {
            if g.has_slash {
                g.matches(path)
            } else {
                g.matches(name)
            }
        };
        self.writable.iter().any(hit) && !self.read_only.iter().any(hit)
    }

    /// Whether the guest may set the option `name` (through either of its two files).
    pub fn option_allowed(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }

    /// Whether the guest may select the tracer `name`.
    pub fn tracer_allowed(&self, name: &str) -> bool {
        self.tracers.iter().any(|t| t == name)
    }

    /// Whether the global file `name` is exposed.
    pub fn global_file_allowed(&self, name: &str) -> bool {
        self.global_files.iter().any(|f| f == name)
    }
}

/// A path glob: `*` and `?` stay within one path component, `**` crosses `/`.
#[derive(Clone, Debug)]
struct Glob {
    pattern: Vec<u8>,
    has_slash: bool,
}

impl Glob {
    fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() || pattern.contains('\0') {
            return Err(format!("bad pattern {pattern:?}"));
        }
        Ok(Glob {
            pattern: pattern.as_bytes().to_vec(),
            has_slash: pattern.contains('/'),
        })
    }

    fn matches(&self, text: &str) -> bool {
        glob_match(&self.pattern, text.as_bytes())
    }
}

/// Whether `t` matches the glob `p`, by dynamic programming over (pattern, text) suffixes:
/// time and memory are bounded by their lengths' product (a backtracking matcher is
/// exponential in the number of stars, which a fuzzed policy used to hang the daemon).
fn glob_match(p: &[u8], t: &[u8]) -> bool {
    let (m, n) = (p.len(), t.len());
    // matches[i * (n + 1) + j]: p[i..] matches t[j..].
    let mut matches = vec![false; (m + 1) * (n + 1)];
    let at = |i: usize, j: usize| i * (n + 1) + j;
    matches[at(m, n)] = true;
    for i in (0..m).rev() {
        let double = p[i] == b'*' && p.get(i + 1) == Some(&b'*');
        for j in (0..=n).rev() {
            let next = j < n;
            matches[at(i, j)] = match p[i] {
                b'*' if double => matches[at(i + 2, j)] || (next && matches[at(i, j + 1)]),
                b'*' => matches[at(i + 1, j)] || (next && t[j] != b'/' && matches[at(i, j + 1)]),
                b'?' => next && t[j] != b'/' && matches[at(i + 1, j + 1)],
                c => next && t[j] == c && matches[at(i + 1, j + 1)],
            };
        }
    }
    matches[at(0, 0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_safe_for_a_stranger() {
        let p = Policy::default();
        assert!(p.event_visible("sched", "sched_switch"));
        for hidden in [
            "kvm/kvm_exit",
            "printk/console",
            "syscalls/sys_enter_openat",
        ] {
            let (sys, ev) = hidden.split_once('/').unwrap();
            assert!(!p.event_visible(sys, ev), "{hidden}");
        }
        assert!(p.file_writable("events/sched/sched_switch/enable"));
        assert!(p.file_writable("trace_marker"));
        assert!(!p.file_writable("events/sched/sched_switch/inject"));
        assert!(!p.global_file_allowed("kprobe_events"));
        assert!(!p.show_dynamic);
        assert!(p.tracer_allowed("nop") && !p.tracer_allowed("function"));
        assert!(p.option_allowed("overwrite") && !p.option_allowed("sym-addr"));
        assert!(!p.option_allowed("trace_printk_dest") && !p.option_allowed("hash-ptr"));
        assert!(!(p.allow_stacktrace || p.allow_named_hist || p.allow_address_modifiers));
        assert!(!p.allow_ustring && !p.allow_snapshot);
        assert_eq!(p.writes_per_second, 200);
        assert!(p.max_open_handles > 0 && p.max_trace_bytes > 0 && p.max_enabled_events > 0);
    }

    #[test]
    fn globs_and_sections() {
        let p = Policy::parse(
            r#"
            [events]
            visible = ["sched", "kvm/kvm_exit", "irq/*_entry"]
            hidden = ["sched/sched_wak*"]
            [files]
            read_only = ["buffer_size_kb", "events/*/filter", "options/**"]
            [dynamic]
            show = false
            global_files = ["kprobe_events"]
            [limits]
            max_filter_len = 100
            writes_per_second = 5
            "#,
        )
        .unwrap();
        assert!(p.event_visible("sched", "sched_switch"));
        assert!(!p.event_visible("sched", "sched_waking"));
        assert!(p.event_visible("kvm", "kvm_exit"));
        assert!(!p.event_visible("kvm", "kvm_entry"));
        assert!(p.event_visible("irq", "softirq_entry"));
        assert!(!p.event_visible("irq", "softirq_exit"));
        assert!(!p.file_writable("buffer_size_kb"));
        assert!(!p.file_writable("events/sched/filter"));
        assert!(p.file_writable("events/sched/sched_switch/filter"));
        assert!(!p.file_writable("options/overwrite"));
        assert!(p.global_file_allowed("kprobe_events"));
        assert!(!p.show_dynamic);
        // A policy's own list replaces the default hidden systems.
        assert!(p.event_visible("kvm", "kvm_exit"));
        assert_eq!(p.max_filter_len, 100);
    }

    #[test]
    fn rejects_unknown_keys_and_files() {
        assert!(Policy::parse("[events]\nvisibel = []").is_err());
        assert!(Policy::parse("[dynamic]\nglobal_files = [\"trace\"]").is_err());
        assert!(Policy::parse("[limits]\nmax_filter_len = 0").is_err());
        assert!(Policy::parse("").is_ok());
    }

    #[test]
    fn the_documented_example_is_the_default() {
        let p = Policy::parse(include_str!("../../../../../docs/policy.example.toml")).unwrap();
        let d = Policy::default();
        assert_eq!(format!("{p:?}"), format!("{d:?}"));
    }

    #[test]
    fn glob_matching_is_polynomial() {
        // The fuzzer's hang: stars around a long run, against a path that almost matches.
        let pattern = format!("**/{}**{}**/**", "\u{f3}".repeat(60), "*".repeat(70));
        let text = format!("a/b/c/{}/x", "\u{f3}".repeat(59));
        assert!(!glob_match(pattern.as_bytes(), text.as_bytes()));
        assert!(glob_match(b"***", b"a/b"));
        assert!(glob_match(b"a*?", b"abc"));
        assert!(!glob_match(b"a*?", b"a/c"));
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_match(b"a*c", b"abbc"));
        assert!(!glob_match(b"a*c", b"ab/c"));
        assert!(glob_match(b"a**c", b"ab/c"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"a/c"));
    }
}
