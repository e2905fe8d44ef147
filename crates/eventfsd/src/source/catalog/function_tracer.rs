//! The `function` tracer over the catalog's `available_filter_functions`: `current_tracer`,
//! `set_ftrace_filter`, `set_ftrace_notrace`, `set_ftrace_pid`, `set_ftrace_notrace_pid`, and
//! the calls it records (what `kernel/trace/ftrace.c` and `trace_functions.c` do).
//!
//! While an instance's tracer is `function`, its `ftrace/function` event fires at the profile's
//! rate for `ftrace:function`; each occurrence is a call of one traced function (chosen
//! evenly among those the filters select) from another function of the list.

use std::collections::BTreeSet;

use eventfs_core::layout::RootFile;
use eventfs_core::tree::{DirId, Ino, Tree};
use eventfs_core::FsError;
use ftrace_text::format;
use ftrace_text::functions::FunctionTable;
use ftrace_text::{FieldValue, Generator, Record};

use super::state::{InstanceState, State};

/// The name `current_tracer` and `trace`'s header show for an instance.
pub fn tracer_name(instance: &InstanceState) -> &'static str {
    if instance.function_tracer {
        "function"
    } else {
        "nop"
    }
}

/// A write to `current_tracer`: `nop`, or `function` when the catalog lists functions.
/// Setting another tracer empties the buffer, as `tracer_init` does; setting the current one
/// again changes nothing (`tracing_set_tracer` returns early).
pub fn set_tracer(
    state: &State,
    tree: &Tree,
    dir: DirId,
    functions: &FunctionTable,
    name: &str,
) -> Result<(), FsError> {
    let function = match name {
        "nop" => false,
        "function" if !functions.is_empty() => true,
        _ => {
            return Err(FsError::Invalid(format!(
                "tracer {name:?} is not simulated"
            )))
        }
    };
    state.instance(tree, dir, |i| {
        if i.function_tracer != function {
            i.ring.clear();
            i.function_tracer = function;
        }
    });
    Ok(())
}

/// An open with `O_TRUNC` of one of the selection files: it starts empty.
pub fn truncate(state: &State, tree: &Tree, dir: DirId, file: RootFile) {
    state.instance(tree, dir, |i| match file {
        RootFile::SetFtraceFilter => i.ftrace.filter.clear(),
        RootFile::SetFtraceNotrace => i.ftrace.notrace.clear(),
        RootFile::SetFtracePid => i.ftrace.pids.clear(),
        RootFile::SetFtraceNotracePid => i.ftrace.notrace_pids.clear(),
        _ => {}
    });
}

/// A write to one of the selection files (appended to what it holds).
pub fn write(
    state: &State,
    tree: &Tree,
    dir: DirId,
    functions: &FunctionTable,
    file: RootFile,
    data: &[u8],
) -> Result<(), FsError> {
    let text = String::from_utf8_lossy(data);
    match file {
        RootFile::SetFtraceFilter | RootFile::SetFtraceNotrace => {
            let notrace = file == RootFile::SetFtraceNotrace;
            // Under the instance's lock, as the kernel holds ftrace_lock: two writers of one
            // file each see the other's update. The tokens before a failing one stay applied.
            let result = state.instance(tree, dir, |i| {
                let list = if notrace {
                    &mut i.ftrace.notrace
                } else {
                    &mut i.ftrace.filter
                };
                let mut set: BTreeSet<u32> = list.iter().copied().collect();
                let result = functions.apply(&mut set, &text);
                *list = set.into_iter().collect();
                result
            });
            result.map_err(|e| FsError::Invalid(format!("{file:?}: {e}")))
        }
        RootFile::SetFtracePid | RootFile::SetFtraceNotracePid => {
            let pids = ftrace_text::kparse::pids_of_write(data)
                .map_err(|e| FsError::Invalid(format!("{file:?}: {e:?}")))?;
            state.instance(tree, dir, |i| {
                let list = if file == RootFile::SetFtracePid {
                    &mut i.ftrace.pids
                } else {
                    &mut i.ftrace.notrace_pids
                };
                list.extend(pids);
            });
            Ok(())
        }
        _ => Err(FsError::Invalid(format!(
            "{file:?} is not a function tracer file"
        ))),
    }
}

