//! Funnels and retention: questions about the order of each person's events. A store only
//! finds the events that match a step ([`Store::step_events`]); the rules below run on those,
//! the same for every store, so SQLite and ClickHouse cannot disagree on them.

use super::Filter;

/// One step of a funnel, or the start or return event of retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Any event at all.
    Any,
    /// An event of this name.
    Event(String),
    /// A page view of this path (`$pageview:/pricing`).
    Page(String),
}

impl Step {
    /// `NAME` or `$pageview:/PATH`.
    pub fn parse(s: &str) -> Result<Step, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("is empty: an event name, or $pageview:/path".into());
        }
        Ok(match s.strip_prefix("$pageview:") {
            Some(path) if path.starts_with('/') => Step::Page(path.to_owned()),
            Some(path) => return Err(format!("{path:?} is not a path starting with /")),
            None => Step::Event(s.to_owned()),
        })
    }

    /// Whether an event of this name and path is this step.
    pub fn matches(&self, name: &str, path: &str) -> bool {
        match self {
            Step::Any => true,
            Step::Event(n) => n == name,
            Step::Page(p) => name == "$pageview" && p == path,
        }
    }

    /// The event name this step needs, if one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::Any => None,
            Step::Event(n) => Some(n),
            Step::Page(_) => Some("$pageview"),
        }
    }

    /// The event names any of `steps` needs; empty when one of them is any event.
    pub fn names(steps: &[Step]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in steps {
            match s.name() {
                None => return Vec::new(),
                Some(n) if !names.iter().any(|x| x == n) => names.push(n.to_owned()),
                Some(_) => {}
            }
        }
        names
    }

    /// Which of `steps` an event of this name and path is, as bits (step `i` is bit `i`).
    pub fn mask(steps: &[Step], name: &str, path: &str) -> u32 {
        steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matches(name, path))
            .fold(0, |m, (i, _)| m | 1 << i)
    }
}

/// The events of `[from_ms, to_ms)` that match one of `steps`, of the named sites (none:
/// every site), passing every filter (bots are left out by a filter, as in insights).
#[derive(Debug, Clone)]
pub struct StepQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub steps: Vec<Step>,
    pub filters: Vec<Filter>,
    pub sites: Vec<String>,
}

/// An event that is one or more steps: its person (a number that stands for one person
/// within one answer), its time and which steps it is (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepHit {
    pub person: u64,
    pub time_ms: i64,
    pub mask: u32,
}

