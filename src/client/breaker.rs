//! Which server addresses this process has found down, and when to try
//! them again.
//!
//! After an operation to an address times out, or its connection is
//! refused, the address is down for a back-off period: every operation of
//! every [`Client`](super::Client) of the process that uses it fails at once
//! with [`ClientError::Down`](super::ClientError::Down). When the period is
//! over, one operation (one thread) probes the address with the normal
//! timeout: if it reaches the server the address is up again, otherwise the
//! next period is twice as long, up to the maximum.
//!
//! The record lives in a static table of atomics, one slot per address, so
//! that threads share it without locks and a child forked while an address
//! is down inherits that state: no lock another thread held at the fork can
//! stop the child. A probe in progress at the fork is a lease that runs out
//! on its own, after which the child probes itself.

use crate::sys::clock::{millis, monotonic_ms};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Environment variable that sets the back-off, in milliseconds: `MIN` or
/// `MIN:MAX`; `0` turns the breaker off.
pub const DOWN_ENV: &str = "DISTCACHE_DOWN_MS";
/// The first back-off period unless configured otherwise.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off period unless configured otherwise.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long an address stays down: `min` after the first failure, doubled
/// after each failed probe, at most `max`. A zero `min` turns the breaker
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first period.
    pub min: Duration,
    /// The longest period.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: DEFAULT_MIN_BACKOFF,
            max: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Backoff {
    /// No breaker: every operation goes to the network.
    pub const OFF: Backoff = Backoff {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// Parses `MIN[:MAX]` in milliseconds. A `MAX` below `MIN` is raised to
    /// `MIN`; `MIN` alone keeps the default maximum (or `MIN` if larger).
    /// `0` is [`Backoff::OFF`]. `None` for anything else.
    pub fn parse(text: &str) -> Option<Backoff> {
        let text = text.trim();
        let (min, max) = match text.split_once(':') {
            Some((min, max)) => (min, Some(max)),
            None => (text, None),
        };
        let min = Duration::from_millis(min.trim().parse().ok()?);
        if min.is_zero() {
            return Some(Backoff::OFF);
        }
        let max = match max {
            Some(max) => Duration::from_millis(max.trim().parse().ok()?),
            None => DEFAULT_MAX_BACKOFF,
        };
        Some(Backoff {
            min,
            max: max.max(min),
        })
    }

    /// The back-off set by `DISTCACHE_DOWN_MS`, or the default when it is
    /// unset or unreadable.
    pub fn from_env() -> Backoff {
        std::env::var(DOWN_ENV)
            .ok()
            .and_then(|v| Backoff::parse(&v))
            .unwrap_or_default()
    }

    /// Whether the breaker is off.
    pub fn is_off(&self) -> bool {
        self.min.is_zero()
    }

    /// The period after one of `current` failed: twice as long, within
    /// `min..=max`.
    pub fn after(&self, current: Duration) -> Duration {
        (current * 2).clamp(self.min, self.max)
    }
}

/// What the breaker has done in this process, over every address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreakerStats {
    /// Addresses marked down after being up.
    pub trips: u64,
    /// Probes that failed, each doubling the back-off of its address.
    pub failed_probes: u64,
    /// Addresses marked up again.
    pub recoveries: u64,
    /// Operations failed at once because their address was down.
    pub fast_failures: u64,
}

static TRIPS: AtomicU64 = AtomicU64::new(0);
static FAILED_PROBES: AtomicU64 = AtomicU64::new(0);
static RECOVERIES: AtomicU64 = AtomicU64::new(0);
static FAST_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The counts of this process's breaker since it started (a forked child
/// starts with its parent's counts).
pub fn stats() -> BreakerStats {
    BreakerStats {
        trips: TRIPS.load(Ordering::Relaxed),
        failed_probes: FAILED_PROBES.load(Ordering::Relaxed),
        recoveries: RECOVERIES.load(Ordering::Relaxed),
        fast_failures: FAST_FAILURES.load(Ordering::Relaxed),
    }
}

