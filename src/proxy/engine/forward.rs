//! The server side of the engine: forwarding queued requests while the
//! server takes them, handing its replies back, and reporting it going
//! up and down.

use super::Engine;
use crate::nal::PollFd;
use crate::proto::Status;
use crate::proxy::backend::{Change, InFlight};
use crate::proxy::local::Local;
use crate::proxy::Notice;
use std::time::Instant;

impl Engine {
    pub(super) fn apply(&mut self, change: Change, now: Instant) {
        self.apply_change(change, now);
        if let Some((backoff, stalls)) = self.backend.marked_down() {
            if stalls != self.reported_stalls {
                self.reported_stalls = stalls;
                let address = self.backend.address().clone();
                self.notify(Notice::ServerMarkedDown(address, backoff));
            }
        }
    }

    pub(super) fn apply_change(&mut self, change: Change, now: Instant) {
        match change {
            Change::Up => {
                self.server_reported_down = false;
                let address = self.backend.address().clone();
                self.notify(Notice::ServerUp(address));
            }
            Change::Unreachable(why) => {
                if !self.server_reported_down {
                    self.server_reported_down = true;
                    let address = self.backend.address().clone();
                    self.notify(Notice::ServerUnreachable(address, why));
                }
            }
            Change::Lost(reason, lost) => {
                self.server_reported_down = true;
                let answered = lost.len();
                for to in lost {
                    self.answer(to.slot, to.client, &[Status::Disconnected.wire()], now);
                }
                let address = self.backend.address().clone();
                self.notify(Notice::ServerLost {
                    address,
                    reason,
                    answered,
                });
            }
        }
    }

    /// Forwards queued requests while the server takes them; answers them
    /// with an empty reply while it is down.
    pub(super) fn schedule(&mut self, now: Instant) {
        while let Some(&(slot, id)) = self.queue.front() {
            let held = self.client_mut(slot, id).and_then(|c| c.request());
            let Some((_, command)) = held else {
                self.queue.pop_front();
                continue;
            };
            if !self.backend.is_available() {
                self.queue.pop_front();
                self.answer(slot, id, &[], now);
                continue;
            }
            if !self.backend.has_room() {
                break;
            }
            self.queue.pop_front();
            let payload = self
                .client_mut(slot, id)
                .map(Local::take_payload)
                .unwrap_or_default();
            let to = InFlight {
                slot,
                client: id,
                command,
            };
            if !self.backend.forward(command, &payload, to, now) {
                self.answer(slot, id, &[], now);
            }
        }
        if let Some(change) = self.backend.flush(now) {
            self.apply(change, now);
        }
    }

    pub(super) fn backend_ready(&mut self, pfd: &PollFd, now: Instant) {
        let mut replies = std::mem::take(&mut self.replies);
        let change = self.backend.ready(
            pfd.readable(),
            pfd.writable(),
            &mut self.scratch,
            &mut replies,
            now,
        );
        for (to, msg) in replies.drain(..) {
            self.answer(to.slot, to.client, &msg.payload, now);
        }
        self.replies = replies;
        if let Some(change) = change {
            self.apply(change, now);
        }
    }
}
