//! Vtables written in Rust the way a C program writes them: the lifecycle
//! hooks, the links between a C selector and its objects made and broken in
//! every order, and hooks that call back with the objects they were given.
//! Only `socketpair(2)` and `fcntl(2)` are called (no waiting), so Miri can
//! check the pointers: `cargo +nightly miri test --lib ffi::nal::devel`.

use super::super::connection::{
    NAL_CONNECTION_add_to_selector, NAL_CONNECTION_create_pair, NAL_CONNECTION_del_from_selector,
    NAL_CONNECTION_free, NAL_CONNECTION_new, NAL_CONNECTION_reset,
};
use super::super::selector::{NAL_SELECTOR_free, NAL_SELECTOR_num_objects, NAL_SELECTOR_reset};
use super::super::{NAL_CONNECTION, NAL_LISTENER, NAL_SELECTOR};
use super::connection::{nal_connection_get_selector, nal_connection_get_vtdata};
use super::connection::{nal_connection_get_vtable, nal_connection_set_vtable};
use super::selector::{nal_selector_get_type, nal_selector_get_vtdata, nal_selector_new};
use super::types::*;
use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::ptr;

thread_local! {
    /// What the hooks saw: (creates, resets, destroys).
    static SEEN: Cell<(u32, u32, u32)> = const { Cell::new((0, 0, 0)) };
}

fn seen() -> (u32, u32, u32) {
    SEEN.with(Cell::get)
}

fn bump(which: usize) {
    SEEN.with(|s| {
        let mut v = s.get();
        match which {
            0 => v.0 += 1,
            1 => v.1 += 1,
            _ => v.2 += 1,
        }
        s.set(v);
    });
}

/// A connection's data: a counter the hooks write through the accessors.
#[repr(C)]
struct ConnData {
    created: u32,
    joined: u32,
}

unsafe extern "C" fn conn_create(c: *mut NAL_CONNECTION) -> c_int {
    // SAFETY: the library passes a live connection whose data is ConnData.
    let d = unsafe { &mut *nal_connection_get_vtdata(c).cast::<ConnData>() };
    d.created += 1;
    bump(0);
    1
}

unsafe extern "C" fn conn_reset(_: *mut NAL_CONNECTION) {
    bump(1);
}

unsafe extern "C" fn conn_destroy(_: *mut NAL_CONNECTION) {
    bump(2);
}

unsafe extern "C" fn conn_post_add(
    c: *mut NAL_CONNECTION,
    sel: *mut NAL_SELECTOR,
    tok: NAL_SELECTOR_TOKEN,
) -> c_int {
    let mut seen = ptr::null_mut();
    // SAFETY: as above; the link is already made when this hook runs.
    unsafe {
        assert_eq!(nal_connection_get_selector(c, &mut seen), sel);
        assert_eq!(seen, tok);
        (*nal_connection_get_vtdata(c).cast::<ConnData>()).joined += 1;
    }
    1
}

static CONN_VT: NAL_CONNECTION_vtable = NAL_CONNECTION_vtable {
    vtdata_size: std::mem::size_of::<ConnData>(),
    on_create: Some(conn_create),
    on_destroy: Some(conn_destroy),
    on_reset: Some(conn_reset),
    pre_close: None,
    connect: None,
    accept: None,
    set_size: None,
    get_read: None,
    get_send: None,
    is_established: None,
    pre_selector_add: None,
    post_selector_add: Some(conn_post_add),
    pre_selector_del: None,
    post_selector_del: None,
    pre_select: None,
    post_select: None,
    do_io: None,
};

/// A selector's data: up to four listed connections.
#[repr(C)]
struct SelData {
    conns: [*mut NAL_CONNECTION; 4],
}

unsafe extern "C" fn sel_create(s: *mut NAL_SELECTOR) -> c_int {
    // SAFETY: the library passes a live selector with zeroed SelData.
    assert!(unsafe { (*nal_selector_get_vtdata(s).cast::<SelData>()).conns[0] }.is_null());
    1
}

unsafe extern "C" fn sel_nothing(_: *mut NAL_SELECTOR) {}

unsafe extern "C" fn sel_type(_: *const NAL_SELECTOR) -> NAL_SELECTOR_TYPE {
    100 + 3
}

unsafe extern "C" fn sel_select(_: *mut NAL_SELECTOR, _: c_ulong, _: c_int) -> c_int {
    -1
}

unsafe extern "C" fn sel_num(s: *const NAL_SELECTOR) -> c_uint {
    // SAFETY: a live selector with SelData.
    let d = unsafe { &*nal_selector_get_vtdata(s).cast::<SelData>() };
    d.conns.iter().filter(|c| !c.is_null()).count() as c_uint
}

unsafe extern "C" fn sel_add_conn(
    s: *mut NAL_SELECTOR,
    c: *mut NAL_CONNECTION,
) -> NAL_SELECTOR_TOKEN {
    // SAFETY: a live selector with SelData.
    let d = unsafe { &mut *nal_selector_get_vtdata(s).cast::<SelData>() };
    match d.conns.iter().position(|c| c.is_null()) {
        Some(i) => {
            d.conns[i] = c;
            ptr::without_provenance_mut(i + 10)
        }
        None => ptr::null_mut(),
    }
}

unsafe extern "C" fn sel_del_conn(
    s: *mut NAL_SELECTOR,
    c: *mut NAL_CONNECTION,
    t: NAL_SELECTOR_TOKEN,
) {
    // SAFETY: a live selector with SelData.
    let d = unsafe { &mut *nal_selector_get_vtdata(s).cast::<SelData>() };
    assert_eq!(d.conns[t.addr() - 10], c, "the token names the connection");
    d.conns[t.addr() - 10] = ptr::null_mut();
}

