//! Engaged time on one page: the time it was visible and the user active, carried by
//! `$pageleave` as `props.engaged_ms`.
//!
//! The user counts as active from any input (pointer, key, scroll, touch), from the page
//! coming into view and from the page view itself, for [`ACTIVE_FOR_MS`] after it. Time with the
//! page hidden never counts; a reader who scrolls now and then counts the whole time, a page
//! left open in a visible window without input stops counting after half a minute.

#[allow(unused_imports)]
use crate::prelude::*;

/// How long one input keeps the user counted as active.
pub const ACTIVE_FOR_MS: i64 = 30_000;

#[derive(Debug, Clone, Default)]
pub struct Engagement {
    /// Engaged time counted so far on this page.
    engaged_ms: i64,
    /// Time up to which `engaged_ms` has been counted.
    counted_to: i64,
    /// The user counts as active until then.
    active_until: i64,
    hidden: bool,
}

impl Engagement {
    /// A page view at `now`: counting starts afresh.
    pub fn start(&mut self, now: i64, hidden: bool) {
        *self = Engagement {
            engaged_ms: 0,
            counted_to: now,
            active_until: now + ACTIVE_FOR_MS,
            hidden,
        };
    }

    fn settle(&mut self, now: i64) {
        if !self.hidden {
            let end = now.min(self.active_until);
            self.engaged_ms += (end - self.counted_to).max(0);
        }
        self.counted_to = self.counted_to.max(now);
    }

    /// User input at `now`.
    pub fn input(&mut self, now: i64) {
        self.settle(now);
        self.active_until = self.active_until.max(now + ACTIVE_FOR_MS);
    }

    /// The page was hidden (`true`) or came into view (`false`) at `now`.
    pub fn set_hidden(&mut self, hidden: bool, now: i64) {
        self.settle(now);
        if self.hidden && !hidden {
            self.active_until = self.active_until.max(now + ACTIVE_FOR_MS);
        }
        self.hidden = hidden;
    }

    /// The engaged time of the page left at `now`.
    pub fn engaged_ms(&mut self, now: i64) -> i64 {
        self.settle(now);
        self.engaged_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn steady_input_counts_every_millisecond() {
        let mut e = Engagement::default();
        e.start(0, false);
        for t in (3..=60).step_by(3) {
            e.input(t * S);
        }
        assert_eq!(e.engaged_ms(60 * S), 60 * S);
    }

    #[test]
    fn idle_time_counts_only_for_a_while_after_the_last_input() {
        let mut e = Engagement::default();
        e.start(0, false);
        e.input(10 * S);
        // Ten idle minutes: 10 s, then 30 s after the last input.
        assert_eq!(e.engaged_ms(610 * S), 40 * S);
        // Input again: counting resumes from then, not from the last input.
        e.input(620 * S);
        assert_eq!(e.engaged_ms(630 * S), 50 * S);
    }

    #[test]
    fn hidden_time_never_counts() {
        let mut e = Engagement::default();
        e.start(0, false);
        e.input(5 * S);
        e.set_hidden(true, 10 * S);
        e.input(20 * S); // a scroll event while hidden changes nothing
        e.set_hidden(false, 70 * S);
        e.input(75 * S);
        assert_eq!(e.engaged_ms(80 * S), 20 * S);
    }

    #[test]
    fn a_page_opened_hidden_counts_from_when_it_is_shown() {
        let mut e = Engagement::default();
        e.start(0, true);
        assert_eq!(e.engaged_ms(100 * S), 0);
        e.set_hidden(false, 100 * S);
        assert_eq!(e.engaged_ms(110 * S), 10 * S);
    }

    #[test]
    fn a_clock_moving_back_counts_nothing_negative() {
        let mut e = Engagement::default();
        e.start(100 * S, false);
        e.input(50 * S);
        assert_eq!(e.engaged_ms(40 * S), 0);
        assert_eq!(e.engaged_ms(110 * S), 10 * S);
    }

    #[test]
    fn a_new_page_view_starts_from_zero() {
        let mut e = Engagement::default();
        e.start(0, false);
        assert_eq!(e.engaged_ms(20 * S), 20 * S);
        e.start(20 * S, false);
        assert_eq!(e.engaged_ms(25 * S), 5 * S);
    }
}
