//! The host source's write guard: reads each guest write to a control file exactly as the
//! kernel will, checks its meaning against the policy's allow-lists, and decides the one
//! canonical write the daemon forwards (or the errno it answers with).
//!
//! The guest's bytes never reach the host after a partial check: what goes out is text this
//! module wrote from the parse (a number, a name, a rendered trigger), so a difference between
//! how the policy and the kernel would read odd input (`01`, `+1`, a NUL, 0xA0 as white space,
//! a token split over two writes) cannot open a way past the policy.

use std::collections::BTreeSet;

use eventfs_core::layout::{CpuFile, FileKind, RootFile};
use eventfs_core::FsError;
use ftrace_text::kparse::{self, Token};
use ftrace_text::trigger::{self, Action, TriggerCommand};

use super::event_set::EventSet;
use super::policy::Policy;

/// `trace_options` and `trace_clock` refuse writes of 64 bytes or more.
const SHORT_WRITE_MAX: usize = 64;
/// `current_tracer` reads at most this many bytes of a write.
const TRACER_NAME_MAX: usize = 100;

/// What the daemon does with a guest write that passed the guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write these texts, in order, to the handle's host file; the guest's write consumed
    /// `consumed` bytes.
    Forward {
        /// Canonical writes.
        writes: Vec<Vec<u8>>,
        /// Bytes of the guest's write accounted for.
        consumed: usize,
    },
    /// An `enable` of a system or of `events/`: 1 or 0 for the visible events it covers.
    Enable(bool),
    /// `set_event_pid`: these pids (the kernel's append or replace follows the open).
    Pids(Vec<u32>),
    /// The kernel ignores the content (`trace`, `error_log`: opening with O_TRUNC clears).
    Ignore(usize),
}

impl Decision {
    fn one(text: impl Into<Vec<u8>>, consumed: usize) -> Decision {
        Decision::Forward {
            writes: vec![text.into()],
            consumed,
        }
    }
}

/// Everything the guard needs to know about the write's file and the host.
pub struct WriteContext<'a> {
    /// The file's kind.
    pub kind: FileKind,
    /// Its path relative to its instance (for logs, and the option name).
    pub path: &'a str,
    /// `system` and `event` of an event or system file.
    pub system: &'a str,
    /// See `system`; empty for a system file.
    pub event: &'a str,
    /// Every host event, visible or not.
    pub events: &'a EventSet,
    /// The events the guest must not see or reach.
    pub hidden: &'a EventSet,
    /// The events enabled in the file's instance now (read from the host when asked).
    pub enabled: &'a dyn Fn() -> Result<BTreeSet<(String, String)>, FsError>,
}

/// Refuses (ENOSPC) when enabling `more` would leave more than the policy's
/// `max_enabled_events` enabled in the instance.
fn check_enable_limit<'e>(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    more: impl Iterator<Item = (&'e str, &'e str)>,
) -> Result<(), FsError> {
    let limit = policy.max_enabled_events;
    if limit == 0 {
        return Ok(());
    }
    let mut after = (ctx.enabled)()?;
    for (system, event) in more {
        after.insert((system.to_string(), event.to_string()));
        if after.len() > limit {
            return Err(refuse(
                ctx,
                libc::ENOSPC,
                format_args!("over max_enabled_events {limit}"),
            ));
        }
    }
    Ok(())
}

/// The visible events an `enable` file covers.
fn enable_scope<'e>(ctx: &'e WriteContext<'_>) -> impl Iterator<Item = (&'e str, &'e str)> {
    ctx.events.iter().filter(move |&(system, event)| {
        !ctx.hidden.contains(system, event)
            && match ctx.kind {
                FileKind::EventsEnable => true,
                FileKind::SystemEnable => system == ctx.system,
                _ => system == ctx.system && event == ctx.event,
            }
    })
}

/// Refuses with `errno` and a log line naming the file and the reason.
fn refuse(ctx: &WriteContext<'_>, errno: i32, why: std::fmt::Arguments<'_>) -> FsError {
    log::warn!("policy: write to {} refused: {why}", ctx.path);
    FsError::Os(errno)
}

