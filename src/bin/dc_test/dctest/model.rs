//! What the cache should hold: the sessions one test client made, whether
//! each is stored, and the check of every answer against that.
//!
//! The original's model ignored expiry, so a long run or short timeouts
//! made it report failures the cache was right about. This one keeps, for a
//! stored session, the window in which the server's expiry must fall (the
//! ADD's send and reply times plus its timeout, widened by
//! [`EXPIRY_SLACK`]): before it the session must be there, after it it must
//! be gone, and inside it either answer is right and tells which it was.

use std::time::{Duration, Instant};

/// How far the server's clock may read apart from ours about an expiry (its
/// millisecond rounding, and scheduling between a reply and our clock read).
pub const EXPIRY_SLACK: Duration = Duration::from_millis(50);

/// Sessions shorter than this come back from a GET as a failure, never as
/// data (the client library's rule, kept from the original: a miss is one
/// byte, and short replies are not taken as sessions).
pub const SHORTEST_GETTABLE: usize = 5;

/// One operation on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// ADD with this timeout in milliseconds.
    Add(u32),
    /// REMOVE.
    Remove,
    /// GET.
    Get,
    /// HAVE.
    Have,
}

/// The cache's answer to an operation, in the model's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// ADD: stored.
    Stored,
    /// ADD: refused because the id is already stored.
    Exists,
    /// REMOVE or HAVE: whether the session was there.
    Found(bool),
    /// GET: these bytes.
    Data(Vec<u8>),
    /// GET: no such session.
    Miss,
    /// GET: a reply too short to be a session (what a stored session
    /// shorter than [`SHORTEST_GETTABLE`] gives).
    ShortReply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    /// Stored; the server drops it at some moment in `sure_until..gone_after`.
    Stored {
        sure_until: Instant,
        gone_after: Instant,
    },
}

/// Whether a session is stored at the moment the server handles a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Yes,
    No,
    Maybe,
}

/// A test session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: Vec<u8>,
    /// Its data.
    pub data: Vec<u8>,
    state: State,
}

impl Session {
    /// A session not stored yet.
    pub fn new(id: Vec<u8>, data: Vec<u8>) -> Session {
        Session {
            id,
            data,
            state: State::Absent,
        }
    }

    /// Whether the server's expiry of this session may fall between `sent`
    /// and `received` (the request's send time and its reply's arrival).
    fn presence(&self, sent: Instant, received: Instant) -> Presence {
        match self.state {
            State::Absent => Presence::No,
            State::Stored { sure_until, .. } if received < sure_until => Presence::Yes,
            State::Stored { gone_after, .. } if sent > gone_after => Presence::No,
            State::Stored { .. } => Presence::Maybe,
        }
    }

