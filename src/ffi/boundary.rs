//! The panic boundary and the conversions every exported function uses: NULL
//! checks, handles, strings, buffers, timeouts and the thread's last error.
//! Exported functions contain no pointer casts and no `unsafe`; it all lives
//! here.

use super::error::{jw_status, status_of};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// This thread's last failure message, "" if none. The pointer stays valid
/// until the next failing jumpwire call on this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an exported function's body: catches panics (`JW_ERR_INTERNAL`), maps
/// an error to its status and records its message for `jw_last_error()`.
pub(crate) fn boundary(f: impl FnOnce() -> Result<jw_status>) -> jw_status {
    crate::logging::init_from_env();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            status_of(&e)
        }
        Err(p) => {
            let msg = format!("internal error: panic: {}", panic_text(&*p));
            log::error!("{msg}");
            set_last_error(&msg);
            jw_status::JW_ERR_INTERNAL
        }
    }
}

/// For functions that return nothing (`*_free`, `*_close`): panics are caught
/// and logged.
pub(crate) fn boundary_void(f: impl FnOnce()) {
    crate::logging::init_from_env();
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        log::error!("internal error: panic: {}", panic_text(&*p));
    }
}

/// Ties an opaque C handle type to the Rust value behind it. Handles made with
/// [`box_out`] own a `Box`, those made with [`arc_out`] an `Arc`.
pub(crate) trait Handle {
    /// The Rust value behind the handle.
    type Rust;
    /// [`Boxed`] or [`Shared`]: which helpers may convert this handle.
    type Ownership;
    /// The handle's C name, for messages.
    const NAME: &'static str;
}

/// Ownership kind of handles that own a `Box` (inert objects: `_new`/`_free`).
pub(crate) struct Boxed;
/// Ownership kind of handles that own an `Arc` (live objects that another
/// thread may be using when `_close` is called).
pub(crate) struct Shared;

fn null(what: &str) -> Error {
    Error::invalid(format!("{what} is NULL"))
}

/// Writes `value` to the out-pointer `out` (checked for NULL first).
pub(crate) fn write_out<T>(out: *mut T, value: T) -> Result<()> {
    if out.is_null() {
        return Err(null("the out-pointer"));
    }
    // SAFETY: non-NULL; the caller promises it points to writable storage for T.
    unsafe { out.write(value) };
    Ok(())
}

/// Fails early if an out-pointer is NULL (before any work is done).
pub(crate) fn check_out<T>(out: *mut T) -> Result<()> {
    if out.is_null() {
        Err(null("the out-pointer"))
    } else {
        Ok(())
    }
}

/// Boxes `value` and writes the handle to `out`.
pub(crate) fn box_out<C: Handle<Ownership = Boxed>>(
    out: *mut *mut C,
    value: C::Rust,
) -> Result<()> {
    check_out(out)?;
    write_out(out, Box::into_raw(Box::new(value)).cast::<C>())
}

/// Borrows the value behind a boxed handle.
pub(crate) fn box_ref<'a, C: Handle<Ownership = Boxed>>(h: *const C) -> Result<&'a C::Rust> {
    if h.is_null() {
        return Err(null(C::NAME));
    }
    // SAFETY: non-NULL handles come from `box_out` and live until `box_free`.
    Ok(unsafe { &*h.cast::<C::Rust>() })
}

/// Frees a boxed handle; NULL is a no-op.
pub(crate) fn box_free<C: Handle<Ownership = Boxed>>(h: *mut C) -> Option<Box<C::Rust>> {
    if h.is_null() {
        return None;
    }
    // SAFETY: the handle came from `box_out` and is released once.
    Some(unsafe { Box::from_raw(h.cast::<C::Rust>()) })
}

/// Wraps `value` in an `Arc` and writes the handle to `out`.
pub(crate) fn arc_out<C: Handle<Ownership = Shared>>(
    out: *mut *mut C,
    value: C::Rust,
) -> Result<()> {
    check_out(out)?;
    write_out(out, Arc::into_raw(Arc::new(value)).cast_mut().cast::<C>())
}

/// A new reference to the value behind an `Arc` handle, kept for the length of
/// a call, so that a `close` on another thread cannot free it under the call.
pub(crate) fn arc_clone<C: Handle<Ownership = Shared>>(h: *const C) -> Result<Arc<C::Rust>> {
    if h.is_null() {
        return Err(null(C::NAME));
    }
    let p = h.cast::<C::Rust>();
    // SAFETY: non-NULL handles come from `arc_out` and hold one strong count
    // until `arc_take`.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(Arc::from_raw(p))
    }
}

/// Takes back the reference an `Arc` handle holds; NULL gives `None`.
pub(crate) fn arc_take<C: Handle<Ownership = Shared>>(h: *mut C) -> Option<Arc<C::Rust>> {
    if h.is_null() {
        return None;
    }
    // SAFETY: the handle came from `arc_out` and is released once.
    Some(unsafe { Arc::from_raw(h.cast_const().cast::<C::Rust>()) })
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn str_in<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL; the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// `len` bytes at `p` (NULL is allowed only when `len` is 0).
pub(crate) fn slice_in<'a>(p: *const c_void, len: usize) -> Result<&'a [u8]> {
    if p.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(null("data")) };
    }
    // SAFETY: non-NULL; the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A writable buffer of `cap` bytes at `p` (non-NULL, `cap` > 0).
pub(crate) fn buf_out<'a>(p: *mut c_void, cap: usize) -> Result<&'a mut [u8]> {
    if p.is_null() {
        return Err(null("buf"));
    }
    if cap == 0 {
        return Err(Error::invalid("cap is 0"));
    }
    // SAFETY: non-NULL; the caller promises `cap` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), cap) })
}

/// Copies `s` and a NUL into `buf` (`cap` bytes). `JW_ERR_TOO_LARGE` when it
/// does not fit; then only an empty string is written.
pub(crate) fn str_out(buf: *mut c_char, cap: usize, s: &str) -> Result<jw_status> {
    let out = buf_out(buf.cast(), cap)?;
    if s.len() + 1 > cap {
        out[0] = 0;
        return Err(Error::TooLarge(format!(
            "the result needs {} bytes, buf has {cap}",
            s.len() + 1
        )));
    }
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    Ok(jw_status::JW_OK)
}

/// `timeout_ms`: -1 waits forever, 0 polls, N > 0 waits N ms.
pub(crate) fn timeout(ms: c_int) -> Result<Option<Duration>> {
    match ms {
        -1 => Ok(None),
        ms if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
        ms => Err(Error::invalid(format!(
            "timeout_ms is {ms}: use -1 (forever), 0 (poll) or a positive count"
        ))),
    }
}

/// `Ok(())` as `JW_OK`.
pub(crate) fn ok(r: Result<()>) -> Result<jw_status> {
    r.map(|()| jw_status::JW_OK)
}
