//! What every export does at the edge, written once: catch panics, turn raw
//! pointers into references and slices (refusing NULL and zero lengths),
//! and map results to the C conventions.
//!
//! Every export has one shape, [`export!`]: the value C gets on any
//! failure, the checks of its pointer arguments, and the one call that does
//! the work and gives an [`Outcome`] (safe Rust wherever no C callback or
//! caller-owned memory is involved):
//!
//! ```ignore
//! pub unsafe extern "C" fn DC_PLUG_write_more(plug: *mut DC_PLUG, data: *const c_uchar, data_len: c_uint) -> c_int {
//!     export!(0, [object_mut(plug), bytes(data, data_len)], |p, data| p.plug.write_more(data))
//! }
//! ```

use std::ffi::{c_char, c_int, c_uchar, c_uint, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `fail` so that no unwinding crosses into C
/// and nothing aborts the host process.
pub(crate) fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fail)
}

/// The one shape of every export. `export!(FAIL, [CHECKS], |NAMES| BODY)`:
///
/// - runs everything under [`guard`], so that a panic returns `FAIL`;
/// - evaluates each check (an expression giving an `Option`, usually
///   [`object`], [`object_mut`], [`bytes`], [`bytes_mut`] or [`c_str`] of
///   an argument) and binds its value to the matching name; the first
///   `None` (a NULL pointer, a zero length, a string that is not UTF-8)
///   returns `FAIL`;
/// - maps what `BODY` gives (an [`Outcome`]: an `Option` or a `Result`, or
///   a value that cannot fail) to the C convention: `None` or `Err` is
///   `FAIL`, a value is passed as it is, a `bool` is 1 or 0.
///
/// `export!(FAIL, [], || BODY)` is the form for an export without pointer
/// arguments. `FAIL` is evaluated once and must be `Copy` (an integer,
/// NULL, or `()`).
macro_rules! export {
    ($fail:expr, [], || $body:expr) => {{
        let fail = $fail;
        $crate::ffi::boundary::guard(fail, || {
            $crate::ffi::boundary::Outcome::into_c($body, fail)
        })
    }};
    ($fail:expr, [$($check:expr),+ $(,)?], |$($name:pat_param),+| $body:expr) => {{
        let fail = $fail;
        $crate::ffi::boundary::guard(fail, || {
            $(
                #[allow(unused_unsafe)]
                // SAFETY: the checks read only the export's own arguments,
                // which its `# Safety` contract says are NULL or valid.
                let Some($name) = (unsafe { $check }) else {
                    return fail;
                };
            )+
            $crate::ffi::boundary::Outcome::into_c($body, fail)
        })
    }};
}
pub(crate) use export;

/// What an export's safe function returns: a value for C, or nothing (C
/// gets the export's failure value). `Err` carries why, for Rust callers;
/// the C conventions have no room for it.
pub(crate) trait Outcome<C> {
    /// The value C gets; `fail` when there is none.
    fn into_c(self, fail: C) -> C;
}

impl<T: IntoC<C>, C> Outcome<C> for Option<T> {
    fn into_c(self, fail: C) -> C {
        self.map_or(fail, IntoC::into_c)
    }
}

impl<T: IntoC<C>, E, C> Outcome<C> for Result<T, E> {
    fn into_c(self, fail: C) -> C {
        self.map_or(fail, IntoC::into_c)
    }
}

/// A yes or no that cannot fail: 1 or 0.
impl Outcome<c_int> for bool {
    fn into_c(self, _fail: c_int) -> c_int {
        int_bool(self)
    }
}

/// A C value that cannot fail (a count, a handle that is never NULL, a
/// code the export passes on): as it is.
macro_rules! passed_as_is {
    ($($t:ty),*) => {$(
        impl Outcome<$t> for $t {
            fn into_c(self, _fail: $t) -> $t {
                self
            }
        }
    )*};
}
passed_as_is!(i32, u32, u64);

impl<T> Outcome<*mut T> for *mut T {
    fn into_c(self, _fail: *mut T) -> *mut T {
        self
    }
}

impl<T> Outcome<*const T> for *const T {
    fn into_c(self, _fail: *const T) -> *const T {
        self
    }
}

/// Nothing to return, for the exports that return `void`.
impl Outcome<()> for () {
    fn into_c(self, _fail: ()) {}
}

/// A Rust value as C sees it.
pub(crate) trait IntoC<C> {
    /// The C value.
    fn into_c(self) -> C;
}

/// Integers, pointers and `()` pass as they are.
impl<T> IntoC<T> for T {
    fn into_c(self) -> T {
        self
    }
}