/// Hits grouped by person, each person's in time order.
fn by_person(mut hits: Vec<StepHit>) -> Vec<Vec<StepHit>> {
    hits.sort_unstable_by_key(|h| (h.person, h.time_ms, h.mask));
    let mut out: Vec<Vec<StepHit>> = Vec::new();
    let mut last = None;
    for h in hits {
        if last != Some(h.person) {
            out.push(Vec::new());
            last = Some(h.person);
        }
        out.last_mut().expect("pushed").push(h);
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStep {
    /// People who did steps 1..=k in order within the window.
    pub count: u64,
    /// The median time from the step before to this one, over the people who reached it
    /// (their attempt that went furthest, the earliest of those); `None` for the first step
    /// and steps nobody reached.
    pub median_seconds: Option<f64>,
}

/// A funnel over hits of `steps.len()` steps in `[from_ms, to_ms + window_ms]`: a person
/// counts at step k when, from an occurrence of step 1 in `[from_ms, to_ms)`, they did steps
/// 2..=k each strictly later than the one before, all at most `window_ms` after step 1. Every
/// occurrence of step 1 is tried; the one that goes furthest counts.
pub fn funnel(
    hits: Vec<StepHit>,
    steps: usize,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
) -> Vec<FunnelStep> {
    let mut counts = vec![0u64; steps];
    let mut gaps: Vec<Vec<i64>> = vec![Vec::new(); steps];
    for events in by_person(hits) {
        // The furthest step reached and the times of that attempt's steps.
        let mut best: (usize, Vec<i64>) = (0, Vec::new());
        for (i, first) in events.iter().enumerate() {
            if first.mask & 1 == 0 || first.time_ms < from_ms || first.time_ms >= to_ms {
                continue;
            }
            // Each next step at its earliest: no later choice can reach further.
            let mut times = vec![first.time_ms];
            for e in &events[i + 1..] {
                if times.len() == steps || e.time_ms - first.time_ms > window_ms {
                    break;
                }
                if e.time_ms > *times.last().expect("one") && e.mask & (1 << times.len()) != 0 {
                    times.push(e.time_ms);
                }
            }
            if times.len() > best.0 {
                best = (times.len(), times);
                if best.0 == steps {
                    break;
                }
            }
        }
        let (reached, times) = best;
        for k in 0..reached {
            counts[k] += 1;
            if k > 0 {
                gaps[k].push(times[k] - times[k - 1]);
            }
        }
    }
    counts
        .into_iter()
        .zip(gaps)
        .map(|(count, mut gaps)| FunnelStep {
            count,
            median_seconds: median(&mut gaps).map(|ms| ms / 1000.0),
        })
        .collect()
}

/// The median of some times in ms (the mean of the middle two of an even count).
fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub start_ms: i64,
    /// `values[0]`: the cohort's size; `values[k]`: its people who returned in period k.
    pub values: Vec<u64>,
}

/// Retention over hits of two steps (bit 0 the start event, bit 1 the return event) in the
/// periods that begin at `starts` (the last one ends at the range's end): each person joins
/// the cohort of the period of their first start event, and counts in period k of it when
/// they did the return event in the k-th period after. Every cohort has a value for each
/// period up to the range's end.
pub fn retention(hits: Vec<StepHit>, starts: &[i64]) -> Vec<Cohort> {
    let period = |t: i64| starts.partition_point(|&s| s <= t).saturating_sub(1);
    let mut cohorts: Vec<Cohort> = starts
        .iter()
        .enumerate()
        .map(|(i, &start_ms)| Cohort {
            start_ms,
            values: vec![0; starts.len() - i],
        })
        .collect();
    let mut returned: Vec<bool> = Vec::new();
    for events in by_person(hits) {
        let Some(first) = events.iter().find(|e| e.mask & 1 != 0) else {
            continue;
        };
        let c = period(first.time_ms);
        let cohort = &mut cohorts[c];
        cohort.values[0] += 1;
        returned.clear();
        returned.resize(cohort.values.len(), false);
        for e in events.iter().filter(|e| e.mask & 2 != 0) {
            let k = period(e.time_ms).saturating_sub(c);
            if e.time_ms > first.time_ms && k > 0 && !returned[k] {
                returned[k] = true;
                cohort.values[k] += 1;
            }
        }
    }
    cohorts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(person: u64, time_ms: i64, mask: u32) -> StepHit {
        StepHit {
            person,
            time_ms,
            mask,
        }
    }

    #[test]
    fn a_later_attempt_can_go_further_and_the_window_edge_counts() {
        // Person 0: step 1 at 0 (then nothing in time), step 1 again at 100, 2 at 150, 3 at
        // 200 = exactly the window after 100.
        let hits = vec![
            hit(0, 0, 1),
            hit(0, 100, 1),
            hit(0, 150, 2),
            hit(0, 200, 4),
            // Person 1: steps out of order, then 2 at the same ms as 1 (not after it).
            hit(1, 10, 2),
            hit(1, 20, 1),
            hit(1, 20, 2),
            hit(1, 400, 2),
        ];
        let got = funnel(hits, 3, 0, 1000, 100);
        let counts: Vec<u64> = got.iter().map(|s| s.count).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(got[1].median_seconds, Some(0.05));
        assert_eq!(got[0].median_seconds, None);
    }

    #[test]
    fn step_one_must_be_in_the_range_and_one_event_is_one_step() {
        // Step 1 before the range; one event that is steps 1 and 2 at once.
        let hits = vec![hit(0, -5, 1), hit(0, 1, 2), hit(1, 3, 3), hit(1, 9, 3)];
        let counts: Vec<u64> = funnel(hits, 2, 0, 10, 50).iter().map(|s| s.count).collect();
        assert_eq!(counts, [1, 1]);
    }

    #[test]
    fn cohorts_count_returns_in_later_periods_only() {
        let starts = [0, 10, 20, 30];
        let hits = vec![
            // Person 0 starts in period 0, returns in 0 (not counted), 2 and 2 again.
            hit(0, 1, 1),
            hit(0, 5, 2),
            hit(0, 21, 2),
            hit(0, 25, 2),
            // Person 1 returns before starting (not counted), starts in period 1, returns in 3.
            hit(1, 2, 2),
            hit(1, 12, 3),
            hit(1, 35, 2),
        ];
        let got = retention(hits, &starts);
        assert_eq!(got[0].values, [1, 0, 1, 0]);
        assert_eq!(got[1].values, [1, 0, 1]);
        assert_eq!(got[2].values, [0, 0]);
        assert_eq!(got[3].values, [0]);
    }

    #[test]
    fn steps_parse() {
        assert_eq!(Step::parse("buy"), Ok(Step::Event("buy".into())));
        assert_eq!(Step::parse("$pageview:/p?x"), Ok(Step::Page("/p?x".into())));
        assert!(Step::parse("$pageview:pricing").is_err());
        assert!(Step::parse(" ").is_err());
        let steps = [Step::Page("/".into()), Step::Event("buy".into())];
        assert_eq!(Step::mask(&steps, "$pageview", "/"), 1);
        assert_eq!(Step::mask(&steps, "buy", "/"), 2);
        assert_eq!(Step::names(&steps), ["$pageview", "buy"]);
        assert!(Step::names(&[Step::Any, Step::Event("x".into())]).is_empty());
    }
}
