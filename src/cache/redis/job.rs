//! The operations a Redis store carries out, each as the command it
//! becomes and what Redis's reply to it means: one place for both, used by
//! the background thread and by the workers' own links ([`super::lane`]).

use crate::cache::Answer;
use redis::{Cmd, FromRedisValue, RedisResult, Value};

/// One operation with what it needs, owned.
#[derive(Debug, Clone)]
pub(super) enum Job {
    Add {
        key: Vec<u8>,
        data: Vec<u8>,
        ttl: u32,
    },
    Get(Vec<u8>),
    Have(Vec<u8>),
    Remove(Vec<u8>),
    Take(Vec<u8>),
    Count,
}

/// The largest value taken as session data: anything larger under one of
/// our keys was not stored by a gateway.
const MAX_DATA: usize = crate::proto::MAX_TOTAL_DATA;

/// A GET's or TAKE's reply as an answer: a hit only for data a gateway
/// could have stored.
pub(super) fn hit(data: Option<Vec<u8>>) -> (Answer, Vec<u8>) {
    match data {
        None => (Answer::Miss, Vec::new()),
        Some(d) if d.is_empty() || d.len() > MAX_DATA => (Answer::Failed, Vec::new()),
        Some(d) => (Answer::Hit, d),
    }
}

impl Job {
    /// The key the job is about; `None` for one about no key.
    pub(super) fn key(&self) -> Option<&[u8]> {
        match self {
            Job::Add { key, .. }
            | Job::Get(key)
            | Job::Have(key)
            | Job::Remove(key)
            | Job::Take(key) => Some(key),
            Job::Count => None,
        }
    }

    /// The one command the job is, sent to the node that holds its key;
    /// `None` for a job that is more (a REMOVE or TAKE that waits for a
    /// replica when `remove_sync`, a count over every master).
    pub(super) fn command(&self, remove_sync: bool) -> Option<Cmd> {
        Some(match self {
            // A session that expires at once is never stored; it is
            // refused only if the id is taken.
            Job::Add { key, ttl: 0, .. } => redis::cmd("EXISTS").arg(key).to_owned(),
            Job::Add { key, data, ttl } => redis::cmd("SET")
                .arg(key)
                .arg(data)
                .arg("NX")
                .arg("PX")
                .arg(*ttl)
                .to_owned(),
            Job::Get(key) => redis::cmd("GET").arg(key).to_owned(),
            Job::Have(key) => redis::cmd("EXISTS").arg(key).to_owned(),
            Job::Remove(key) if !remove_sync => redis::cmd("DEL").arg(key).to_owned(),
            Job::Take(key) if !remove_sync => redis::cmd("GETDEL").arg(key).to_owned(),
            Job::Remove(_) | Job::Take(_) | Job::Count => return None,
        })
    }

    /// What Redis's reply to [`Job::command`] means; an error for a reply
    /// that is an error, or not one the command gives.
    pub(super) fn answer(&self, reply: Value) -> RedisResult<(Answer, Vec<u8>)> {
        let found = |n: i64| if n > 0 { Answer::Ok } else { Answer::Miss };
        Ok(match self {
            Job::Add { ttl: 0, .. } => {
                let n = i64::from_redis_value(reply)?;
                let answer = if n > 0 { Answer::Exists } else { Answer::Ok };
                (answer, Vec::new())
            }
            Job::Add { .. } => {
                let set = Option::<String>::from_redis_value(reply)?;
                let answer = if set.is_some() {
                    Answer::Ok
                } else {
                    Answer::Exists
                };
                (answer, Vec::new())
            }
            Job::Have(_) | Job::Remove(_) => (found(i64::from_redis_value(reply)?), Vec::new()),
            Job::Get(_) | Job::Take(_) => hit(Option::<Vec<u8>>::from_redis_value(reply)?),
            Job::Count => (Answer::Failed, Vec::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_mean_what_the_in_memory_store_answers() {
        let add = Job::Add {
            key: b"dc:a".to_vec(),
            data: b"x".to_vec(),
            ttl: 100,
        };
        assert_eq!(add.answer(Value::Okay).unwrap().0, Answer::Ok);
        assert_eq!(add.answer(Value::Nil).unwrap().0, Answer::Exists);
        let now = Job::Add {
            key: b"dc:a".to_vec(),
            data: b"x".to_vec(),
            ttl: 0,
        };
        assert_eq!(now.answer(Value::Int(1)).unwrap().0, Answer::Exists);
        assert_eq!(now.answer(Value::Int(0)).unwrap().0, Answer::Ok);
        let get = Job::Get(b"dc:a".to_vec());
        let data = Value::BulkString(b"sess".to_vec());
        assert_eq!(get.answer(data).unwrap(), (Answer::Hit, b"sess".to_vec()));
        assert_eq!(get.answer(Value::Nil).unwrap().0, Answer::Miss);
        let big = Value::BulkString(vec![0; MAX_DATA + 1]);
        assert_eq!(get.answer(big).unwrap().0, Answer::Failed);
        assert!(get.answer(Value::Int(3)).is_err(), "not a GET's reply");
        assert_eq!(
            Job::Remove(b"k".to_vec()).answer(Value::Int(0)).unwrap().0,
            Answer::Miss
        );
        assert!(Job::Remove(b"k".to_vec()).command(true).is_none());
        assert!(Job::Take(b"k".to_vec()).command(false).is_some());
    }
}
