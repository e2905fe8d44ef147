//! How often each simulated event fires: a rate profile of `system:event` globs, so that the
//! events a busy kernel hits constantly (scheduler, interrupts, timers, raw syscalls) are busy
//! here too and rare ones (module loads, OOM kills) stay rare.
//!
//! A profile is text, one rule per line, `PATTERN RATE` with `RATE` in records per second
//! (fractions allowed, `0` silences an event) and `PATTERN` a `system:event` pair of globs
//! (`*` and `?`, as `set_event` takes them); `#` starts a comment. The first rule that matches
//! wins; user rules (`--rate-profile FILE`) come before the built-in ones, and an event no rule
//! matches fires at `--rate`.
//!
//! A kprobe fires at the rate of the function it probes, looked up as `function:NAME`.

use std::fmt;

/// The built-in profile: roughly what an idle-to-lightly-loaded 2-vCPU guest produces.
const BUILT_IN: &str = "\
ftrace:function 1000
sched:sched_switch 400
sched:sched_waking 250
sched:sched_wakeup 250
sched:sched_stat_runtime 250
sched:sched_process_* 2
sched:* 20
irq:* 100
timer:* 200
raw_syscalls:* 800
syscalls:sys_enter_read 60
syscalls:sys_exit_read 60
syscalls:sys_enter_write 40
syscalls:sys_exit_write 40
syscalls:* 1
workqueue:* 50
rcu:* 50
kmem:* 100
module:* 0.01
oom:* 0.01
mce:* 0.01
thermal:* 0.1
function:schedule 400
function:vfs_read 60
function:vfs_write 40
function:* 20
";

/// Most records per second a rule may ask for (so a typo cannot make the simulation spin).
pub const MAX_RATE: f64 = 100_000.0;

/// One rule: events matching both globs fire `rate` times per second.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    system: String,
    event: String,
    rate: f64,
}

/// An ordered list of rules with a default for events no rule names.
#[derive(Clone, Debug, PartialEq)]
pub struct RateProfile {
    rules: Vec<Rule>,
    default_rate: f64,
}

// Rates are finite (the parser refuses NaN and infinities), so equality is total.
impl Eq for RateProfile {}

/// A line of a profile that does not parse.
#[derive(Debug, PartialEq, Eq)]
pub struct ProfileError {
    line: usize,
    reason: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ProfileError {}

impl Default for RateProfile {
    fn default() -> Self {
        RateProfile::built_in(10.0)
    }
}

impl RateProfile {
    /// The built-in rules, with `default_rate` for events they do not name.
    pub fn built_in(default_rate: f64) -> Self {
        RateProfile {
            rules: parse_rules(BUILT_IN).expect("the built-in profile parses"),
            default_rate,
        }
    }

    /// A profile of only `default_rate` (tests that want every event alike).
    pub fn uniform(default_rate: f64) -> Self {
        RateProfile {
            rules: Vec::new(),
            default_rate,
        }
    }

    /// Puts the rules of `text` before the current ones (user rules win).
    pub fn with_overrides(mut self, text: &str) -> Result<Self, ProfileError> {
        let mut rules = parse_rules(text)?;
        rules.append(&mut self.rules);
        self.rules = rules;
        Ok(self)
    }

    /// Records per second of `system:event`.
    pub fn rate_of(&self, system: &str, event: &str) -> f64 {
        self.rules
            .iter()
            .find(|r| glob_matches(&r.system, system) && glob_matches(&r.event, event))
            .map_or(self.default_rate, |r| r.rate)
    }
}

fn parse_rules(text: &str) -> Result<Vec<Rule>, ProfileError> {
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let error = |reason: String| ProfileError {
            line: n + 1,
            reason,
        };
        let mut words = line.split_whitespace();
        let (Some(pattern), Some(rate), None) = (words.next(), words.next(), words.next()) else {
            return Err(error(format!("expected `system:event rate`, got {line:?}")));
        };
        let Some((system, event)) = pattern.split_once(':') else {
            return Err(error(format!("{pattern:?} is not system:event")));
        };
        let rate: f64 = rate
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && (0.0..=MAX_RATE).contains(r))
            .ok_or_else(|| error(format!("rate {rate:?} is not a number in 0..={MAX_RATE}")))?;
        rules.push(Rule {
            system: system.to_string(),
            event: event.to_string(),
            rate,
        });
    }
    Ok(rules)
}

/// Shell-style glob with `*` (any run) and `?` (one byte), as `set_event` names match.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_events_are_busy_and_rare_ones_rare() {
        let profile = RateProfile::built_in(10.0);
        assert_eq!(profile.rate_of("sched", "sched_switch"), 400.0);
        assert_eq!(profile.rate_of("sched", "sched_migrate_task"), 20.0);
        assert_eq!(profile.rate_of("module", "module_load"), 0.01);
        assert_eq!(profile.rate_of("block", "block_rq_issue"), 10.0);
    }

    #[test]
    fn user_rules_win_and_first_match_wins() {
        let profile = RateProfile::built_in(10.0)
            .with_overrides("sched:* 1 # quiet scheduler\n\nblock:block_rq_* 3.5\n")
            .unwrap();
        assert_eq!(profile.rate_of("sched", "sched_switch"), 1.0);
        assert_eq!(profile.rate_of("block", "block_rq_issue"), 3.5);
        assert_eq!(profile.rate_of("irq", "irq_handler_entry"), 100.0);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let bad = |text: &str| RateProfile::uniform(1.0).with_overrides(text).unwrap_err();
        assert_eq!(bad("ok:ok 1\nsched 4").line, 2);
        assert!(bad("a:b fast").reason.contains("fast"));
        assert!(bad("a:b -1").reason.contains("-1"));
        assert!(bad("a:b 1e9").reason.contains("1e9"));
        assert!(bad("a:b 1 2").reason.contains("expected"));
        assert!(bad("a:b NaN").reason.contains("NaN"));
    }

    #[test]
    fn globs_match_like_set_event() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("sys_enter_*", "sys_enter_read"));
        assert!(glob_matches("*_read", "sys_enter_read"));
        assert!(glob_matches("s?hed", "sched"));
        assert!(glob_matches("*a*b*", "xxaxxbxx"));
        assert!(!glob_matches("sys_enter_*", "sys_exit_read"));
        assert!(!glob_matches("sched", "sched_switch"));
        assert!(!glob_matches("", "x"));
        assert!(glob_matches("", ""));
    }
}
