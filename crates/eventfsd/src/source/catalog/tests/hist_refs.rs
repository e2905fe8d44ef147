//! How histograms find each other's variables, as Linux 6.1 resolves them (checked against
//! Debian's 6.1 guest kernel in guest test 62).

use eventfs_core::FsError;

use super::sim::Sim;

const SWITCH: &str = "events/sched/sched_switch/trigger";
const WAKING: &str = "events/sched/sched_waking/trigger";
const FORK: &str = "events/sched/sched_process_fork/trigger";

/// Switches and wakings at 200/s.
fn sim() -> Sim {
    Sim::debian_6_1_firing("sched:sched_waking 200\nsched:sched_switch 200\n")
}

/// The messages `error_log` holds, oldest first.
fn errors(sim: &Sim) -> Vec<String> {
    sim.read("error_log")
        .lines()
        .filter_map(|l| l.split(" error: ").nth(1))
        .map(String::from)
        .collect()
}

/// Writes a refused trigger and returns the messages it logged.
fn refused(sim: &Sim, file: &str, text: &str) -> Vec<String> {
    let before = errors(sim).len();
    let written = sim.append(file, &format!("{text}\n"));
    assert_eq!(written.map_err(|e| e.errno()), Err(libc::EINVAL), "{text}");
    errors(sim).split_off(before)
}

/// The caret column of the last `error_log` entry, counted from the command's start.
fn last_caret(sim: &Sim) -> usize {
    let log = sim.read("error_log");
    let caret = log
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with('^'))
        .unwrap();
    caret.len() - 1 - "  Command: ".len()
}

#[test]
fn a_variable_holding_one_field_is_read_as_that_field() {
    let sim = sim();
    sim.append(SWITCH, "hist:keys=next_pid:a=common_timestamp.usecs,b=$a\n")
        .unwrap();
    assert!(
        sim.read(SWITCH)
            .contains(":a=common_timestamp.usecs,b=common_timestamp.usecs:"),
        "{}",
        sim.read(SWITCH)
    );
    // One computed by an expression defined before reads as its first operand (6.1 cut the
    // expression's text when it parsed it); defined after, it is looked up elsewhere.
    sim.append(SWITCH, "hist:keys=prev_pid:c=next_prio*2+prev_prio,d=$c\n")
        .unwrap();
    assert!(
        sim.read(SWITCH)
            .contains(":c=next_prio*2+prev_prio,d=next_prio:"),
        "{}",
        sim.read(SWITCH)
    );
    assert_eq!(
        refused(&sim, SWITCH, "hist:keys=common_pid:e=$f,f=next_prio-1"),
        ["Couldn't find variable", "Couldn't find field"]
    );
}

#[test]
fn a_histogram_reads_the_variables_of_another_on_its_own_event() {
    let sim = sim();
    sim.append(SWITCH, "hist:keys=next_pid:p=next_prio\n")
        .unwrap();
    sim.append(SWITCH, "hist:keys=next_pid:q=$p+1\n").unwrap();
    sim.run_for(1000);
    let hist = sim.read("events/sched/sched_switch/hist");
    let totals: Vec<u64> = hist
        .lines()
        .filter_map(|l| l.strip_prefix("    Hits: "))
        .map(|n| n.parse().unwrap())
        .collect();
    // The reader counts only the switches whose key the first one set a value for (and
    // consumes it), which are all of them: the first trigger runs before it.
    assert_eq!(totals.len(), 2, "{hist}");
    assert!(totals[0] > 100 && totals[1] == totals[0], "{hist}");
    assert!(matches!(
        sim.append(SWITCH, "!hist:keys=next_pid:p=next_prio\n"),
        Err(FsError::Os(libc::EBUSY))
    ));
    sim.append(SWITCH, "!hist:keys=next_pid:q=$p+1\n").unwrap();
    sim.append(SWITCH, "!hist:keys=next_pid:p=next_prio\n")
        .unwrap();
}

