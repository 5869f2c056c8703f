//! The panic boundary and the conversions every exported function uses: NULL
//! checks, handles, strings, buffers, timeouts and the thread's last error.
//! Exported functions contain no pointer casts and no `unsafe`; it all lives
//! here, except the calls into the host's own callbacks (`log.rs`, `ws.rs`).

use super::error::{jw_status, status_of};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};
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
/// Ownership kind of handles that name a slot of a [`Registry`] (live
/// objects whose calls may race their `_close` and that must stay safe to
/// name after it: servers, listeners, routers).
pub(crate) struct Slotted;

/// The live objects of one slotted handle type. A handle is not a pointer
/// to memory but the slot's index and generation packed into a pointer-sized
/// value; `_close` empties the slot and bumps its generation. So a call that
/// races `_close` on another thread holds its own `Arc` and finishes safely,
/// and a call made with the handle after `_close` (or with a value that was
/// never a handle) is refused with a status, never a use-after-free.
pub(crate) struct Registry<T> {
    slots: RwLock<Slots<T>>,
}

struct Slots<T> {
    entries: Vec<Slot<T>>,
    free: Vec<usize>,
}

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

/// What a slotted handle value names: (slot index, generation).
fn unpack(h: usize) -> Option<(usize, u32)> {
    let index = (h >> 32).checked_sub(1)?;
    Some((index, h as u32))
}

fn pack(index: usize, generation: u32) -> usize {
    ((index + 1) << 32) | generation as usize
}

// Handles pack a 32-bit slot index and a 32-bit generation.
const _: () = assert!(usize::BITS == 64, "slotted handles need 64-bit pointers");

impl<T> Registry<T> {
    /// An empty registry (for a `static`).
    pub(crate) const fn new() -> Registry<T> {
        Registry {
            slots: RwLock::new(Slots {
                entries: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn insert(&self, value: T) -> usize {
        let mut s = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let value = Some(Arc::new(value));
        let index = match s.free.pop() {
            Some(i) => {
                s.entries[i].value = value;
                i
            }
            None => {
                s.entries.push(Slot {
                    generation: 1,
                    value,
                });
                s.entries.len() - 1
            }
        };
        pack(index, s.entries[index].generation)
    }

    fn get(&self, h: usize, name: &str) -> Result<Arc<T>> {
        let s = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let slot = unpack(h).and_then(|(i, g)| Some((s.entries.get(i)?, g)));
        match slot {
            Some((slot, g)) if slot.generation == g => slot
                .value
                .clone()
                .ok_or_else(|| Error::Internal(format!("{name}: live slot without a value"))),
            Some((slot, g)) if g < slot.generation => {
                Err(Error::Closed(format!("the {name} handle was closed")))
            }
            _ => Err(Error::invalid(format!("not a {name} handle"))),
        }
    }

    fn take(&self, h: usize) -> Option<Arc<T>> {
        let mut s = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let (i, g) = unpack(h)?;
        let slot = s.entries.get_mut(i).filter(|slot| slot.generation == g)?;
        let value = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1).max(1);
        s.free.push(i);
        value
    }
}

/// A slotted handle type: where its live objects are registered.
pub(crate) trait SlotHandle: Handle<Ownership = Slotted, Rust: 'static> + Sized {
    /// The registry of this handle type's live objects.
    fn registry() -> &'static Registry<Self::Rust>;
}

/// Registers `value` and writes its handle to `out`.
pub(crate) fn slot_out<C: SlotHandle>(out: *mut *mut C, value: C::Rust) -> Result<()> {
    check_out(out)?;
    let h = C::registry().insert(value);
    write_out(out, std::ptr::without_provenance_mut(h))
}

/// The object a slotted handle names, kept alive for the length of a call
/// (a `_close` on another thread cannot free it under the call).
/// `JW_ERR_CLOSED` after `_close`, `JW_ERR_INVALID_ARGUMENT` for NULL or a
/// value that is not a handle of this type.
pub(crate) fn slot_get<C: SlotHandle>(h: *const C) -> Result<Arc<C::Rust>> {
    if h.is_null() {
        return Err(null(C::NAME));
    }
    C::registry().get(h.addr(), C::NAME)
}

/// Takes a slotted handle's object out of its registry (its `_close`); NULL,
/// a closed handle or a value that is not a handle gives `None`.
pub(crate) fn slot_take<C: SlotHandle>(h: *mut C) -> Option<Arc<C::Rust>> {
    C::registry().take(h.addr())
}

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
    write_out(out, arc_handle(Arc::new(value)))
}

/// A handle holding `value`'s reference, to be taken back with [`arc_take`].
pub(crate) fn arc_handle<C: Handle<Ownership = Shared>>(value: Arc<C::Rust>) -> *mut C {
    Arc::into_raw(value).cast_mut().cast::<C>()
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

#[cfg(test)]
mod tests {
    use super::*;

    struct jw_thing {
        _private: [u8; 0],
    }
    impl Handle for jw_thing {
        type Rust = String;
        type Ownership = Slotted;
        const NAME: &'static str = "thing";
    }
    impl SlotHandle for jw_thing {
        fn registry() -> &'static Registry<String> {
            static R: Registry<String> = Registry::new();
            &R
        }
    }

    fn make(s: &str) -> *mut jw_thing {
        let mut h = std::ptr::null_mut();
        slot_out(&mut h, s.to_string()).unwrap();
        h
    }

    #[test]
    fn a_slotted_handle_names_its_object_until_it_is_closed() {
        let a = make("a");
        let b = make("b");
        assert_ne!(a, b);
        assert_eq!(*slot_get(a).unwrap(), "a");
        // A call in progress keeps the object alive across the close.
        let held = slot_get(b).unwrap();
        assert_eq!(*slot_take(b).unwrap(), "b");
        assert_eq!(*held, "b");
        assert!(matches!(slot_get(b), Err(Error::Closed(_))));
        // A second close is a no-op.
        assert!(slot_take(b).is_none());
        // The slot is reused under a new generation: the old handle stays closed.
        let c = make("c");
        assert_eq!(*slot_get(c).unwrap(), "c");
        assert!(matches!(slot_get(b), Err(Error::Closed(_))));
        assert!(slot_take(b).is_none());
        assert_eq!(*slot_get(c).unwrap(), "c");
        assert!(slot_take(a).is_some() && slot_take(c).is_some());
    }

    #[test]
    fn values_that_are_not_handles_are_refused() {
        assert!(matches!(
            slot_get::<jw_thing>(std::ptr::null()),
            Err(Error::InvalidArgument(_))
        ));
        for v in [1usize, 0x1000, usize::MAX, 0xdead_0000_0001] {
            let h: *const jw_thing = std::ptr::without_provenance(v);
            assert!(
                matches!(slot_get(h), Err(Error::InvalidArgument(_))),
                "{v:#x}"
            );
            assert!(slot_take(h.cast_mut()).is_none());
        }
    }
}
