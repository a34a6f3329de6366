//! A worker's connections: a table indexed by the number in each one's
//! event token, threaded by a list ordered by last activity (least recent
//! first), so that the longest idle one is found at once.

use super::super::conn::Conn;

/// No link in the list.
const NIL: u32 = u32::MAX;

/// A connection's place in the table and in the list.
struct Entry {
    conn: Option<Conn>,
    prev: u32,
    next: u32,
}

/// The connections of one worker, by index and by last activity.
pub(super) struct Conns {
    entries: Vec<Entry>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
}

impl Conns {
    pub(super) fn new() -> Conns {
        Conns {
            entries: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub(super) fn get(&self, idx: u32) -> Option<&Conn> {
        self.entries.get(idx as usize)?.conn.as_ref()
    }

    pub(super) fn get_mut(&mut self, idx: u32) -> Option<&mut Conn> {
        self.entries.get_mut(idx as usize)?.conn.as_mut()
    }

    /// Every connection, with its index, in the order of the table.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as u32, e.conn.as_ref()?)))
    }

    /// The connections from the least recently active on.
    pub(super) fn by_age(&self) -> impl Iterator<Item = (u32, &Conn)> {
        let mut idx = self.head;
        std::iter::from_fn(move || {
            let conn = self.get(idx)?;
            let here = idx;
            idx = self.entries[idx as usize].next;
            Some((here, conn))
        })
    }

    /// Adds a connection, as the most recently active, and says its index.
    pub(super) fn insert(&mut self, conn: Conn) -> u32 {
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.entries.push(Entry {
                    conn: None,
                    prev: NIL,
                    next: NIL,
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.entries[idx as usize].conn = Some(conn);
        self.push_back(idx);
        idx
    }

    /// Takes connection `idx` out, if it is there.
    pub(super) fn remove(&mut self, idx: u32) -> Option<Conn> {
        let conn = self.entries.get_mut(idx as usize)?.conn.take()?;
        self.unlink(idx);
        self.free.push(idx);
        Some(conn)
    }

    /// Moves `idx` to the end of the list: the most recently active.
    pub(super) fn touch(&mut self, idx: u32) {
        if self.tail != idx {
            self.unlink(idx);
            self.push_back(idx);
        }
    }

    fn push_back(&mut self, idx: u32) {
        let e = &mut self.entries[idx as usize];
        e.prev = self.tail;
        e.next = NIL;
        match self.tail {
            NIL => self.head = idx,
            t => self.entries[t as usize].next = idx,
        }
        self.tail = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
        let e = &mut self.entries[idx as usize];
        e.prev = NIL;
        e.next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection costs the worker one entry and no buffer: keep
    /// the entry small (the kernel's socket is not counted here).
    #[test]
    fn a_connection_entry_is_small() {
        let size = std::mem::size_of::<Entry>();
        assert!(size <= 256, "{size} bytes");
    }
}