/// Decides one guest write; `format` reads the event's host `format` file (for trigger
/// fields), only when needed.
pub fn check_write(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    data: &[u8],
    format: &dyn Fn() -> Result<String, FsError>,
) -> Result<Decision, FsError> {
    let number = |data: &[u8]| {
        kparse::kstrtoul_from_user(data).map_err(|e| {
            refuse(
                ctx,
                e.errno(),
                format_args!("{:?} is not a number", String::from_utf8_lossy(data)),
            )
        })
    };
    match ctx.kind {
        FileKind::EventEnable | FileKind::SystemEnable | FileKind::EventsEnable => {
            match number(data)? {
                0 => Ok(Decision::Enable(false)),
                1 => {
                    check_enable_limit(policy, ctx, enable_scope(ctx))?;
                    Ok(Decision::Enable(true))
                }
                v => Err(refuse(
                    ctx,
                    libc::EINVAL,
                    format_args!("enable takes 0 or 1, not {v}"),
                )),
            }
        }
        FileKind::TraceOption(_) => {
            let name = ctx.path.rsplit('/').next().unwrap_or_default();
            match number(data)? {
                v @ (0 | 1) => {
                    check_option(policy, ctx, name, v == 1)?;
                    Ok(Decision::one(format!("{v}\n"), data.len()))
                }
                v => Err(refuse(
                    ctx,
                    libc::EINVAL,
                    format_args!("an option is 0 or 1, not {v}"),
                )),
            }
        }
        FileKind::Root(RootFile::TracingOn) => {
            Ok(Decision::one(format!("{}\n", number(data)?), data.len()))
        }
        FileKind::Root(RootFile::BufferSizeKb) | FileKind::PerCpu(CpuFile::BufferSizeKb) => {
            let kb = number(data)?;
            let limit = policy.max_buffer_size_kb;
            if kb == 0 {
                return Err(refuse(ctx, libc::EINVAL, format_args!("a buffer of 0 KiB")));
            }
            if limit > 0 && kb > limit {
                return Err(refuse(
                    ctx,
                    libc::EACCES,
                    format_args!("buffer_size_kb {kb} is over max_buffer_size_kb {limit}"),
                ));
            }
            Ok(Decision::one(format!("{kb}\n"), data.len()))
        }
        FileKind::Root(RootFile::CurrentTracer) => {
            let name = name_of(ctx, &data[..data.len().min(TRACER_NAME_MAX)])?;
            if !policy.tracer_allowed(&name) {
                return Err(refuse(
                    ctx,
                    libc::EACCES,
                    format_args!("tracer {name:?} is not allowed"),
                ));
            }
            Ok(Decision::one(format!("{name}\n"), data.len()))
        }
        FileKind::Root(RootFile::TraceOptions) => {
            let word = short_name_of(ctx, data)?;
            let (negate, name) = match word.strip_prefix("no") {
                Some(rest) => ("no", rest),
                None => ("", word.as_str()),
            };
            check_option(policy, ctx, name, negate.is_empty())?;
            Ok(Decision::one(format!("{negate}{name}\n"), data.len()))
        }
        FileKind::Root(RootFile::TraceClock) => Ok(Decision::one(
            format!("{}\n", short_name_of(ctx, data)?),
            data.len(),
        )),
        FileKind::Root(RootFile::TracingCpumask) => {
            let mask = kparse::strstrip(kparse::c_str(data));
            if mask.is_empty()
                || mask.len() > 1024
                || !mask.iter().all(|&b| b.is_ascii_hexdigit() || b == b',')
            {
                return Err(refuse(ctx, libc::EINVAL, format_args!("not a CPU mask")));
            }
            let mut text = mask.to_vec();
            text.push(b'\n');
            Ok(Decision::one(text, data.len()))
        }
        FileKind::Root(RootFile::SetEvent) => set_event(policy, ctx, data),
        FileKind::Root(RootFile::SetEventPid) => {
            let pids = kparse::pids_of_write(data).map_err(|_| {
                refuse(
                    ctx,
                    libc::EINVAL,
                    format_args!("{:?} is not a list of pids", String::from_utf8_lossy(data)),
                )
            })?;
            Ok(Decision::Pids(pids))
        }
        FileKind::Root(RootFile::TraceMarker) => Ok(Decision::one(data, data.len())),
        FileKind::Root(RootFile::Trace) | FileKind::Root(RootFile::ErrorLog) => {
            Ok(Decision::Ignore(data.len()))
        }
        FileKind::EventFilter | FileKind::SystemFilter => {
            let text = expression_text(policy, ctx, data)?;
            Ok(Decision::one(text, data.len()))
        }
        FileKind::EventTrigger => check_trigger(policy, ctx, data, format),
        FileKind::Root(r) if r.is_global_only() => {
            // Opened only where the policy exposes the global file deliberately.
            Ok(Decision::one(data, data.len()))
        }
        _ => Err(refuse(
            ctx,
            libc::EACCES,
            format_args!("not a file the guest may write"),
        )),
    }
}

