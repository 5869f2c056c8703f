//! The C API: every `extern "C"` item of jumpwire and nothing else. The header
//! `include/jumpwire.h` is generated from this module by cbindgen.
//!
//! Conventions (see `README.md`): names are `jw_<noun>_<verb>`; handles are
//! opaque; every fallible call returns a [`jw_status`] and writes results through
//! out-pointers, only on success; strings are NUL-terminated UTF-8; timeouts are
//! `int timeout_ms` (-1 forever, 0 poll). A NULL or malformed argument returns
//! `JW_ERR_INVALID_ARGUMENT`; no panic crosses the boundary (`JW_ERR_INTERNAL`);
//! `*_free` and `*_close` accept NULL. After a failure, `jw_last_error()` gives
//! its message on the same thread.

#![allow(non_camel_case_types)]

mod boundary;
mod error;
mod exporter;
mod listener;
mod log;
mod network;
mod router;
mod session;
mod stream;
mod ws;

pub use error::jw_status;
pub use listener::*;
pub use log::*;
pub use network::*;
pub use router::*;
pub use session::*;
pub use stream::*;
pub use ws::*;

use std::ffi::c_char;

/// This thread's last failure message ("" if there was none). The string is
/// owned by jumpwire and stays valid until the next failing jumpwire call on
/// the same thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn jw_last_error() -> *const c_char {
    boundary::last_error()
}

/// The library's version, "MAJOR.MINOR.PATCH" (static; never free it). Compare
/// with the `JW_VERSION` macros of the header you compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn jw_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

pub use error::jw_status_str;
