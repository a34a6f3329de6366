//! The types of `libnal/nal_devel.h`: the four vtables a transport or a
//! selector fills in, the selector token, and the selector type and control
//! numbers. Their C declarations are written out in
//! `abi/headers/nal_devel.toml` with the same layout.

use super::super::{NAL_ADDRESS, NAL_BUFFER, NAL_CONNECTION, NAL_LISTENER, NAL_SELECTOR};
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong, c_void};

/// The target of a selector token. Never defined: tokens are only compared
/// and passed back.
#[repr(C)]
pub struct NAL_SELECTOR_TOKEN_st {
    _private: [u8; 0],
}

/// What a selector hands an object when the object joins it, and takes
/// back on every later call about that object. NULL means none.
pub type NAL_SELECTOR_TOKEN = *mut NAL_SELECTOR_TOKEN_st;

/// A selector's kind, as `nal_selector_get_type()` reports it.
pub type NAL_SELECTOR_TYPE = c_int;
/// No kind: a NULL selector.
pub const NAL_SELECTOR_TYPE_ERROR: NAL_SELECTOR_TYPE = 0;
/// From `NAL_SELECTOR_new()`, before its first object chose a kind.
pub const NAL_SELECTOR_TYPE_DYNAMIC: NAL_SELECTOR_TYPE = 1;
/// The `sel_fdselect()` kind.
pub const NAL_SELECTOR_TYPE_FDSELECT: NAL_SELECTOR_TYPE = 2;
/// The `sel_fdpoll()` kind.
pub const NAL_SELECTOR_TYPE_FDPOLL: NAL_SELECTOR_TYPE = 3;

/// The control command that registers a descriptor for the coming wait
/// (argument: [`NAL_FD_FDSET`]), for the built-in selectors.
pub const NAL_FD_CTRL_FDSET: c_int = 0x0100;
/// The control command that asks what the last wait found on a descriptor
/// (argument: [`NAL_FD_FDTEST`]).
pub const NAL_FD_CTRL_FDTEST: c_int = 0x0101;
/// Descriptor flags: readable.
pub const NAL_FD_FLAG_READ: c_uchar = 0x01;
/// Descriptor flags: writable.
pub const NAL_FD_FLAG_SEND: c_uchar = 0x02;
/// Descriptor flags: an error or hang-up is pending.
pub const NAL_FD_FLAG_EXCEPT: c_uchar = 0x04;

/// The argument of [`NAL_FD_CTRL_FDSET`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NAL_FD_FDSET {
    /// The token of the object registering the descriptor.
    pub token: NAL_SELECTOR_TOKEN,
    /// The descriptor.
    pub fd: c_int,
    /// What to wait for (`NAL_FD_FLAG_*`).
    pub flags: c_uchar,
}

/// The argument of [`NAL_FD_CTRL_FDTEST`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NAL_FD_FDTEST {
    /// Set by the selector: what the last wait found (`NAL_FD_FLAG_*`).
    pub flags: c_uchar,
    /// The token of the object asking.
    pub token: NAL_SELECTOR_TOKEN,
    /// The descriptor it registered.
    pub fd: c_int,
}

type Hook<O> = Option<unsafe extern "C" fn(*mut O)>;
type Create<O> = Option<unsafe extern "C" fn(*mut O) -> c_int>;

/// An address type: how strings with its prefixes parse, and which listener
/// and connection types serve it.
#[repr(C)]
#[derive(Debug)]
pub struct NAL_ADDRESS_vtable {
    pub unique_name: *const c_char,
    pub vtdata_size: usize,
    pub prefixes: *const *const c_char,
    pub on_create: Create<NAL_ADDRESS>,
    pub on_destroy: Hook<NAL_ADDRESS>,
    pub on_reset: Hook<NAL_ADDRESS>,
    pub pre_close: Hook<NAL_ADDRESS>,
    pub parse: Option<unsafe extern "C" fn(*mut NAL_ADDRESS, *const c_char) -> c_int>,
    pub can_connect: Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> c_int>,
    pub can_listen: Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> c_int>,
    pub create_listener:
        Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> *const NAL_LISTENER_vtable>,
    pub create_connection:
        Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> *const NAL_CONNECTION_vtable>,
    pub next: *mut NAL_ADDRESS_vtable,
}

type SelAdd<O> = Option<unsafe extern "C" fn(*mut O, *mut NAL_SELECTOR) -> c_int>;
pub(crate) type SelTok<O> =
    Option<unsafe extern "C" fn(*mut O, *mut NAL_SELECTOR, NAL_SELECTOR_TOKEN)>;
type SelAddTok<O> =
    Option<unsafe extern "C" fn(*mut O, *mut NAL_SELECTOR, NAL_SELECTOR_TOKEN) -> c_int>;
pub(crate) type SelDel<O> = Option<unsafe extern "C" fn(*mut O, *mut NAL_SELECTOR)>;