/// What one of the selection files reads.
pub fn read(
    state: &State,
    tree: &Tree,
    dir: DirId,
    functions: &FunctionTable,
    file: RootFile,
) -> Vec<u8> {
    state.instance(tree, dir, |i| {
        let text = match file {
            RootFile::SetFtraceFilter if i.ftrace.filter.is_empty() => {
                "#### all functions enabled ####\n".to_string()
            }
            RootFile::SetFtraceFilter => functions.listing(&i.ftrace.filter),
            RootFile::SetFtraceNotrace if i.ftrace.notrace.is_empty() => {
                "#### no functions disabled ####\n".to_string()
            }
            RootFile::SetFtraceNotrace => functions.listing(&i.ftrace.notrace),
            RootFile::SetFtracePid | RootFile::SetFtraceNotracePid => {
                let pids = if file == RootFile::SetFtracePid {
                    &i.ftrace.pids
                } else {
                    &i.ftrace.notrace_pids
                };
                if pids.is_empty() {
                    "no pid\n".to_string()
                } else {
                    pids.iter().map(|p| format!("{p}\n")).collect()
                }
            }
            _ => String::new(),
        };
        text.into_bytes()
    })
}

/// The `ftrace/function` event directories of the instances whose tracer is `function`:
/// the recorder makes them fire.
pub fn driven(state: &State, tree: &Tree) -> Vec<Ino> {
    state.event_of_instances_where(tree, ("ftrace", "function"), |i| i.function_tracer)
}

/// Whether `dir` is an instance's `ftrace/function` event.
pub fn is_function_event(tree: &Tree, dir: DirId) -> bool {
    tree.dir_name(dir) == "function" && tree.dir_name(tree.parent_of(dir)) == "ftrace"
}

/// One call the function tracer of `instance` records at `ts`, or `None` when the chosen
/// function or task is not traced (a notrace function, a task outside `set_ftrace_pid` or
/// on `set_ftrace_notrace_pid`).
pub fn call(
    instance: &InstanceState,
    functions: &FunctionTable,
    generator: &mut Generator,
    ts: u64,
    event_id: u32,
    fields: &[format::Field<'_>],
) -> Option<Record> {
    let count = functions.len() as u64;
    if count == 0 {
        return None;
    }
    let selection = &instance.ftrace;
    let callee = if selection.filter.is_empty() {
        generator.below(count) as u32
    } else {
        selection.filter[generator.below(selection.filter.len() as u64) as usize]
    };
    if selection.notrace.binary_search(&callee).is_ok() {
        return None;
    }
    let caller = generator.below(count) as u32;
    let mut record = generator.record_at(ts, event_id, fields);
    if !selection.pids.is_empty() {
        let pick = generator.below(selection.pids.len() as u64) as usize;
        if let Some(&pid) = selection.pids.iter().nth(pick) {
            record.pid = pid as i32;
        }
    }
    if selection.notrace_pids.contains(&(record.pid as u32)) {
        return None;
    }
    for (field, value) in fields.iter().zip(record.fields.iter_mut()) {
        match field.name {
            "ip" => *value = FieldValue::UInt(FunctionTable::address(callee)),
            "parent_ip" => *value = FieldValue::UInt(FunctionTable::address(caller)),
            "common_pid" => *value = FieldValue::Int(i64::from(record.pid)),
            _ => {}
        }
    }
    Some(record)
}

/// A function record's text after the context columns: `callee <-caller`, as
/// `trace_fn_trace` prints it with `print-parent` set.
pub fn render_call(functions: &FunctionTable, ip: u64, parent_ip: u64, out: &mut String) {
    use std::fmt::Write as _;
    let name = |address: u64, out: &mut String| match functions.at(address) {
        Some(name) => out.push_str(name),
        None => {
            let _ = write!(out, "0x{address:x}");
        }
    };
    name(ip, out);
    out.push_str(" <-");
    name(parent_ip, out);
}

/// Where `ip` and `parent_ip` are among the fields of the `ftrace/function` format.
pub fn call_fields(fields: &[format::Field<'_>]) -> Option<(usize, usize)> {
    let at = |name: &str| fields.iter().position(|f| f.name == name);
    Some((at("ip")?, at("parent_ip")?))
}
