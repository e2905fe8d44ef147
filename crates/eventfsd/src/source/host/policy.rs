//! The host source's policy: which events the guest sees, which files it may write, whether
//! dynamic events and the global dynamic-event files are exposed, and write limits.
//!
//! The policy is a TOML file (see `docs/policy.example.toml`). Every section and key is
//! optional; an empty file (or no `--policy`) gives the default: every event visible, every
//! control file of the instance writable, dynamic events shown, global files hidden, no rate
//! limit.

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PolicyFile {
    events: EventsSection,
    files: FilesSection,
    dynamic: DynamicSection,
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
            hidden: Vec::new(),
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
            writable: vec!["**".into()],
            read_only: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DynamicSection {
    show: bool,
    global_files: Vec<String>,
}

impl Default for DynamicSection {
    fn default() -> Self {
        DynamicSection {
            show: true,
            global_files: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsSection {
    max_filter_len: usize,
    writes_per_second: u32,
    max_buffer_size_kb: u64,
    max_instances: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            // The kernel refuses control writes of PAGE_SIZE bytes or more.
            max_filter_len: eventfs_core::control::MAX_CONTROL_WRITE,
            writes_per_second: 0,
            max_buffer_size_kb: 0,
            // Enough for trace-cmd's `record -B` with a few buffers; each is a host ring buffer.
            max_instances: 4,
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
    /// Show dynamic events (kprobes, uprobes, synthetic, eprobes, and events that appear after
    /// start-up).
    pub show_dynamic: bool,
    /// Global files exposed to the guest (names from [`GLOBAL_FILES`]).
    pub global_files: Vec<String>,
    /// Longest `filter`/`trigger` write accepted (bytes).
    pub max_filter_len: usize,
    /// Guest writes per second across all control files; 0 means unlimited.
    pub writes_per_second: u32,
    /// Largest `buffer_size_kb` value the guest may write; 0 means unlimited.
    pub max_buffer_size_kb: u64,
    /// Most instances the guest may create under `instances/` (each one a host instance).
    pub max_instances: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_file(PolicyFile::default()).expect("the default policy is valid")
    }
}

impl Policy {
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
            show_dynamic: file.dynamic.show,
            global_files: file.dynamic.global_files,
            max_filter_len: file.limits.max_filter_len,
            writes_per_second: file.limits.writes_per_second,
            max_buffer_size_kb: file.limits.max_buffer_size_kb,
            max_instances: file.limits.max_instances,
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

fn glob_match(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            (0..=t.len()).any(|i| glob_match(rest, &t[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            let limit = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
            (0..=limit).any(|i| glob_match(rest, &t[i..]))
        }
        Some(b'?') => !t.is_empty() && t[0] != b'/' && glob_match(&p[1..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && glob_match(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_show_everything_and_hide_global_files() {
        let p = Policy::default();
        assert!(p.event_visible("sched", "sched_switch"));
        assert!(p.file_writable("events/sched/sched_switch/enable"));
        assert!(p.file_writable("trace_marker"));
        assert!(!p.global_file_allowed("kprobe_events"));
        assert!(p.show_dynamic);
        assert_eq!(p.writes_per_second, 0);
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
    fn the_documented_example_parses() {
        let p = Policy::parse(include_str!("../../../../../docs/policy.example.toml")).unwrap();
        assert!(p.event_visible("kvm", "kvm_exit"));
        assert!(!p.event_visible("sched", "sched_stat_runtime"));
        assert!(!p.event_visible("net", "net_dev_xmit"));
        assert!(!p.file_writable("options/overwrite"));
        assert_eq!(p.writes_per_second, 200);
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
