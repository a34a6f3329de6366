//! `distcache/dc_plug.h`: the protocol over a libnal connection, one whole
//! message at a time in each direction.

use super::boundary::{bytes, bytes_or_empty, export, free_handle, into_handle, object_mut};
use super::nal::{
    NAL_CONNECTION_add_to_selector, NAL_CONNECTION_del_from_selector, NAL_CONNECTION_free,
    NAL_CONNECTION_io, NAL_CONNECTION, NAL_SELECTOR,
};
use crate::plug::Plug;
use crate::proto::Command;
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};
use std::ptr::{self, NonNull};

/// `DC_PLUG_FLAG_TO_SERVER`: the plug writes requests and reads replies.
pub const FLAG_TO_SERVER: c_uint = 0x0001;
/// `DC_PLUG_FLAG_NOFREE_CONN`: freeing the plug leaves the connection alone.
pub const FLAG_NOFREE_CONN: c_uint = 0x0002;

/// The C `DC_CMD` enum: `DC_CMD_ERROR` (0), then ADD, GET, REMOVE, HAVE and TAKE
/// (1 to 5, one more than on the wire).
pub type DC_CMD = c_int;

/// The `DC_CMD` value of an operation.
pub(crate) fn to_dc_cmd(command: Command) -> DC_CMD {
    c_int::from(command.wire()) + 1
}

/// The operation of a `DC_CMD` value; `None` for `DC_CMD_ERROR` and
/// anything out of range.
pub(crate) fn from_dc_cmd(cmd: DC_CMD) -> Option<Command> {
    u8::try_from(cmd - 1).ok().and_then(Command::from_wire)
}

/// A plug: a connection and the protocol state of each direction. Opaque
/// to C.
#[derive(Debug)]
pub struct DC_PLUG {
    conn: NonNull<NAL_CONNECTION>,
    free_conn: bool,
    pub(crate) plug: Plug,
}

impl DC_PLUG {
    /// A plug over `conn`.
    pub(crate) fn new(conn: NonNull<NAL_CONNECTION>, flags: c_uint) -> DC_PLUG {
        DC_PLUG {
            conn,
            free_conn: flags & FLAG_NOFREE_CONN == 0,
            plug: Plug::new(flags & FLAG_TO_SERVER != 0),
        }
    }

    /// The connection and the protocol state, borrowed together.
    pub(crate) fn parts(&mut self) -> (&mut NAL_CONNECTION, &mut Plug) {
        // SAFETY: the connection outlives the plug (the contract of
        // DC_PLUG_new and DC_SERVER_new_client) and is a separate object.
        (unsafe { self.conn.as_mut() }, &mut self.plug)
    }

    /// Runs `f` on the protocol state and the connection's read and send
    /// buffers; false when the connection is not set up.
    pub(crate) fn with_buffers(
        &mut self,
        f: impl FnOnce(&mut Plug, &mut crate::nal::Buffer, &mut crate::nal::Buffer) -> bool,
    ) -> bool {
        let (conn, plug) = self.parts();
        if !conn.conn.is_active() {
            return false;
        }
        let (read, send) = conn.conn.buffers();
        f(plug, read, send)
    }

    /// Network I/O on the connection, then decoding what arrived and
    /// framing what waits to be sent. False when the connection failed or
    /// the peer sent something corrupt.
    pub(crate) fn io(&mut self) -> bool {
        // SAFETY: the connection is live (see `parts`).
        if unsafe { NAL_CONNECTION_io(self.conn.as_ptr()) } == 0 {
            return false;
        }
        let (conn, plug) = self.parts();
        let (read, send) = conn.conn.buffers();
        plug.push(send);
        plug.pull(read)
    }
}

impl Drop for DC_PLUG {
    fn drop(&mut self) {
        if self.free_conn {
            // SAFETY: the plug owns the connection, which is live.
            unsafe { NAL_CONNECTION_free(self.conn.as_ptr()) };
        }
    }
}

/// Creates a plug over `conn`. With `DC_PLUG_FLAG_TO_SERVER` it writes
/// requests and reads replies (a client); without it, the reverse (a
/// server). Unless `DC_PLUG_FLAG_NOFREE_CONN` is given, the plug owns the
/// connection and frees it with itself.
///
/// # Safety
/// `conn` is NULL or a live connection object that stays live as long as
/// the plug.
///
/// # Returns
/// The plug, to be released with `DC_PLUG_free()`; NULL for a NULL `conn`.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_new(conn: *mut NAL_CONNECTION, flags: c_uint) -> *mut DC_PLUG {
    export!(ptr::null_mut(), [NonNull::new(conn)], |conn| {
        into_handle(DC_PLUG::new(conn, flags))
    })
}

/// Releases a plug, and its connection unless it was created with
/// `DC_PLUG_FLAG_NOFREE_CONN`.
///
/// # Safety
/// `plug` is NULL or a plug from `DC_PLUG_new()` not yet freed.
///
/// # Returns
/// 1; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_free(plug: *mut DC_PLUG) -> c_int {
    export!(0, [NonNull::new(plug)], |plug| {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_handle(plug.as_ptr()) };
        true
    })
}

/// Adds the plug's connection to a selector (`NAL_CONNECTION_add_to_selector()`).
///
/// # Safety
/// `plug` and `sel` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL or a connection already in a selector.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_to_select(plug: *mut DC_PLUG, sel: *mut NAL_SELECTOR) -> c_int {
    export!(0, [object_mut(plug)], |p| {
        // SAFETY: the plug's connection is live; `sel` is forwarded from
        // this function's contract.
        unsafe { NAL_CONNECTION_add_to_selector(p.conn.as_ptr(), sel) }
    })
}