/// The value of an option that is safe whatever the policy: the kernel's own protection on
/// (`hash-ptr`), the daemon's needs on (`pause-on-trace`, `event-fork`), everything else off
/// (instrumentation and address printing). Tools write these to reset an instance.
fn safe_value(option: &str) -> bool {
    matches!(option, "hash-ptr" | "pause-on-trace" | "event-fork")
}

/// Allows setting `option` to `on` if the policy allows the option, or `on` is its safe value.
fn check_option(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    option: &str,
    on: bool,
) -> Result<(), FsError> {
    if policy.option_allowed(option) || on == safe_value(option) {
        return Ok(());
    }
    let value = if on { "on" } else { "off" };
    Err(refuse(
        ctx,
        libc::EACCES,
        format_args!("option {option} {value} is not allowed"),
    ))
}

/// [`name_of`] for the files that refuse writes of 64 bytes or more (`trace_options`,
/// `trace_clock`).
fn short_name_of(ctx: &WriteContext<'_>, data: &[u8]) -> Result<String, FsError> {
    if data.len() >= SHORT_WRITE_MAX {
        return Err(refuse(
            ctx,
            libc::EINVAL,
            format_args!("{} bytes", data.len()),
        ));
    }
    name_of(ctx, data)
}

/// A name the kernel reads with `strstrip` from a NUL-terminated copy: one word of
/// `[A-Za-z0-9_-]`.
fn name_of(ctx: &WriteContext<'_>, data: &[u8]) -> Result<String, FsError> {
    let word = kparse::strstrip(kparse::c_str(data));
    if word.is_empty()
        || !word
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(refuse(
            ctx,
            libc::EINVAL,
            format_args!("{:?} is not a name", String::from_utf8_lossy(word)),
        ));
    }
    Ok(String::from_utf8_lossy(word).into_owned())
}

/// The text of a filter (or trigger) write as the kernel parses it: up to the first NUL, within
/// the policy's length, without `.ustring` unless allowed.
fn expression_text(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    data: &[u8],
) -> Result<String, FsError> {
    if data.len() > policy.max_filter_len {
        return Err(refuse(
            ctx,
            libc::EINVAL,
            format_args!(
                "{} bytes, over max_filter_len {}",
                data.len(),
                policy.max_filter_len
            ),
        ));
    }
    let text = std::str::from_utf8(kparse::c_str(data))
        .map_err(|_| refuse(ctx, libc::EINVAL, format_args!("not UTF-8")))?;
    // Anywhere in the text, strings included: refusing a literal that spells it is the safe
    // side of the kernel's own lexer.
    if !policy.allow_ustring && text.contains(".ustring") {
        return Err(refuse(
            ctx,
            libc::EACCES,
            format_args!(".ustring reads user memory"),
        ));
    }
    Ok(text.to_string())
}

fn check_trigger(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    data: &[u8],
    format: &dyn Fn() -> Result<String, FsError>,
) -> Result<Decision, FsError> {
    let text = expression_text(policy, ctx, data)?;
    let format_text = format()?;
    let fields: Vec<_> = ftrace_text::format::fields(&format_text).collect();
    let reachable = |system: &str, event: &str| {
        ctx.events.contains(system, event) && !ctx.hidden.contains(system, event)
    };
    let command = trigger::parse(&text, &fields, &reachable)
        .map_err(|e| refuse(ctx, e.errno(), format_args!("{e}")))?;
    let (TriggerCommand::Add(t) | TriggerCommand::Remove(t)) = &command;
    let denied = match &t.action {
        Action::StackTrace if !policy.allow_stacktrace => Some("the stacktrace trigger"),
        Action::Snapshot if !policy.allow_snapshot => Some("the snapshot trigger"),
        Action::Hist(h) => {
            let fields = h.keys.iter().chain(&h.vals);
            if h.name.is_some() && !policy.allow_named_hist {
                Some("a named histogram")
            } else if !policy.allow_address_modifiers
                && fields
                    .clone()
                    .any(|f| matches!(f.modifier, Some("sym" | "sym-offset" | "hex")))
            {
                Some("an address modifier (.sym, .sym-offset, .hex)")
            } else if !policy.allow_stacktrace
                && fields.clone().any(|f| f.name.ends_with("stacktrace"))
            {
                Some("a stacktrace key")
            } else {
                None
            }
        }
        _ => None,
    };
    if let Some(what) = denied {
        return Err(refuse(
            ctx,
            libc::EACCES,
            format_args!("{what} is not allowed"),
        ));
    }
    if let (TriggerCommand::Add(_), Action::EnableEvent { system, event }) = (&command, &t.action) {
        // The target's probe is registered (soft-disabled) as soon as the trigger is set.
        check_enable_limit(policy, ctx, std::iter::once((&**system, &**event)))?;
    }
    let mut out = command.write_text().into_bytes();
    out.push(b'\n');
    Ok(Decision::one(out, data.len()))
}