/// `1` for true, `0` for false: the libraries' usual success convention.
impl IntoC<c_int> for bool {
    fn into_c(self) -> c_int {
        int_bool(self)
    }
}

/// `1` for true, `0` for false: the libraries' usual success convention.
pub(crate) fn int_bool(b: bool) -> c_int {
    c_int::from(b)
}

/// Borrows a caller's object.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that is not freed while the
/// returned reference is in use.
pub(crate) unsafe fn object<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the caller guarantees ptr is NULL or valid for 'a.
    unsafe { ptr.as_ref() }
}

/// Borrows a caller's object for changing it.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nothing else accesses while
/// the returned reference is in use.
pub(crate) unsafe fn object_mut<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller guarantees ptr is NULL or valid and unaliased for 'a.
    unsafe { ptr.as_mut() }
}

/// Borrows two distinct caller's objects for changing them; `None` when
/// either is NULL or both are the same object.
///
/// # Safety
/// As [`object_mut`], for each of `a` and `b`.
pub(crate) unsafe fn two_objects_mut<'a, T>(
    a: *mut T,
    b: *mut T,
) -> Option<(&'a mut T, &'a mut T)> {
    if std::ptr::eq(a, b) {
        return None;
    }
    // SAFETY: per this function's contract; distinct, so not aliased.
    unsafe { Some((object_mut(a)?, object_mut(b)?)) }
}

/// Borrows `len` bytes at `ptr`; `None` for NULL or a zero length.
///
/// # Safety
/// When non-NULL, `ptr` points to at least `len` readable bytes that are not
/// written during the call.
pub(crate) unsafe fn bytes<'a>(ptr: *const c_uchar, len: c_uint) -> Option<&'a [u8]> {
    if ptr.is_null() || len == 0 {
        return None;
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes.
    Some(unsafe { std::slice::from_raw_parts(ptr, len as usize) })
}

/// Borrows `len` bytes at `ptr`, where a zero length is allowed (an empty
/// slice, whatever `ptr` is); `None` for NULL with a length.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn bytes_or_empty<'a>(ptr: *const c_uchar, len: c_uint) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { bytes(ptr, len) }
}

/// Borrows a caller's writable buffer of `len` bytes; `None` for NULL (an
/// empty slice for a zero length).
///
/// # Safety
/// When non-NULL, `ptr` points to at least `len` writable bytes that nothing
/// else accesses during the call.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut c_uchar, len: c_uint) -> Option<&'a mut [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable bytes.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len as usize) })
}

/// Borrows a NUL-terminated string as UTF-8; `None` for NULL or invalid
/// UTF-8.
///
/// # Safety
/// When non-NULL, `ptr` points to a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}

