//! The `Info, total operations = ...` lines a running server logs.

use std::time::{Duration, Instant};

/// At most one line per this much time, unless a `-progress` step is crossed.
const QUIET: Duration = Duration::from_secs(1);

/// Decides when to log a progress line and writes it, in the original's
/// format: at most once a second, and only if operations were answered or
/// the number of sessions changed since the last line; and, with a step
/// `every` > 0, also whenever the operation count crosses a multiple of
/// `every`, however soon after the last line.
#[derive(Debug, Clone)]
pub struct Progress {
    every: u64,
    ops: u64,
    sessions: usize,
    last: Instant,
}

impl Progress {
    /// A reporter whose previous line is taken to be at `now`, with no
    /// operations and no sessions; `every` is the `-progress` step (0: none).
    pub fn new(every: u64, now: Instant) -> Progress {
        Progress {
            every,
            ops: 0,
            sessions: 0,
            last: now,
        }
    }

    /// The line to log at `now`, given the operations answered so far;
    /// `sessions` counts the stored sessions and is only called when a line
    /// may be due.
    pub fn check(
        &mut self,
        now: Instant,
        ops: u64,
        sessions: impl FnOnce() -> usize,
    ) -> Option<String> {
        let stepped = self.every > 0 && ops / self.every != self.ops / self.every;
        if !stepped && now.saturating_duration_since(self.last) < QUIET {
            return None;
        }
        let total = sessions();
        if !stepped && ops == self.ops && total == self.sessions {
            return None;
        }
        let (sign, diff) = match total.cmp(&self.sessions) {
            std::cmp::Ordering::Greater => ('+', total - self.sessions),
            std::cmp::Ordering::Equal => ('=', 0),
            std::cmp::Ordering::Less => ('-', self.sessions - total),
        };
        let line = format!(
            "Info, total operations = {ops:7}  (+ {:5}), total sessions = {total:5}  ({sign}{diff:3})",
            ops.saturating_sub(self.ops)
        );
        self.ops = ops;
        self.sessions = total;
        self.last = now;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_second_and_only_on_change() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(p.check(at(500), 10, || 3), None, "within the first second");
        assert_eq!(
            p.check(at(1000), 10, || 3).as_deref(),
            Some("Info, total operations =      10  (+    10), total sessions =     3  (+  3)")
        );
        assert_eq!(p.check(at(1500), 20, || 3), None, "within a second");
        assert_eq!(p.check(at(3000), 10, || 3), None, "nothing changed");
        assert_eq!(
            p.check(at(3100), 12, || 1).as_deref(),
            Some("Info, total operations =      12  (+     2), total sessions =     1  (-  2)")
        );
        assert_eq!(
            p.check(at(5000), 12, || 0).as_deref(),
            Some("Info, total operations =      12  (+     0), total sessions =     0  (-  1)")
        );
        assert_eq!(
            p.check(at(6000), 13, || 0).as_deref(),
            Some("Info, total operations =      13  (+     1), total sessions =     0  (=  0)")
        );
    }

    #[test]
    fn progress_steps_override_the_second() {
        let t0 = Instant::now();
        let mut p = Progress::new(100, t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(p.check(at(10), 99, || 0), None);
        assert!(p.check(at(20), 100, || 0).is_some(), "crossed 100");
        assert_eq!(p.check(at(30), 199, || 0), None);
        assert!(p.check(at(40), 350, || 0).is_some(), "crossed 200 and 300");
        assert!(p.check(at(1040), 351, || 0).is_some(), "a second later");
    }

    #[test]
    fn sessions_are_counted_only_when_a_line_may_be_due() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, t0);
        let never = || -> usize { panic!("counted sessions too early") };
        assert_eq!(p.check(t0 + Duration::from_millis(999), 5, never), None);
    }
}