unsafe extern "C" fn sel_add_list(
    _: *mut NAL_SELECTOR,
    _: *mut NAL_LISTENER,
) -> NAL_SELECTOR_TOKEN {
    ptr::null_mut()
}

unsafe extern "C" fn sel_ctrl(_: *mut NAL_SELECTOR, _: c_int, _: *mut c_void) -> c_int {
    0
}

static SEL_VT: NAL_SELECTOR_vtable = NAL_SELECTOR_vtable {
    vtdata_size: std::mem::size_of::<SelData>(),
    on_create: Some(sel_create),
    on_destroy: Some(sel_nothing),
    on_reset: Some(sel_nothing),
    pre_close: None,
    get_type: Some(sel_type),
    select: Some(sel_select),
    num_objects: Some(sel_num),
    add_listener: Some(sel_add_list),
    add_connection: Some(sel_add_conn),
    del_listener: None,
    del_connection: Some(sel_del_conn),
    ctrl: Some(sel_ctrl),
};

#[test]
fn a_connection_vtable_is_mapped_reused_and_destroyed() {
    let conn = NAL_CONNECTION_new();
    let before = seen();
    // SAFETY: a live connection from this test, freed once, last.
    unsafe {
        assert_eq!(nal_connection_set_vtable(conn, &CONN_VT), 1);
        assert!(ptr::eq(nal_connection_get_vtable(conn), &CONN_VT));
        let data = nal_connection_get_vtdata(conn).cast::<ConnData>();
        assert_eq!((*data).created, 1);
        NAL_CONNECTION_reset(conn);
        assert!(nal_connection_get_vtable(conn).is_null());
        // Reused with the same vtable: the data its reset left.
        assert_eq!(nal_connection_set_vtable(conn, &CONN_VT), 1);
        assert_eq!(
            (*nal_connection_get_vtdata(conn).cast::<ConnData>()).created,
            2
        );
        NAL_CONNECTION_free(conn);
    }
    let after = seen();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (2, 1, 1)
    );
}

#[test]
fn a_c_selector_lists_both_kinds_of_connection_and_lets_go() {
    // SAFETY: live objects from this test, each freed once.
    unsafe {
        let sel = nal_selector_new(&SEL_VT);
        assert!(!sel.is_null());
        assert_eq!(nal_selector_get_type(sel), 103);
        let (a, b) = (NAL_CONNECTION_new(), NAL_CONNECTION_new());
        assert_eq!(NAL_CONNECTION_create_pair(a, b, 512), 1);
        let custom = NAL_CONNECTION_new();
        assert_eq!(nal_connection_set_vtable(custom, &CONN_VT), 1);

        assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 1);
        assert_eq!(NAL_CONNECTION_add_to_selector(custom, sel), 1);
        assert_eq!(
            (*nal_connection_get_vtdata(custom).cast::<ConnData>()).joined,
            1
        );
        assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 3);
        let mut tok = ptr::null_mut();
        assert_eq!(nal_connection_get_selector(b, &mut tok), sel);
        assert_eq!(tok.addr(), 12);

        NAL_CONNECTION_free(a);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 2, "the selector was told");
        NAL_CONNECTION_del_from_selector(custom);
        assert!(nal_connection_get_selector(custom, ptr::null_mut()).is_null());
        assert_eq!(NAL_SELECTOR_num_objects(sel), 1);
        assert_eq!(NAL_CONNECTION_add_to_selector(custom, sel), 1);
        NAL_SELECTOR_reset(sel);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 0, "a reset lets go of all");
        assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
        NAL_SELECTOR_free(sel);
        assert!(nal_connection_get_selector(b, ptr::null_mut()).is_null());
        NAL_CONNECTION_free(b);
        NAL_CONNECTION_free(custom);
    }
}

#[test]
fn null_and_refusals() {
    // SAFETY: NULL, or live objects from this test.
    unsafe {
        assert!(nal_selector_new(ptr::null()).is_null());
        assert_eq!(nal_connection_set_vtable(ptr::null_mut(), &CONN_VT), 0);
        let conn = NAL_CONNECTION_new();
        assert_eq!(nal_connection_set_vtable(conn, ptr::null()), 0);
        assert!(nal_connection_get_vtdata(ptr::null()).is_null());
        assert_eq!(nal_selector_get_type(ptr::null()), NAL_SELECTOR_TYPE_ERROR);
        // A C selector with room for four refuses a fifth connection,
        // which stays usable and in no selector.
        let sel = nal_selector_new(&SEL_VT);
        assert_eq!(nal_connection_set_vtable(conn, &CONN_VT), 1);
        let extras: Vec<*mut NAL_CONNECTION> = (0..4).map(|_| NAL_CONNECTION_new()).collect();
        for &extra in &extras {
            assert_eq!(nal_connection_set_vtable(extra, &CONN_VT), 1);
            assert_eq!(NAL_CONNECTION_add_to_selector(extra, sel), 1);
        }
        assert_eq!(NAL_CONNECTION_add_to_selector(conn, sel), 0, "no room");
        assert!(nal_connection_get_selector(conn, ptr::null_mut()).is_null());
        NAL_CONNECTION_free(extras[1]);
        assert_eq!(NAL_CONNECTION_add_to_selector(conn, sel), 1, "room again");
        for extra in [extras[0], extras[2], extras[3]] {
            NAL_CONNECTION_free(extra);
        }
        NAL_SELECTOR_free(sel);
        NAL_CONNECTION_free(conn);
    }
}