#[test]
fn a_variable_name_is_new_on_its_event() {
    let sim = sim();
    sim.append(SWITCH, "hist:keys=next_pid:p=next_prio\n")
        .unwrap();
    // Again, paused, or on another trigger of the same event: already defined, with the
    // caret under the first occurrence of the name's text in the command (the `p` of
    // `next_pid`, as the kernel's err_pos finds it).
    for text in [
        "hist:keys=next_pid:p=next_prio",
        "hist:keys=next_pid:p=next_prio:pause",
        "hist:keys=prev_pid:p=prev_prio",
    ] {
        assert_eq!(
            refused(&sim, SWITCH, text),
            ["Variable already defined"],
            "{text}"
        );
        assert_eq!(last_caret(&sim), text.find('p').unwrap(), "{text}");
    }
    // Another event may define it.
    sim.append(WAKING, "hist:keys=pid:p=prio\n").unwrap();
}

#[test]
fn a_name_two_events_define_needs_its_event() {
    let sim = sim();
    sim.append(WAKING, "hist:keys=pid:ts0=common_timestamp\n")
        .unwrap();
    sim.append(FORK, "hist:keys=child_pid:ts0=common_timestamp\n")
        .unwrap();
    assert_eq!(
        refused(&sim, SWITCH, "hist:keys=next_pid:lat=common_timestamp-$ts0"),
        [
            "Variable name not unique, need to use fully qualified name (subsys.event.var) for variable",
            "Couldn't find variable",
            "Couldn't find field"
        ]
    );
    sim.append(
        SWITCH,
        "hist:keys=next_pid:lat=common_timestamp-sched.sched_waking.$ts0\n",
    )
    .unwrap();
    assert!(
        sim.read(SWITCH)
            .contains(":lat=common_timestamp-$sched.sched_waking.ts0:"),
        "{}",
        sim.read(SWITCH)
    );
    // The event an onmatch() names is looked at first.
    sim.write("synthetic_events", "lat3 u64 lat\n").unwrap();
    sim.append(
        SWITCH,
        "hist:keys=prev_pid:l3=common_timestamp-$ts0:onmatch(sched.sched_waking).lat3($l3)\n",
    )
    .unwrap();
    // A qualified name of an event that lacks it is missing.
    assert_eq!(
        refused(
            &sim,
            SWITCH,
            "hist:keys=common_pid:l4=common_timestamp-sched.sched_switch.$ts0"
        ),
        ["Couldn't find variable", "Couldn't find field"]
    );
}

#[test]
fn timestamp_units_must_match_in_an_expression() {
    let sim = sim();
    sim.append(WAKING, "hist:keys=pid:ts0=common_timestamp\n")
        .unwrap();
    for text in [
        "hist:keys=next_pid:lat=common_timestamp.usecs-$ts0",
        "hist:keys=next_pid:x=common_timestamp.usecs/1000",
    ] {
        assert_eq!(
            refused(&sim, SWITCH, text),
            ["Timestamp units in expression don't match"],
            "{text}"
        );
        assert_eq!(last_caret(&sim), 0);
    }
    sim.append(SWITCH, "hist:keys=next_pid:lat=common_timestamp-$ts0\n")
        .unwrap();
}

#[test]
fn one_usecs_timestamp_makes_every_timestamp_of_its_histogram_usecs() {
    let sim = sim();
    sim.append(SWITCH, "hist:keys=common_timestamp\n").unwrap();
    sim.append(
        SWITCH,
        "hist:keys=common_timestamp:t=common_timestamp.usecs\n",
    )
    .unwrap();
    sim.run_for(500);
    let hist = sim.read("events/sched/sched_switch/hist");
    let sections: Vec<Vec<u64>> = hist
        .split("# event histogram")
        .skip(1)
        .map(|section| {
            let mut keys: Vec<u64> = section
                .lines()
                .filter_map(|l| l.strip_prefix("{ common_timestamp: "))
                .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            keys.sort_unstable();
            keys
        })
        .collect();
    assert_eq!(sections.len(), 2, "{hist}");
    assert!(sections[0].len() > 50, "{hist}");
    let in_usecs: Vec<u64> = sections[0].iter().map(|ns| (ns + 500) / 1000).collect();
    assert_eq!(sections[1], in_usecs, "{hist}");
}