/// Takes the plug's connection out of its selector.
///
/// # Safety
/// `plug` is NULL or a live plug.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_from_select(plug: *mut DC_PLUG) {
    export!((), [object_mut(plug)], |p| {
        // SAFETY: the plug's connection is live.
        unsafe { NAL_CONNECTION_del_from_selector(p.conn.as_ptr()) }
    })
}

/// Does the network I/O the last select allows, then decodes whatever
/// arrived (up to one whole message waiting to be read) and frames
/// committed messages into the send buffer as room allows.
///
/// # Safety
/// `plug` is NULL or a live plug.
///
/// # Returns
/// 1 when all is well; 0 when the connection failed or closed, the peer
/// sent corrupt data, or for NULL. The plug is then of no further use.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_io(plug: *mut DC_PLUG) -> c_int {
    export!(0, [object_mut(plug)], |p| p.io())
}

/// Starts reading the message that has arrived (or, with `resume`
/// non-zero, returns the one being read again). The payload stays valid
/// until `DC_PLUG_consume()`.
///
/// # Safety
/// `plug` is NULL or a live plug; the four out-pointers are NULL or valid
/// for writing.
///
/// # Returns
/// 1 with the message's uid, command, payload and payload length stored;
/// 0 when no message is waiting (or one is being read and `resume` is 0),
/// or for a NULL pointer.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_read(
    plug: *mut DC_PLUG,
    resume: c_int,
    request_uid: *mut c_ulong,
    cmd: *mut DC_CMD,
    payload_data: *mut *const c_uchar,
    payload_len: *mut c_uint,
) -> c_int {
    export!(
        0,
        [
            object_mut(request_uid),
            object_mut(cmd),
            object_mut(payload_data),
            object_mut(payload_len),
            object_mut(plug)
        ],
        |uid, cmd, data, len, p| p.plug.read(resume != 0).map(|msg| {
            *uid = c_ulong::from(msg.uid);
            *cmd = to_dc_cmd(msg.command);
            *data = msg.payload.as_ptr();
            // A payload is at most 32768 bytes.
            *len = msg.payload.len() as c_uint;
            true
        })
    )
}

/// Finishes with the message being read, and decodes the next one if it
/// has arrived.
///
/// # Safety
/// `plug` is NULL or a live plug.
///
/// # Returns
/// 1 on success; 0 when no message was being read, when what follows is
/// corrupt, or for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_consume(plug: *mut DC_PLUG) -> c_int {
    export!(0, [object_mut(plug)], |p| {
        p.with_buffers(|plug, read, _| plug.consume(read))
    })
}

/// Starts a message (or, with `resume` non-zero, replaces the one being
/// written) with the given uid, command and first payload bytes; add more
/// with `DC_PLUG_write_more()`, then send with `DC_PLUG_commit()`.
///
/// # Safety
/// `plug` is NULL or a live plug; `payload_data` is NULL or points to
/// `payload_len` readable bytes.
///
/// # Returns
/// 1 on success; 0 while a committed message is still being framed, while
/// one is being written and `resume` is 0, for an invalid command, a NULL
/// payload with a non-zero length, a payload over 32768 bytes, or a NULL
/// plug. Only the low 32 bits of `request_uid` go on the wire.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_write(
    plug: *mut DC_PLUG,
    resume: c_int,
    request_uid: c_ulong,
    cmd: DC_CMD,
    payload_data: *const c_uchar,
    payload_len: c_uint,
) -> c_int {
    let uid = (request_uid & 0xffff_ffff) as u32;
    export!(
        0,
        [
            object_mut(plug),
            from_dc_cmd(cmd),
            bytes_or_empty(payload_data, payload_len)
        ],
        |p, command, payload| p.plug.write(resume != 0, uid, command, payload)
    )
}

/// Appends payload bytes to the message being written.
///
/// # Safety
/// `plug` is NULL or a live plug; `data` is NULL or points to `data_len`
/// readable bytes.
///
/// # Returns
/// 1 on success; 0 when no message is being written, for NULL or no bytes,
/// or when the payload would exceed 32768 bytes.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_write_more(
    plug: *mut DC_PLUG,
    data: *const c_uchar,
    data_len: c_uint,
) -> c_int {
    export!(0, [object_mut(plug), bytes(data, data_len)], |p, data| {
        p.plug.write_more(data)
    })
}

/// Sends the message being written: its frames go into the connection's
/// send buffer now as far as room allows, and during later `DC_PLUG_io()`
/// calls.
///
/// # Safety
/// `plug` is NULL or a live plug.
///
/// # Returns
/// 1 on success; 0 when no message is being written, the connection is not
/// set up, or for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_commit(plug: *mut DC_PLUG) -> c_int {
    export!(0, [object_mut(plug)], |p| {
        p.with_buffers(|plug, _, send| plug.commit(send))
    })
}

/// Drops the message being written.
///
/// # Safety
/// `plug` is NULL or a live plug.
///
/// # Returns
/// 1 on success; 0 when no message is being written, or for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_PLUG_rollback(plug: *mut DC_PLUG) -> c_int {
    export!(0, [object_mut(plug)], |p| p.plug.rollback())
}