    /// Checks the answer to `op`, sent at `sent` and answered at `received`,
    /// and updates the model. `Err` says what is wrong.
    pub fn check(
        &mut self,
        op: Op,
        answer: &Answer,
        sent: Instant,
        received: Instant,
    ) -> Result<(), String> {
        let presence = self.presence(sent, received);
        if presence == Presence::No {
            self.state = State::Absent;
        }
        let (here, gone) = (presence != Presence::No, presence != Presence::Yes);
        let len = self.data.len();
        match (op, answer) {
            (Op::Add(ms), Answer::Stored) if gone => {
                let ms = Duration::from_millis(u64::from(ms));
                self.state = State::Stored {
                    sure_until: (sent + ms).checked_sub(EXPIRY_SLACK).unwrap_or(sent),
                    gone_after: received + ms + EXPIRY_SLACK,
                };
                Ok(())
            }
            (Op::Add(_), Answer::Stored) => {
                Err("ADD stored a session whose id was already stored".into())
            }
            (Op::Add(_), Answer::Exists) if here => Ok(()),
            (Op::Add(_), Answer::Exists) => {
                Err("ADD was refused as a duplicate, but the id was not stored".into())
            }
            (Op::Remove | Op::Have, &Answer::Found(found)) => {
                let (name, removes) = match op {
                    Op::Remove => ("REMOVE", true),
                    _ => ("HAVE", false),
                };
                match (found, here, gone) {
                    (true, true, _) => {
                        if removes {
                            self.state = State::Absent;
                        }
                        Ok(())
                    }
                    (true, false, _) => Err(format!("{name} found a session that was not stored")),
                    (false, _, true) => {
                        self.state = State::Absent;
                        Ok(())
                    }
                    (false, _, false) => {
                        Err(format!("{name} found nothing, but the session was stored"))
                    }
                }
            }
            (Op::Get, Answer::Miss) if gone => {
                self.state = State::Absent;
                Ok(())
            }
            (Op::Get, Answer::Miss) => Err("GET missed a stored session".into()),
            (Op::Get, Answer::Data(d)) if !here => Err(format!(
                "GET returned {} bytes for a session that was not stored",
                d.len()
            )),
            (Op::Get, Answer::Data(d)) if d.len() != len => Err(format!(
                "GET returned {} bytes for a session of {len} bytes",
                d.len()
            )),
            (Op::Get, Answer::Data(d)) if *d != self.data => Err(format!(
                "GET returned {len} bytes that differ from the session's (first at byte {})",
                d.iter()
                    .zip(&self.data)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0)
            )),
            (Op::Get, Answer::Data(_)) => Ok(()),
            (Op::Get, Answer::ShortReply) if here && len < SHORTEST_GETTABLE => Ok(()),
            (Op::Get, Answer::ShortReply) => {
                Err("GET's reply is shorter than 5 bytes and not a miss".into())
            }
            (op, answer) => Err(format!("answer {answer:?} does not fit {op:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn session() -> (Session, Instant) {
        (
            Session::new(b"id".to_vec(), b"hello world".to_vec()),
            Instant::now(),
        )
    }

    #[test]
    fn absent_session() {
        let (mut s, t) = session();
        assert!(s.check(Op::Get, &Answer::Miss, t, t).is_ok());
        assert!(s.check(Op::Have, &Answer::Found(false), t, t).is_ok());
        assert!(s.check(Op::Remove, &Answer::Found(false), t, t).is_ok());
        assert!(s.check(Op::Have, &Answer::Found(true), t, t).is_err());
        assert!(s.check(Op::Remove, &Answer::Found(true), t, t).is_err());
        assert!(s
            .check(Op::Get, &Answer::Data(s.data.clone()), t, t)
            .is_err());
        assert!(s.check(Op::Add(1000), &Answer::Exists, t, t).is_err());
    }

    #[test]
    fn stored_session() {
        let (mut s, t) = session();
        s.check(Op::Add(60_000), &Answer::Stored, t, t + MS)
            .unwrap();
        let later = t + 10 * MS;
        let data = s.data.clone();
        assert!(s
            .check(Op::Get, &Answer::Data(data.clone()), later, later)
            .is_ok());
        assert!(s
            .check(Op::Have, &Answer::Found(true), later, later)
            .is_ok());
        assert!(s
            .check(Op::Add(1000), &Answer::Exists, later, later)
            .is_ok());
        assert!(s
            .check(Op::Add(1000), &Answer::Stored, later, later)
            .is_err());
        assert!(s.check(Op::Get, &Answer::Miss, later, later).is_err());
        assert!(s
            .check(Op::Have, &Answer::Found(false), later, later)
            .is_err());
        let mut wrong = data.clone();
        wrong[3] ^= 1;
        let e = s
            .check(Op::Get, &Answer::Data(wrong), later, later)
            .unwrap_err();
        assert!(e.contains("byte 3"), "{e}");
        let e = s.check(Op::Get, &Answer::Data(data[1..].to_vec()), later, later);
        assert!(e.is_err());
        assert!(s
            .check(Op::Remove, &Answer::Found(false), later, later)
            .is_err());
        assert!(s
            .check(Op::Remove, &Answer::Found(true), later, later)
            .is_ok());
        assert!(s.check(Op::Get, &Answer::Miss, later, later).is_ok());
    }

    #[test]
    fn expiry_window() {
        let (mut s, t) = session();
        s.check(Op::Add(1000), &Answer::Stored, t, t + 2 * MS)
            .unwrap();
        // Well before expiry: present.
        let early = t + 900 * MS;
        assert!(s
            .check(Op::Have, &Answer::Found(false), early, early)
            .is_err());
        // Around expiry: either answer, and "present" keeps it stored.
        let edge = t + 1000 * MS;
        assert!(s.check(Op::Have, &Answer::Found(true), edge, edge).is_ok());
        assert!(s
            .check(Op::Get, &Answer::Data(s.data.clone()), edge, edge)
            .is_ok());
        // "Gone" is final.
        assert!(s.check(Op::Get, &Answer::Miss, edge, edge).is_ok());
        assert!(s.check(Op::Have, &Answer::Found(true), edge, edge).is_err());

        let (mut s, t) = session();
        s.check(Op::Add(1000), &Answer::Stored, t, t + 2 * MS)
            .unwrap();
        // Well after expiry: absent, and a new ADD must succeed.
        let late = t + 1200 * MS;
        assert!(s.check(Op::Have, &Answer::Found(true), late, late).is_err());
        assert!(s.check(Op::Add(1000), &Answer::Exists, late, late).is_err());
        assert!(s.check(Op::Add(1000), &Answer::Stored, late, late).is_ok());
    }

    #[test]
    fn short_sessions_are_never_returned() {
        let t = Instant::now();
        let mut s = Session::new(b"id".to_vec(), b"abcd".to_vec());
        assert!(s.check(Op::Get, &Answer::ShortReply, t, t).is_err());
        s.check(Op::Add(60_000), &Answer::Stored, t, t).unwrap();
        assert!(s.check(Op::Get, &Answer::ShortReply, t, t).is_ok());
        assert!(s.check(Op::Have, &Answer::Found(true), t, t).is_ok());
        let (mut long, t) = session();
        long.check(Op::Add(60_000), &Answer::Stored, t, t).unwrap();
        assert!(long.check(Op::Get, &Answer::ShortReply, t, t).is_err());
    }

    #[test]
    fn answers_of_another_operation_fail() {
        let (mut s, t) = session();
        assert!(s.check(Op::Add(1000), &Answer::Found(true), t, t).is_err());
        assert!(s.check(Op::Have, &Answer::Miss, t, t).is_err());
    }
}
