//! The local side of the engine: accepting clients, reading their
//! requests, sending their replies, closing them.

use super::{Engine, REPORT_INTERVAL};
use crate::nal::{AcceptFailure, PollFd, ACCEPT_BACKOFF};
use crate::proxy::local::{End, Local, Phase};
use crate::proxy::Notice;
use std::time::Instant;

/// Connections accepted per wake-up, so that a flood of them cannot starve
/// the clients already connected.
const ACCEPT_BATCH: usize = 64;

impl Engine {
    pub(super) fn client_mut(&mut self, slot: usize, id: u64) -> Option<&mut Local> {
        self.clients
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == id)
    }

    /// Sends a reply to the client's held request, if that client is still
    /// connected and waiting (a client that left is forgotten).
    pub(super) fn answer(&mut self, slot: usize, id: u64, payload: &[u8], now: Instant) {
        let Some(client) = self.client_mut(slot, id) else {
            return;
        };
        if client.phase() != Phase::Waiting {
            return;
        }
        let result = client.reply(payload, now);
        self.after(slot, result, now);
    }

    /// Follows up on a client step: a finished reply lets the client's next
    /// pipelined request in; a complete request is queued; an end closes.
    pub(super) fn after(&mut self, slot: usize, mut result: Result<bool, End>, now: Instant) {
        loop {
            let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match (result, client.phase()) {
                (Err(_), _) => {
                    self.close(slot);
                    return;
                }
                (Ok(true), Phase::Reading) => result = client.resume(now),
                (Ok(true), Phase::Waiting) => {
                    self.queue.push_back((slot, client.id));
                    return;
                }
                _ => return,
            }
        }
    }

    pub(super) fn close(&mut self, slot: usize) {
        if let Some(slot_ref) = self.clients.get_mut(slot) {
            if slot_ref.take().is_some() {
                self.count -= 1;
                self.free.push(slot);
            }
        }
    }

    /// Closes clients whose deadline passed; returns the next deadline.
    pub(super) fn expire_clients(&mut self, now: Instant) -> Option<Instant> {
        let idle = self.config.idle;
        let mut next: Option<Instant> = None;
        for slot in 0..self.clients.len() {
            let Some(c) = &self.clients[slot] else {
                continue;
            };
            if c.expired(now, idle).is_some() {
                self.close(slot);
            } else if let Some(d) = c.deadline(idle) {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    pub(super) fn client_ready(&mut self, slot: usize, pfd: &PollFd, now: Instant) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let result = match client.phase() {
            Phase::Reading if pfd.readable() => client.read(&mut self.scratch, now),
            Phase::Replying if pfd.writable() => client.flush(now),
            // Gone while its request is held: forget it; a late reply is
            // dropped.
            _ if pfd.gone() => Err(End::Closed),
            _ => Ok(false),
        };
        self.after(slot, result, now);
    }

    pub(super) fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return;
            };
            let stream = match listener.accept() {
                Ok(s) => s,
                Err(e) if AcceptFailure::of(&e) == AcceptFailure::Empty => return,
                Err(e) if AcceptFailure::of(&e) == AcceptFailure::Again => continue,
                Err(e) => {
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    if self.last_report.is_none_or(|t| now >= t + REPORT_INTERVAL) {
                        self.last_report = Some(now);
                        self.notify(Notice::AcceptFailed(e.to_string()));
                    }
                    return;
                }
            };
            if self.count >= self.config.max_clients || stream.set_nonblocking(true).is_err() {
                // Closing at once tells the client to fail fast.
                self.refused += 1;
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let local = Local::new(id, stream, now);
            match self.free.pop() {
                Some(slot) => self.clients[slot] = Some(local),
                None => self.clients.push(Some(local)),
            }
            self.count += 1;
        }
    }

    /// Reports refused connections, at most once per interval.
    pub(super) fn report_refused(&mut self, now: Instant) {
        if self.refused == 0 {
            return;
        }
        if self.last_report.is_none_or(|t| now >= t + REPORT_INTERVAL) {
            self.last_report = Some(now);
            let n = std::mem::take(&mut self.refused);
            self.notify(Notice::ClientsRefused(n));
        }
    }
}