/// A listener type.
#[repr(C)]
#[derive(Debug)]
pub struct NAL_LISTENER_vtable {
    pub vtdata_size: usize,
    pub on_create: Create<NAL_LISTENER>,
    pub on_destroy: Hook<NAL_LISTENER>,
    pub on_reset: Hook<NAL_LISTENER>,
    pub pre_close: Hook<NAL_LISTENER>,
    pub listen: Option<unsafe extern "C" fn(*mut NAL_LISTENER, *const NAL_ADDRESS) -> c_int>,
    pub pre_accept: Option<unsafe extern "C" fn(*mut NAL_LISTENER) -> *const NAL_CONNECTION_vtable>,
    pub finished: Option<unsafe extern "C" fn(*const NAL_LISTENER) -> c_int>,
    pub pre_selector_add: SelAdd<NAL_LISTENER>,
    pub post_selector_add: SelAddTok<NAL_LISTENER>,
    pub pre_selector_del: SelTok<NAL_LISTENER>,
    pub post_selector_del: SelDel<NAL_LISTENER>,
    pub pre_select: SelTok<NAL_LISTENER>,
    pub post_select: SelTok<NAL_LISTENER>,
    pub set_fs_owner:
        Option<unsafe extern "C" fn(*mut NAL_LISTENER, *const c_char, *const c_char) -> c_int>,
    pub set_fs_perms: Option<unsafe extern "C" fn(*mut NAL_LISTENER, *const c_char) -> c_int>,
}

/// A connection type.
#[repr(C)]
#[derive(Debug)]
pub struct NAL_CONNECTION_vtable {
    pub vtdata_size: usize,
    pub on_create: Create<NAL_CONNECTION>,
    pub on_destroy: Hook<NAL_CONNECTION>,
    pub on_reset: Hook<NAL_CONNECTION>,
    pub pre_close: Hook<NAL_CONNECTION>,
    pub connect: Option<unsafe extern "C" fn(*mut NAL_CONNECTION, *const NAL_ADDRESS) -> c_int>,
    pub accept: Option<unsafe extern "C" fn(*mut NAL_CONNECTION, *const NAL_LISTENER) -> c_int>,
    pub set_size: Option<unsafe extern "C" fn(*mut NAL_CONNECTION, c_uint) -> c_int>,
    pub get_read: Option<unsafe extern "C" fn(*const NAL_CONNECTION) -> *mut NAL_BUFFER>,
    pub get_send: Option<unsafe extern "C" fn(*const NAL_CONNECTION) -> *mut NAL_BUFFER>,
    pub is_established: Option<unsafe extern "C" fn(*const NAL_CONNECTION) -> c_int>,
    pub pre_selector_add: SelAdd<NAL_CONNECTION>,
    pub post_selector_add: SelAddTok<NAL_CONNECTION>,
    pub pre_selector_del: SelTok<NAL_CONNECTION>,
    pub post_selector_del: SelDel<NAL_CONNECTION>,
    pub pre_select: SelTok<NAL_CONNECTION>,
    pub post_select: SelTok<NAL_CONNECTION>,
    pub do_io: Option<unsafe extern "C" fn(*mut NAL_CONNECTION) -> c_int>,
}

/// A selector type.
#[repr(C)]
#[derive(Debug)]
pub struct NAL_SELECTOR_vtable {
    pub vtdata_size: usize,
    pub on_create: Create<NAL_SELECTOR>,
    pub on_destroy: Hook<NAL_SELECTOR>,
    pub on_reset: Hook<NAL_SELECTOR>,
    pub pre_close: Hook<NAL_SELECTOR>,
    pub get_type: Option<unsafe extern "C" fn(*const NAL_SELECTOR) -> NAL_SELECTOR_TYPE>,
    pub select: Option<unsafe extern "C" fn(*mut NAL_SELECTOR, c_ulong, c_int) -> c_int>,
    pub num_objects: Option<unsafe extern "C" fn(*const NAL_SELECTOR) -> c_uint>,
    pub add_listener:
        Option<unsafe extern "C" fn(*mut NAL_SELECTOR, *mut NAL_LISTENER) -> NAL_SELECTOR_TOKEN>,
    pub add_connection:
        Option<unsafe extern "C" fn(*mut NAL_SELECTOR, *mut NAL_CONNECTION) -> NAL_SELECTOR_TOKEN>,
    pub del_listener:
        Option<unsafe extern "C" fn(*mut NAL_SELECTOR, *mut NAL_LISTENER, NAL_SELECTOR_TOKEN)>,
    pub del_connection:
        Option<unsafe extern "C" fn(*mut NAL_SELECTOR, *mut NAL_CONNECTION, NAL_SELECTOR_TOKEN)>,
    pub ctrl: Option<unsafe extern "C" fn(*mut NAL_SELECTOR, c_int, *mut c_void) -> c_int>,
}

/// The four hooks every vtable starts with, for the code that maps and
/// unmaps a vtable on an object of type `O`.
pub(crate) trait Lifecycle<O> {
    fn vtdata_size(&self) -> usize;
    fn on_create(&self) -> Create<O>;
    fn on_destroy(&self) -> Hook<O>;
    fn on_reset(&self) -> Hook<O>;
    fn pre_close(&self) -> Hook<O>;
}

macro_rules! lifecycle {
    ($vt:ty, $obj:ty) => {
        impl Lifecycle<$obj> for $vt {
            fn vtdata_size(&self) -> usize {
                self.vtdata_size
            }
            fn on_create(&self) -> Create<$obj> {
                self.on_create
            }
            fn on_destroy(&self) -> Hook<$obj> {
                self.on_destroy
            }
            fn on_reset(&self) -> Hook<$obj> {
                self.on_reset
            }
            fn pre_close(&self) -> Hook<$obj> {
                self.pre_close
            }
        }
    };
}
lifecycle!(NAL_ADDRESS_vtable, NAL_ADDRESS);
lifecycle!(NAL_LISTENER_vtable, NAL_LISTENER);
lifecycle!(NAL_CONNECTION_vtable, NAL_CONNECTION);
lifecycle!(NAL_SELECTOR_vtable, NAL_SELECTOR);