/// Whether a `set_event` token (after `!`) names `system:event`, by the kernel's rules: `a:b`
/// matches system and event (empty or `*` for any), a bare name matches either.
pub fn set_event_matches(token: &str, system: &str, event: &str) -> bool {
    let any = |p: &str| p.is_empty() || p == "*";
    match token.split_once(':') {
        Some((s, e)) => (any(s) || s == system) && (any(e) || e == event),
        None => any(token) || token == system || token == event,
    }
}

/// `set_event`: the kernel reads one token per write call (a fresh parser each time, so a
/// token ends with the write) and returns what it consumed; the caller writes the rest again.
/// Every token becomes one checked write (or the visible events it covers, one by one).
fn set_event(policy: &Policy, ctx: &WriteContext<'_>, data: &[u8]) -> Result<Decision, FsError> {
    let mut writes = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let before = at;
        let checked = match kparse::next_token(&data[at..], kparse::TOKEN_BUFFER) {
            Ok(Token::Word(token, used)) => {
                at += used;
                set_event_token(policy, ctx, token)
            }
            Ok(Token::Empty(used)) => {
                at += used.max(1);
                continue;
            }
            Err(_) => Err(refuse(
                ctx,
                libc::EINVAL,
                format_args!("a token over 127 bytes"),
            )),
        };
        match checked {
            Ok(mut out) => writes.append(&mut out),
            Err(e) if writes.is_empty() => return Err(e),
            // Like the kernel, what came before stays done; the guest's next write (the
            // rest) gets the error.
            Err(_) => {
                at = before;
                break;
            }
        }
    }
    Ok(Decision::Forward {
        writes,
        consumed: at,
    })
}

fn set_event_token(
    policy: &Policy,
    ctx: &WriteContext<'_>,
    token: &[u8],
) -> Result<Vec<Vec<u8>>, FsError> {
    let text = std::str::from_utf8(token)
        .ok()
        .filter(|t| t.matches(':').count() <= 1)
        .ok_or_else(|| {
            refuse(
                ctx,
                libc::EINVAL,
                format_args!("set_event token {:?}", String::from_utf8_lossy(token)),
            )
        })?;
    let line = |t: &str| format!("{t}\n").into_bytes();
    if text.starts_with('!') {
        // Disabling reaches hidden events too, which the guest could not have enabled.
        return Ok(vec![line(text)]);
    }
    let matched: Vec<(&str, &str)> = ctx
        .events
        .iter()
        .filter(|(s, e)| set_event_matches(text, s, e))
        .collect();
    let hidden = |&(s, e): &(&str, &str)| ctx.hidden.contains(s, e);
    check_enable_limit(policy, ctx, matched.iter().copied().filter(|k| !hidden(k)))?;
    if !matched.iter().any(hidden) {
        return Ok(vec![line(text)]);
    }
    if matched.iter().all(hidden) {
        // As the kernel answers a name that matches no event: hidden is not there.
        return Err(refuse(
            ctx,
            libc::EINVAL,
            format_args!("set_event {text:?}: no visible event"),
        ));
    }
    log::info!("policy: set_event {text:?} covers hidden events: enabling only the visible ones");
    Ok(matched
        .into_iter()
        .filter(|k| !hidden(k))
        .map(|(s, e)| line(&format!("{s}:{e}")))
        .collect())
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

#[cfg(test)]
mod matcher_tests {
    use super::set_event_matches;

    #[test]
    fn set_event_tokens_match_like_the_kernel() {
        assert!(set_event_matches(
            "sched:sched_switch",
            "sched",
            "sched_switch"
        ));
        assert!(set_event_matches("sched:*", "sched", "x"));
        assert!(set_event_matches("sched:", "sched", "x"));
        assert!(set_event_matches("*:x", "sched", "x"));
        assert!(set_event_matches("sched", "sched", "x"));
        assert!(set_event_matches("x", "sched", "x"));
        assert!(set_event_matches("*", "a", "b"));
        assert!(!set_event_matches("irq:*", "sched", "x"));
        assert!(!set_event_matches("sched:y", "sched", "x"));
    }
}