#[test]
fn opening_trigger_with_o_trunc_removes_the_histograms_nobody_reads() {
    let sim = sim();
    sim.append(SWITCH, "hist:keys=next_pid\n").unwrap();
    sim.append(SWITCH, "enable_hist:sched:sched_waking\n")
        .unwrap();
    sim.append(SWITCH, "traceoff\n").unwrap();
    sim.write(SWITCH, "hist:keys=prev_pid\n").unwrap();
    let listed: Vec<String> = sim.read(SWITCH).lines().map(String::from).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].starts_with("traceoff:unlimited"), "{listed:?}");
    assert!(listed[1].starts_with("hist:keys=prev_pid:"), "{listed:?}");
    // A histogram another reads keeps every histogram of its event.
    sim.append(WAKING, "hist:keys=pid:ts0=common_timestamp\n")
        .unwrap();
    sim.append(SWITCH, "hist:keys=next_pid:lat=common_timestamp-$ts0\n")
        .unwrap();
    sim.write(WAKING, "hist:keys=common_pid\n").unwrap();
    assert_eq!(sim.read(WAKING).lines().count(), 2, "{}", sim.read(WAKING));
}

#[test]
fn a_field_of_the_matched_event_is_held_by_a_histogram_made_there() {
    let sim = sim();
    sim.write("synthetic_events", "wl u64 lat; pid_t pid; int prio\n")
        .unwrap();
    sim.append(
        WAKING,
        "hist:keys=pid:ts0=common_timestamp.usecs if prio < 200\n",
    )
    .unwrap();
    let lat = "hist:keys=next_pid:lat=common_timestamp.usecs-$ts0:\
               onmatch(sched.sched_waking).wl($lat,next_pid,sched.sched_waking.prio)";
    sim.append(SWITCH, &format!("{lat}\n")).unwrap();
    let waking: Vec<String> = sim.read(WAKING).lines().map(String::from).collect();
    assert_eq!(
        waking[1],
        "hist:keys=pid:vals=hitcount:synthetic_prio=prio:sort=hitcount:size=2048 \
         if prio < 200 [active]",
        "{waking:?}"
    );
    // It is busy while the histogram that made it exists, and goes with it.
    assert!(matches!(
        sim.append(WAKING, "!hist:keys=pid:synthetic_prio=prio if prio < 200\n"),
        Err(FsError::Os(libc::EBUSY))
    ));
    sim.write("events/synthetic/wl/enable", "1\n").unwrap();
    sim.run_for(1000);
    let lines = sim.records("trace");
    assert!(lines.len() > 10, "{lines:?}");
    for line in &lines {
        let prio: u32 = line
            .split(" prio=")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect(line);
        assert!(prio < 200, "{line}");
    }
    sim.append(SWITCH, &format!("!{lat}\n")).unwrap();
    assert_eq!(sim.read(WAKING).lines().count(), 1, "{}", sim.read(WAKING));
    // onmax() has no matched event to look at; a plain field there is missing.
    assert_eq!(
        refused(
            &sim,
            SWITCH,
            "hist:keys=next_pid:p=2*next_prio:onmax($p).wl($p,next_pid,prio)"
        ),
        ["Couldn't find field", "Couldn't parse field variable"]
    );
}

#[test]
fn a_field_variable_histogram_another_maker_reuses_stays_with_it() {
    let sim = sim();
    sim.write("synthetic_events", "pr int prio\n").unwrap();
    sim.append(WAKING, "hist:keys=pid:ts0=common_timestamp\n")
        .unwrap();
    let first = "hist:keys=next_pid:a=$ts0:onmatch(sched.sched_waking).pr(sched.sched_waking.prio)";
    let second =
        "hist:keys=prev_pid:b=$ts0:onmatch(sched.sched_waking).pr(sched.sched_waking.prio)";
    sim.append(SWITCH, &format!("{first}\n")).unwrap();
    sim.append(SWITCH, &format!("{second}\n")).unwrap();
    // One histogram holds prio for both.
    assert_eq!(sim.read(WAKING).lines().count(), 2, "{}", sim.read(WAKING));
    sim.append(SWITCH, &format!("!{first}\n")).unwrap();
    assert_eq!(sim.read(WAKING).lines().count(), 2, "{}", sim.read(WAKING));
}