/// Borrows a string that may be absent: `Some(None)` for NULL,
/// `Some(Some(s))` for a UTF-8 string, `None` for one that is not UTF-8 (a
/// string given but unreadable is refused, not taken as absent).
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn c_str_or_null<'a>(ptr: *const c_char) -> Option<Option<&'a str>> {
    if ptr.is_null() {
        return Some(None);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { c_str(ptr) }.map(Some)
}

/// Moves `value` to the heap and hands C an owning pointer.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops an object made by [`into_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] and was not freed before; no
/// other thread uses it.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: per the caller, ptr came from Box::into_raw and is unique.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

// These tests make no system calls, so that Miri can check the pointer
// handling: `cargo +nightly miri test --lib ffi::`.
#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::ffi::c_char;

    #[test]
    fn guard_turns_a_panic_into_the_failure_value() {
        assert_eq!(guard(-1, || 7), 7);
        assert_eq!(guard(-1, || -> c_int { panic!("inside an export") }), -1);
        let p: *mut u8 = guard(std::ptr::null_mut(), || panic!("no handle"));
        assert!(p.is_null());
        // Whatever the closure owned when it panicked is dropped, once.
        struct CountDrop<'a>(&'a Cell<u32>);
        impl Drop for CountDrop<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = Cell::new(0);
        let owned = CountDrop(&drops);
        assert_eq!(
            guard(0, move || {
                let _kept = owned;
                panic!("with something owned")
            }),
            0
        );
        assert_eq!(drops.get(), 1);
    }

    /// An export in miniature: a NULL check, a length check, and a body
    /// whose result is mapped to the convention.
    ///
    /// # Safety
    /// `ptr` is NULL or points to `len` readable bytes.
    unsafe fn first_byte(ptr: *const c_uchar, len: c_uint) -> c_int {
        export!(-1, [bytes(ptr, len)], |data| match data[0] {
            0 => Err("zero"),
            b => Ok(c_int::from(b)),
        })
    }

    #[test]
    fn export_checks_arguments_and_maps_outcomes() {
        let data = [7u8, 0];
        // SAFETY: NULL, or `data` with at most its length.
        unsafe {
            assert_eq!(first_byte(data.as_ptr(), 2), 7);
            assert_eq!(first_byte(std::ptr::null(), 2), -1, "NULL");
            assert_eq!(first_byte(data.as_ptr(), 0), -1, "zero length");
            assert_eq!(first_byte(data.as_ptr().add(1), 1), -1, "Err");
        }
        let yes: c_int = export!(0, [], || Some(true));
        let no: c_int = export!(0, [], || Some(false));
        let none: c_int = export!(0, [], || None::<bool>);
        assert_eq!((yes, no, none), (1, 0, 0));
        fn made() -> Option<*mut u8> {
            panic!("inside an export")
        }
        let null: *mut u8 = export!(std::ptr::null_mut(), [], || made());
        assert!(null.is_null());
        let unit = Cell::new(0);
        let () = export!((), [Some(1)], |one| unit.set(one));
        assert_eq!(unit.get(), 1);
    }

    #[test]
    fn int_bool_is_one_or_zero() {
        assert_eq!((int_bool(true), int_bool(false)), (1, 0));
    }

    #[test]
    fn objects_borrow_or_refuse_null() {
        let mut value = 41u32;
        // SAFETY: NULL, or a live local nothing else uses meanwhile.
        unsafe {
            assert!(object::<u32>(std::ptr::null()).is_none());
            assert!(object_mut::<u32>(std::ptr::null_mut()).is_none());
            *object_mut(&mut value).unwrap() += 1;
            assert_eq!(object(&value).copied(), Some(42));
        }
    }

    #[test]
    fn bytes_check_null_and_length() {
        let data = [1u8, 2, 3, 4];
        // SAFETY: NULL, or `data` with at most its length.
        unsafe {
            assert_eq!(bytes(std::ptr::null(), 4), None);
            assert_eq!(bytes(data.as_ptr(), 0), None, "a zero length is refused");
            assert_eq!(bytes(data.as_ptr(), 4), Some(&data[..]));
            assert_eq!(bytes(data.as_ptr().add(1), 2), Some(&data[1..3]));
            assert_eq!(bytes_or_empty(std::ptr::null(), 0), Some(&[][..]));
            assert_eq!(bytes_or_empty(data.as_ptr(), 0), Some(&[][..]));
            assert_eq!(bytes_or_empty(std::ptr::null(), 1), None);
            assert_eq!(bytes_or_empty(data.as_ptr(), 2), Some(&data[..2]));
        }
        let mut out = [0u8; 3];
        // SAFETY: NULL, or `out` with at most its length.
        unsafe {
            assert!(bytes_mut(std::ptr::null_mut(), 3).is_none());
            assert_eq!(bytes_mut(out.as_mut_ptr(), 0).map(|s| s.len()), Some(0));
            bytes_mut(out.as_mut_ptr(), 3)
                .unwrap()
                .copy_from_slice(b"abc");
        }
        assert_eq!(&out, b"abc");
    }

    #[test]
    fn c_str_reads_to_the_nul_and_wants_utf8() {
        let text = b"UNIX:/tmp/s\0ignored";
        let latin1 = b"caf\xe9\0";
        // SAFETY: NULL, or NUL-terminated arrays that outlive the calls.
        unsafe {
            assert_eq!(c_str(std::ptr::null()), None);
            assert_eq!(c_str(text.as_ptr().cast::<c_char>()), Some("UNIX:/tmp/s"));
            assert_eq!(c_str(c"".as_ptr()), Some(""));
            assert_eq!(c_str(latin1.as_ptr().cast::<c_char>()), None);
            assert_eq!(c_str_or_null(std::ptr::null()), Some(None));
            assert_eq!(c_str_or_null(c"x".as_ptr()), Some(Some("x")));
            assert_eq!(c_str_or_null(latin1.as_ptr().cast::<c_char>()), None);
        }
    }

    #[test]
    fn handles_round_trip_and_free_once() {
        let drops = std::rc::Rc::new(Cell::new(0));
        struct Tracked(std::rc::Rc<Cell<u32>>, Vec<u8>);
        impl Drop for Tracked {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let handle = into_handle(Tracked(drops.clone(), vec![5; 64]));
        assert!(!handle.is_null());
        // SAFETY: `handle` came from into_handle and is freed exactly once,
        // after the last borrow; NULL is allowed.
        unsafe {
            object_mut(handle).unwrap().1.push(6);
            assert_eq!(object(handle).unwrap().1.len(), 65);
            free_handle(handle);
            free_handle::<Tracked>(std::ptr::null_mut());
        }
        assert_eq!(drops.get(), 1);
    }
}
