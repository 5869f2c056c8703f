//! `jw_set_log_callback`: the host receives the library's log lines.

use super::boundary::{boundary, ok};
use super::error::jw_status;
use crate::error::Error;
use crate::logging::{self, SetError};
use std::ffi::{CString, c_char, c_int, c_void};

/// Log levels, for `jw_set_log_callback` and its callback's `level`: the
/// `log` crate's levels, most severe first.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum jw_log_level {
    /// No lines (only as `jw_set_log_callback`'s `level`).
    JW_LOG_OFF = 0,
    /// Failures the library could not hide from the host.
    JW_LOG_ERROR = 1,
    /// Peers refused or dropped, data that could not be delivered.
    JW_LOG_WARN = 2,
    /// Listening, connections and refusals as they happen.
    JW_LOG_INFO = 3,
    /// Each step of a connection.
    JW_LOG_DEBUG = 4,
    /// Everything, dependencies included.
    JW_LOG_TRACE = 5,
}

/// A log callback: `level` is a `jw_log_level` (1 error ... 5 trace),
/// `target` the module that logged (e.g. `jumpwire::router::server`),
/// `message` the line; both strings are valid only during the call. `user`
/// is the pointer given to `jw_set_log_callback`.
///
/// Threads: the callback runs on whichever thread logs, several at once, so
/// it and `user` must be safe to use from any thread. There is one
/// registration per process: `jw_set_log_callback` may be called from any
/// thread, at any time (except from inside the callback), and returns once
/// the calls of the callback it replaces have returned on every thread; the
/// previous `user` may be freed then.
pub type jw_log_fn = Option<
    unsafe extern "C" fn(
        level: c_int,
        target: *const c_char,
        message: *const c_char,
        user: *mut c_void,
    ),
>;

/// The host's function and pointer, called from any thread.
struct HostFn {
    f: unsafe extern "C" fn(c_int, *const c_char, *const c_char, *mut c_void),
    user: *mut c_void,
}

// SAFETY: the host promises, by calling `jw_set_log_callback`, that `f` may
// be called with `user` from any thread at any time (documented there).
unsafe impl Send for HostFn {}
// SAFETY: as above; the library only passes `user` back.
unsafe impl Sync for HostFn {}

impl HostFn {
    fn call(&self, level: i32, target: &str, message: &str) {
        let (t, m) = (c_text(target), c_text(message));
        // SAFETY: the host gave this function and pointer for exactly this;
        // the strings live until it returns.
        unsafe { (self.f)(level, t.as_ptr(), m.as_ptr(), self.user) }
    }
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Sends each log line at `level` or more severe (a `jw_log_level`;
/// `JW_LOG_OFF` for none) to `callback(level, target, message, user)`
/// instead of stderr. A NULL `callback` goes back to the default: lines on
/// stderr at the level the `JW_LOG` environment variable names (`error`,
/// `warn`, `info`, `debug`, `trace`), silent when it is unset.
///
/// The callback runs on whichever thread logs, the library's own threads and
/// the host's inside jumpwire calls, possibly on several at once, so it must
/// be thread-safe and should return quickly. It may call jumpwire functions
/// (lines they log while it runs on that thread are dropped, never passed to
/// it again), except `jw_set_log_callback`, which then fails with
/// `JW_ERR_INVALID_ARGUMENT`. Safe to call from any thread: it returns once
/// calls of the previous callback in progress on other threads have returned,
/// so the previous `user` may be freed after it.
///
/// `JW_ERR_INVALID_ARGUMENT` for a `level` outside 0..5; `JW_ERR_UNSUPPORTED`
/// in a Rust host that installed a `log` logger of its own.
#[unsafe(no_mangle)]
pub extern "C" fn jw_set_log_callback(
    callback: jw_log_fn,
    user: *mut c_void,
    level: c_int,
) -> jw_status {
    boundary(|| {
        let filter = logging::filter_of(level).ok_or_else(|| {
            Error::invalid(format!(
                "level is {level}: use a jw_log_level, 0 (off) to 5 (trace)"
            ))
        })?;
        let sink = callback.map(|f| {
            let host = HostFn { f, user };
            let call =
                move |level: i32, target: &str, message: &str| host.call(level, target, message);
            (Box::new(call) as Box<logging::Callback>, filter)
        });
        ok(logging::set_callback(sink).map_err(|e| match e {
            SetError::FromCallback => {
                Error::invalid("jw_set_log_callback was called from inside the log callback")
            }
            SetError::OtherLogger => {
                Error::Unsupported("the host installed a log logger of its own".into())
            }
        }))
    })
}
