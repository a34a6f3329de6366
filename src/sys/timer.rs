//! A periodic timer that an event loop watches as a descriptor
//! (`timerfd(2)`). Armed once, it keeps ticking: the loop can then wait for
//! events with no timeout of its own, which spares it arming and cancelling
//! a kernel timer on every wait (costly in a virtual machine).

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

/// A descriptor that becomes readable every period.
#[derive(Debug)]
pub struct Ticker(TimerFd);

impl Ticker {
    /// A ticker that first fires `period` from now, then every `period`.
    pub fn new(period: Duration) -> io::Result<Ticker> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)?;
        let every = TimeSpec::from_duration(period);
        timer.set(Expiration::Interval(every), TimerSetTimeFlags::empty())?;
        Ok(Ticker(timer))
    }

    /// The descriptor to watch for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }

    /// Takes the ticks that have passed, so that the descriptor stays quiet
    /// until the next one.
    pub fn clear(&self) {
        // Nothing to take (EAGAIN) is as good as taking it.
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::{poll, PollFd};

    #[test]
    fn it_ticks_and_clears() {
        let t = Ticker::new(Duration::from_millis(20)).unwrap();
        let mut fds = [PollFd::new(t.raw_fd(), true, false)];
        assert_eq!(poll(&mut fds, Duration::from_secs(2)).unwrap(), 1);
        assert!(fds[0].readable());
        t.clear();
        let mut fds = [PollFd::new(t.raw_fd(), true, false)];
        assert_eq!(poll(&mut fds, Duration::ZERO).unwrap(), 0, "cleared");
        let mut fds = [PollFd::new(t.raw_fd(), true, false)];
        assert_eq!(
            poll(&mut fds, Duration::from_secs(2)).unwrap(),
            1,
            "ticks again"
        );
    }
}
