//! The scheduling policy of a thread.

use std::io;

/// Puts the calling thread under `SCHED_BATCH`: the scheduler does not let
/// it preempt the thread that woke it, so that a thread which hands it
/// work one item at a time finishes its turn (and hands over the rest)
/// before this one runs, and this one then takes the items together.
pub(crate) fn batch_this_thread() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that lives for the whole
    // call, which only reads it; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_becomes_batch() {
        std::thread::spawn(|| {
            batch_this_thread().unwrap();
            // SAFETY: no arguments; reads the calling thread's policy.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }
}