/// What an operation found out about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server answered (whatever it said).
    Reached,
    /// It timed out, or the connection was refused: the address is down.
    Dead,
    /// Neither: the operation never got that far, or a kept connection
    /// broke (which says nothing about a fresh one).
    Unknown,
}

/// `state` of an address that is up.
const UP: u64 = 0;
/// Flag in `state`: a probe holds the address until the time in the low
/// bits.
const PROBING: u64 = 1 << 63;

/// One address's record. `state` is [`UP`], or the monotonic millisecond
/// until which the address is down (with [`PROBING`] while a probe holds
/// it); `backoff_ms` is the period the address was last given.
#[derive(Debug)]
struct Slot {
    key: AtomicU64,
    state: AtomicU64,
    backoff_ms: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            key: AtomicU64::new(0),
            state: AtomicU64::new(UP),
            backoff_ms: AtomicU64::new(0),
        }
    }
}

/// Addresses with a shared record; a process that uses more gives each
/// further client a record of its own.
const SLOTS: usize = 64;
static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// A probe still running this long after its operation's timeout is taken
/// for lost (its thread stalled, or it ran in a parent before a fork).
const PROBE_GRACE: Duration = Duration::from_secs(1);

/// The breaker of one address, as a client sees it.
#[derive(Debug)]
pub(crate) struct Breaker {
    record: Record,
}

#[derive(Debug)]
enum Record {
    Shared(&'static Slot),
    Own(Box<Slot>),
}

/// Leave to use the network: a plain operation, or the probe that holds
/// the address (with the state it set).
#[derive(Debug)]
#[must_use = "report the outcome with Breaker::report"]
pub(crate) struct Ticket {
    probe: Option<u64>,
}

/// An address's state in the breaker, as [`Client::health`](super::Client::health)
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Whether operations on the address fail at once now.
    pub down: bool,
    /// The back-off period the address was last given (zero while it has
    /// been up since the start).
    pub backoff: Duration,
    /// How long until the next probe may start (zero when it may now).
    pub retry_in: Duration,
}

