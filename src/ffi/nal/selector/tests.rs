//! The links between a selector and its objects, made and broken in every
//! order. Only `socketpair(2)` and `fcntl(2)` are called (no waiting), so
//! Miri can check the pointers: `cargo +nightly miri test --lib ffi::`.

use super::super::connection::{
    NAL_CONNECTION_create_pair, NAL_CONNECTION_new, NAL_CONNECTION_reset,
};
use super::super::{
    NAL_CONNECTION_add_to_selector, NAL_CONNECTION_del_from_selector, NAL_CONNECTION_free,
};
use super::*;

/// Two connected connection objects.
fn pair() -> (*mut NAL_CONNECTION, *mut NAL_CONNECTION) {
    let (a, b) = (NAL_CONNECTION_new(), NAL_CONNECTION_new());
    // SAFETY: two live, distinct, unused objects.
    assert_eq!(unsafe { NAL_CONNECTION_create_pair(a, b, 1024) }, 1);
    (a, b)
}

fn linked(conn: *mut NAL_CONNECTION) -> bool {
    // SAFETY: the tests pass live objects, not borrowed elsewhere.
    unsafe { (*conn).link.is_some() }
}

#[test]
fn connection_freed_before_its_selector() {
    let sel = NAL_SELECTOR_new_fdpoll();
    let (a, b) = pair();
    // SAFETY: live objects from this test, each freed once, last.
    unsafe {
        assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 1);
        assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 0, "already in");
        assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 2);
        NAL_CONNECTION_free(a);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 1);
        NAL_CONNECTION_del_from_selector(b);
        assert!(!linked(b));
        assert_eq!(NAL_SELECTOR_num_objects(sel), 0);
        assert_eq!(
            NAL_CONNECTION_add_to_selector(b, sel),
            1,
            "the slot is reused"
        );
        assert_eq!((*sel).slots.len(), 2);
        NAL_CONNECTION_free(b);
        NAL_SELECTOR_free(sel);
    }
}

#[test]
fn selector_freed_before_its_connections() {
    let (sel, other) = (NAL_SELECTOR_new(), NAL_SELECTOR_new_fdselect());
    let (a, b) = pair();
    // SAFETY: live objects from this test, each freed once.
    unsafe {
        assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 1);
        assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
        NAL_SELECTOR_free(sel);
        assert!(!linked(a) && !linked(b), "the selector let go of both");
        // Still usable: they join another selector, and leave it.
        assert_eq!(NAL_CONNECTION_add_to_selector(a, other), 1);
        assert_eq!(NAL_CONNECTION_add_to_selector(b, other), 1);
        NAL_SELECTOR_reset(other);
        assert_eq!(NAL_SELECTOR_num_objects(other), 0);
        assert!(!linked(a) && !linked(b));
        assert_eq!(NAL_CONNECTION_add_to_selector(a, other), 1);
        NAL_CONNECTION_reset(a);
        assert!(!linked(a));
        assert_eq!(NAL_SELECTOR_num_objects(other), 0);
        NAL_CONNECTION_free(a);
        NAL_CONNECTION_free(b);
        NAL_SELECTOR_free(other);
    }
}

#[test]
fn null_and_unconnected_objects_are_refused() {
    let sel = NAL_SELECTOR_new();
    let idle = NAL_CONNECTION_new();
    // SAFETY: NULL or live objects from this test, each freed once.
    unsafe {
        assert_eq!(
            NAL_CONNECTION_add_to_selector(idle, sel),
            0,
            "not connected"
        );
        assert_eq!(NAL_CONNECTION_add_to_selector(ptr::null_mut(), sel), 0);
        assert_eq!(NAL_SELECTOR_num_objects(ptr::null()), 0);
        assert_eq!(NAL_SELECTOR_num_objects(sel), 0);
        NAL_CONNECTION_del_from_selector(idle);
        NAL_CONNECTION_del_from_selector(ptr::null_mut());
        NAL_SELECTOR_reset(ptr::null_mut());
        NAL_SELECTOR_free(ptr::null_mut());
        NAL_CONNECTION_free(idle);
        NAL_SELECTOR_free(sel);
    }
}
