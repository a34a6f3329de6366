//! The clients of a `DC_SERVER`: the list a server keeps, each client's
//! link back to its server, and what a client does when driven.
//!
//! A client names its server and its server lists it; both links are raw
//! pointers that stay valid across calls that borrow the server again.

use super::DC_SERVER;
use crate::cache::Millis;
use crate::ffi::boundary::{free_handle, into_handle};
use crate::ffi::dc_plug::{DC_PLUG, FLAG_NOFREE_CONN};
use crate::ffi::nal::NAL_CONNECTION;
use crate::server::Embedded;
use std::ffi::c_uint;
use std::ptr::NonNull;

/// `DC_CLIENT_FLAG_NOFREE_CONN`: deleting the client leaves its connection.
pub(super) const CLIENT_NOFREE_CONN: c_uint = 0x0001;
/// `DC_CLIENT_FLAG_IN_SERVER`: `DC_SERVER_clients_io()` drives the client,
/// and the server frees it.
pub(super) const CLIENT_IN_SERVER: c_uint = 0x0002;

/// One client connection of a server. Opaque to C.
#[derive(Debug)]
pub struct DC_CLIENT {
    /// None once the server is freed (the client was left to the program).
    server: Option<NonNull<DC_SERVER>>,
    plug: DC_PLUG,
    in_server: bool,
}

impl DC_SERVER {
    /// Makes `conn` a client of this server, as `DC_SERVER_new_client()`
    /// documents. `server` is the pointer C passed for `self`: one taken
    /// from `self` would be invalidated by a later call that borrows the
    /// server again.
    pub(super) fn new_client(
        &mut self,
        server: NonNull<DC_SERVER>,
        conn: NonNull<NAL_CONNECTION>,
        flags: c_uint,
    ) -> *mut DC_CLIENT {
        let plug_flags = if flags & CLIENT_NOFREE_CONN != 0 {
            FLAG_NOFREE_CONN
        } else {
            0
        };
        let client = into_handle(DC_CLIENT {
            server: Some(server),
            plug: DC_PLUG::new(conn, plug_flags),
            in_server: flags & CLIENT_IN_SERVER != 0,
        });
        // into_handle never returns NULL.
        if let Some(c) = NonNull::new(client) {
            self.clients.push(c);
        }
        client
    }

    /// Before the server is freed: frees its `DC_CLIENT_FLAG_IN_SERVER`
    /// clients and detaches the others, which the program still deletes.
    pub(super) fn release_clients(&mut self) {
        for client in self.clients.drain(..) {
            // SAFETY: listed clients are live.
            let c = unsafe { &mut *client.as_ptr() };
            if c.in_server {
                // SAFETY: no longer listed.
                unsafe { free_client(client) };
            } else {
                c.server = None;
            }
        }
    }

    /// Drives every `DC_CLIENT_FLAG_IN_SERVER` client: network I/O, then
    /// answering a request; deletes those whose connection ended or who
    /// sent something corrupt.
    pub(super) fn clients_io(&mut self, now: Millis) {
        let mut i = 0;
        while i < self.clients.len() {
            let client = self.clients[i];
            // SAFETY: listed clients are live and separate from the server.
            let c = unsafe { &mut *client.as_ptr() };
            if !c.in_server || (c.plug.io() && process(&mut self.core, c, now)) {
                i += 1;
                continue;
            }
            self.clients.remove(i);
            // SAFETY: no longer listed.
            unsafe { free_client(client) };
        }
    }
}

impl DC_CLIENT {
    /// Answers the request waiting on this client's connection, as
    /// `DC_SERVER_process_client()` documents; `None` when its server was
    /// freed.
    pub(super) fn process(&mut self, now: Millis) -> Option<bool> {
        let server = self.server?;
        // SAFETY: a client's server, while set, is live, and a separate
        // object from the client.
        let s = unsafe { &mut *server.as_ptr() };
        Some(process(&mut s.core, self, now))
    }
}

/// Answers the request waiting on `client`'s connection, if any.
fn process(core: &mut Embedded, client: &mut DC_CLIENT, now: Millis) -> bool {
    client
        .plug
        .with_buffers(|plug, read, send| core.process(plug, read, send, now))
}

/// Takes a client off its server, if it still has one, and frees it;
/// false when its server does not list it.
///
/// # Safety
/// `client` came from `DC_SERVER_new_client()` and was not deleted; its
/// server, if not freed, is not in use elsewhere.
pub(super) unsafe fn del_client(client: NonNull<DC_CLIENT>) -> bool {
    // SAFETY: per this function's contract.
    if let Some(server) = unsafe { client.as_ref() }.server {
        // SAFETY: a client's server, while set, is live.
        let s = unsafe { &mut *server.as_ptr() };
        let Some(at) = s.clients.iter().position(|c| *c == client) else {
            return false;
        };
        s.clients.remove(at);
    }
    // SAFETY: no server lists it any more.
    unsafe { free_client(client) };
    true
}

/// Frees a client (and its connection unless it was made with
/// `DC_CLIENT_FLAG_NOFREE_CONN`).
///
/// # Safety
/// `client` came from `DC_SERVER_new_client()` and is no longer listed by
/// any server.
unsafe fn free_client(client: NonNull<DC_CLIENT>) {
    // SAFETY: per this function's contract.
    unsafe { free_handle(client.as_ptr()) }
}