impl Breaker {
    /// The breaker of the address named `key` (its canonical text).
    pub(crate) fn for_address(key: &str) -> Breaker {
        let hash = fnv1a(key.as_bytes()).max(1);
        let start = (hash % SLOTS as u64) as usize;
        for i in 0..SLOTS {
            let slot = &TABLE[(start + i) % SLOTS];
            match slot
                .key
                .compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Breaker::shared(slot),
                Err(k) if k == hash => return Breaker::shared(slot),
                Err(_) => {}
            }
        }
        Breaker {
            record: Record::Own(Box::new(Slot::new())),
        }
    }

    fn shared(slot: &'static Slot) -> Breaker {
        Breaker {
            record: Record::Shared(slot),
        }
    }

    fn slot(&self) -> &Slot {
        match &self.record {
            Record::Shared(s) => s,
            Record::Own(s) => s,
        }
    }

    /// Leave for an operation bounded by `timeout`, or, while the address
    /// is down, how long until it may be tried again.
    pub(crate) fn admit(&self, backoff: Backoff, timeout: Duration) -> Result<Ticket, Duration> {
        if backoff.is_off() {
            return Ok(Ticket { probe: None });
        }
        let state = &self.slot().state;
        loop {
            let s = state.load(Ordering::Acquire);
            if s == UP {
                return Ok(Ticket { probe: None });
            }
            let now = monotonic_ms();
            let until = s & !PROBING;
            if now < until {
                FAST_FAILURES.fetch_add(1, Ordering::Relaxed);
                return Err(Duration::from_millis(until - now));
            }
            let lease = now.saturating_add(millis(timeout + PROBE_GRACE)) & !PROBING;
            let probe = PROBING | lease.max(1);
            if state
                .compare_exchange(s, probe, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(Ticket { probe: Some(probe) });
            }
        }
    }

    /// Records what the operation admitted with `ticket` found out.
    pub(crate) fn report(&self, ticket: Ticket, outcome: Outcome, backoff: Backoff) {
        if backoff.is_off() {
            return;
        }
        let slot = self.slot();
        match (ticket.probe, outcome) {
            (None, Outcome::Dead) => {
                let until = down_until(backoff.min);
                if slot
                    .state
                    .compare_exchange(UP, until, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    slot.backoff_ms
                        .store(millis(backoff.min), Ordering::Relaxed);
                    TRIPS.fetch_add(1, Ordering::Relaxed);
                }
            }
            (None, Outcome::Reached) => {
                // An operation begun before another marked the address down
                // has since reached the server. A probe under way reports
                // for itself.
                let s = slot.state.load(Ordering::Acquire);
                if s != UP
                    && s & PROBING == 0
                    && slot
                        .state
                        .compare_exchange(s, UP, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    RECOVERIES.fetch_add(1, Ordering::Relaxed);
                }
            }
            (None, Outcome::Unknown) => {}
            (Some(probe), Outcome::Dead) => {
                let last = Duration::from_millis(slot.backoff_ms.load(Ordering::Relaxed));
                let next = backoff.after(last);
                if slot
                    .state
                    .compare_exchange(probe, down_until(next), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    slot.backoff_ms.store(millis(next), Ordering::Relaxed);
                    FAILED_PROBES.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A probe that learnt nothing (a kept connection that broke):
            // the next operation probes again, with the same back-off.
            (Some(probe), Outcome::Unknown) => {
                let now = monotonic_ms().max(1) & !PROBING;
                let _ =
                    slot.state
                        .compare_exchange(probe, now, Ordering::AcqRel, Ordering::Acquire);
            }
            (Some(probe), Outcome::Reached) => {
                if slot
                    .state
                    .compare_exchange(probe, UP, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    RECOVERIES.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The address's state now.
    pub(crate) fn health(&self) -> Health {
        let slot = self.slot();
        let s = slot.state.load(Ordering::Acquire);
        let backoff = Duration::from_millis(slot.backoff_ms.load(Ordering::Relaxed));
        let retry_in = match s {
            UP => Duration::ZERO,
            s => Duration::from_millis((s & !PROBING).saturating_sub(monotonic_ms())),
        };
        Health {
            down: s != UP && !retry_in.is_zero(),
            backoff,
            retry_in,
        }
    }
}

/// The state of an address down for `period` from now.
fn down_until(period: Duration) -> u64 {
    (monotonic_ms().saturating_add(millis(period)) & !PROBING).max(1)
}

/// FNV-1a, 64 bits: a stable key for an address's text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        min: Duration::from_millis(200),
        max: Duration::from_millis(700),
    };
    const T: Duration = Duration::from_millis(50);

    /// A breaker of its own, shared with no other test.
    fn own() -> Breaker {
        Breaker {
            record: Record::Own(Box::new(Slot::new())),
        }
    }

    /// A breaker that marked its address down after one failure, once its
    /// back-off has run out: the next operation is a probe.
    fn down_and_due() -> Breaker {
        let b = own();
        let t = b.admit(B, T).expect("up");
        b.report(t, Outcome::Dead, B);
        std::thread::sleep(b.health().retry_in + Duration::from_millis(5));
        b
    }

    #[test]
    fn parses_min_and_max() {
        let ms = Duration::from_millis;
        assert_eq!(Backoff::parse("0"), Some(Backoff::OFF));
        assert_eq!(Backoff::parse("0:5000"), Some(Backoff::OFF));
        assert_eq!(
            Backoff::parse("250"),
            Some(Backoff {
                min: ms(250),
                max: DEFAULT_MAX_BACKOFF
            })
        );
        assert_eq!(
            Backoff::parse(" 500:2000 "),
            Some(Backoff {
                min: ms(500),
                max: ms(2000)
            })
        );
        assert_eq!(
            Backoff::parse("3000:100"),
            Some(Backoff {
                min: ms(3000),
                max: ms(3000)
            })
        );
        for bad in ["", "x", "1:", ":5", "-1", "1:2:3"] {
            assert_eq!(Backoff::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn back_off_doubles_up_to_the_maximum() {
        let ms = Duration::from_millis;
        assert_eq!(B.after(Duration::ZERO), ms(200));
        assert_eq!(B.after(ms(200)), ms(400));
        assert_eq!(B.after(ms(400)), ms(700));
        assert_eq!(B.after(ms(700)), ms(700));
    }

    #[test]
    fn a_timeout_marks_down_until_one_probe_reaches_the_server() {
        let b = own();
        let t = b.admit(B, T).expect("up");
        b.report(t, Outcome::Dead, B);
        let h = b.health();
        assert!(h.down && h.backoff == B.min, "{h:?}");
        let wait = b.admit(B, T).expect_err("down");
        assert!(wait <= B.min, "{wait:?}");

        std::thread::sleep(wait + Duration::from_millis(5));
        let probe = b.admit(B, T).expect("a probe is due");
        assert!(probe.probe.is_some());
        // While it runs, the others fail at once.
        assert!(b.admit(B, T).is_err());
        b.report(probe, Outcome::Dead, B);
        assert_eq!(b.health().backoff, Duration::from_millis(400));

        std::thread::sleep(b.health().retry_in + Duration::from_millis(5));
        let probe = b.admit(B, T).expect("a probe is due");
        b.report(probe, Outcome::Reached, B);
        assert!(!b.health().down);
        assert!(b.admit(B, T).expect("up").probe.is_none());
    }

    #[test]
    fn only_the_first_failure_of_a_burst_sets_the_period() {
        let b = own();
        let tickets: Vec<Ticket> = (0..3).map(|_| b.admit(B, T).expect("up")).collect();
        for t in tickets {
            b.report(t, Outcome::Dead, B);
        }
        assert_eq!(b.health().backoff, B.min);
        // A late success of an operation begun before marks it up.
        let late = Ticket { probe: None };
        b.report(late, Outcome::Reached, B);
        assert!(!b.health().down);
    }

    #[test]
    fn a_lost_probe_lets_another_probe_after_its_lease() {
        let b = down_and_due();
        let lost = b.admit(B, T).expect("a probe");
        // Never reported (its thread went away): the lease runs out.
        let wait = b.admit(B, T).expect_err("held by the probe");
        assert!(wait <= T + PROBE_GRACE, "{wait:?}");
        std::thread::sleep(wait + Duration::from_millis(5));
        let second = b.admit(B, T).expect("a second probe");
        b.report(second, Outcome::Reached, B);
        // The first one's late report no longer counts.
        b.report(lost, Outcome::Dead, B);
        assert!(!b.health().down);
    }

    #[test]
    fn a_probe_that_learns_nothing_hands_over_to_the_next_operation() {
        let b = down_and_due();
        let probe = b.admit(B, T).expect("a probe is due");
        b.report(probe, Outcome::Unknown, B);
        let next = b.admit(B, T).expect("the next operation probes at once");
        assert!(next.probe.is_some());
        assert_eq!(b.health().backoff, B.min, "the back-off is kept");
        b.report(next, Outcome::Reached, B);
        assert!(!b.health().down);
    }

    #[test]
    fn off_never_marks_down() {
        let b = own();
        for _ in 0..3 {
            let t = b.admit(Backoff::OFF, T).expect("off");
            b.report(t, Outcome::Dead, Backoff::OFF);
        }
        assert!(!b.health().down);
    }

    #[test]
    fn an_address_has_one_record() {
        let a = Breaker::for_address("UNIX:/nonexistent/breaker-test.sock");
        let b = Breaker::for_address("UNIX:/nonexistent/breaker-test.sock");
        let c = Breaker::for_address("UNIX:/nonexistent/breaker-other.sock");
        assert!(std::ptr::eq(a.slot(), b.slot()));
        assert!(!std::ptr::eq(a.slot(), c.slot()));
    }
}
