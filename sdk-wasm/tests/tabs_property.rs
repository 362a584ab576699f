//! Random interleavings of several tabs sharing one store, checked against the session rules
//! of product.md §1:
//! - no event without a session ID, and sequence numbers count up within a session;
//! - `"browser"` scope: activity in any tab with gaps up to the timeout never starts a second
//!   session (until the maximum duration), and a gap over it always does;
//! - `"tab"` scope: no two tabs ever share a session.
#![cfg(not(target_arch = "wasm32"))]

use footfall_sdk::options::{Options, SessionScope};
use footfall_sdk::platform::{Clock, Entropy, Storage};
use footfall_sdk::tracker::{Occurrence, Tracker};
use footfall_wire::{Event, EventType};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

#[derive(Clone)]
struct SharedClock(Rc<Cell<i64>>);
impl Clock for SharedClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

#[derive(Clone, Default)]
struct Mem(Rc<RefCell<HashMap<String, String>>>);
impl Storage for Mem {
    fn get(&self, k: &str) -> Option<String> {
        self.0.borrow().get(k).cloned()
    }
    fn set(&mut self, k: &str, v: &str) {
        self.0.borrow_mut().insert(k.into(), v.into());
    }
    fn remove(&mut self, k: &str) {
        self.0.borrow_mut().remove(k);
    }
}

struct Rng(u64);
impl Entropy for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 33) as u8;
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Wait(i64),
    Event(usize),
    Input(usize),
}

const TIMEOUT: i64 = 30 * 60_000;
const MAX: i64 = 4 * 60 * 60_000;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        // Gaps around the timeout are the interesting ones.
        prop_oneof![
            Just(TIMEOUT),
            Just(TIMEOUT + 1),
            1i64..120_000,
            (TIMEOUT - 2_000)..(TIMEOUT + 2_000),
            1i64..(3 * TIMEOUT)
        ]
        .prop_map(Op::Wait),
        (0usize..3).prop_map(Op::Event),
        (0usize..3).prop_map(Op::Input),
    ];
    proptest::collection::vec(op, 1..120)
}

/// Runs the ops; returns each event as (tab, event, time).
fn run(scope: SessionScope, ops: &[Op]) -> Vec<(usize, Event, i64)> {
    let clock = SharedClock(Rc::new(Cell::new(1_795_428_000_000)));
    let shared = Mem::default();
    let options = Options {
        key: "k".into(),
        session_timeout_ms: TIMEOUT,
        max_session_duration_ms: MAX,
        session_scope: scope,
        batch_size: 500,
        ..Options::default()
    };
    let mut tabs: Vec<_> = (0..3)
        .map(|i| {
            Tracker::new(
                options.clone(),
                clock.clone(),
                shared.clone(),
                Mem::default(),
                Rng(i as u64 + 1),
                false,
            )
        })
        .collect();
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Wait(ms) => clock.0.set(clock.0.get() + ms),
            Op::Input(t) => tabs[t].input(),
            Op::Event(t) => {
                let json = tabs[t].record(
                    Occurrence {
                        kind: EventType::Track,
                        name: "e",
                        props: "{}",
                        traits: None,
                        page: "",
                        at_ms: 0,
                    },
                    "",
                );
                let e: Event = serde_json::from_str(&json.unwrap()).unwrap();
                out.push((t, e, clock.0.get()));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn browser_scope_follows_the_timeout_across_tabs(ops in ops()) {
        // Replays the rule on the activity times, independently of the implementation.
        let events = run(SessionScope::Browser, &ops);
        let mut activity = Vec::new(); // (time, is_event)
        let clock0 = 1_795_428_000_000i64;
        let mut now = clock0;
        let mut last_input: HashMap<usize, i64> = HashMap::new();
        for op in &ops {
            match *op {
                Op::Wait(ms) => now += ms,
                Op::Event(_) => activity.push((now, true)),
                Op::Input(t) => {
                    if last_input.get(&t).is_none_or(|&l| now - l >= 5_000) {
                        last_input.insert(t, now);
                        activity.push((now, false));
                    }
                }
            }
        }
        // Expected session index of every event.
        let mut expected = Vec::new();
        let (mut index, mut start, mut last) = (0usize, None::<i64>, 0i64);
        for (t, is_event) in activity {
            match start {
                Some(s) if t - last <= TIMEOUT && t - s <= MAX => {}
                Some(_) => { index += 1; start = Some(t); }
                None => start = Some(t),
            }
            last = t;
            if is_event { expected.push(index); }
        }
        prop_assert_eq!(events.len(), expected.len());
        // Sessions with inputs only have no events, so indices may skip: map them.
        let mut ids: HashMap<usize, String> = HashMap::new();
        for ((_, e, _), want) in events.iter().zip(&expected) {
            prop_assert!(!e.session_id.is_empty());
            let id = ids.entry(*want).or_insert_with(|| e.session_id.clone());
            prop_assert_eq!(&e.session_id, id, "event in the wrong session");
        }
        let distinct: HashSet<&String> = ids.values().collect();
        prop_assert_eq!(distinct.len(), ids.len(), "two visits glued into one session");
        // Sequence numbers count 1, 2, 3... in each session, whichever tab sent.
        let mut next: HashMap<&str, u64> = HashMap::new();
        for (_, e, _) in &events {
            let n = next.entry(e.session_id.as_str()).or_insert(1);
            prop_assert_eq!(e.seq, *n);
            *n += 1;
        }
    }

    #[test]
    fn tab_scope_never_shares_a_session_between_tabs(ops in ops()) {
        let events = run(SessionScope::Tab, &ops);
        let mut owner: HashMap<String, usize> = HashMap::new();
        let anon: HashSet<&str> = events.iter().map(|(_, e, _)| e.anonymous_id.as_str()).collect();
        prop_assert!(anon.len() <= 1, "one visitor across tabs");
        for (t, e, _) in &events {
            prop_assert!(!e.session_id.is_empty());
            let o = owner.entry(e.session_id.clone()).or_insert(*t);
            prop_assert_eq!(*o, *t, "two tabs share a session");
        }
    }
}
