//! `jw_listener`: a listening socket that forwards every connection.

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, boundary, boundary_void, box_ref, check_out, ok,
    slot_get, slot_out, slot_take, str_in, str_out,
};
use super::error::jw_status;
use super::network::jw_network;
use crate::forward::Listener;
use std::ffi::c_char;

/// A listener that forwards each accepted connection to a new stream of its
/// target network, each on its own thread. Release with `jw_listener_close`.
///
/// Threads: every call may run on any thread, at the same time as the others
/// and as `jw_listener_close`; a call that overlaps the close finishes
/// safely. The handle names the listener rather than pointing at its memory:
/// once `jw_listener_close` has begun, every call with it returns
/// `JW_ERR_CLOSED` and a second close is a no-op.
pub struct jw_listener {
    _private: [u8; 0],
}

impl Handle for jw_listener {
    type Rust = Listener;
    type Ownership = Slotted;
    const NAME: &'static str = "listener";
}

impl SlotHandle for jw_listener {
    fn registry() -> &'static Registry<Listener> {
        static LISTENERS: Registry<Listener> = Registry::new();
        &LISTENERS
    }
}

/// Binds `listen_url` (`tcp://HOST:PORT`, port 0 picks a free port, or
/// `unix:/PATH`, `unix:@NAME`) and forwards every accepted connection to a new
/// stream of `target` (copied: `target` may be freed afterwards). Writes the
/// listener to `*out`. `JW_ERR_IO` if the address cannot be bound.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listen(
    listen_url: *const c_char,
    target: *const jw_network,
    out: *mut *mut jw_listener,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(listen_url, "listen_url")?;
        let target = box_ref(target)?;
        ok(slot_out(out, Listener::bind(url, target)?))
    })
}

/// Writes the bound address with the real port (`tcp://127.0.0.1:PORT`,
/// `tcp://[::1]:PORT`, `unix:/PATH`) into `buf` (`cap` bytes, NUL included).
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_address(
    l: *const jw_listener,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, slot_get(l)?.address()))
}

/// Writes the listener's address as a D-Bus address into `buf` (`cap` bytes,
/// NUL included): what a D-Bus client puts in `DBUS_SESSION_BUS_ADDRESS` (or
/// passes to `dbus-send --bus=`) to reach a bus forwarded by this listener:
/// `unix:path=/PATH`, `unix:abstract=NAME`, `tcp:host=127.0.0.1,port=PORT`
/// or `tcp:host=%3a%3a1,port=PORT,family=ipv6`. Values are escaped as D-Bus
/// addresses require (`/tmp/a b` is written `/tmp/a%20b`).
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_dbus_address(
    l: *const jw_listener,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, &slot_get(l)?.dbus_address()?))
}

/// Stops accepting, closes every forwarded connection, joins every thread and
/// frees the listener (a Unix socket file it created is removed). May run
/// while other threads are inside calls on the same listener; later calls
/// with `l` return `JW_ERR_CLOSED`. NULL or an already closed `l` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_close(l: *mut jw_listener) {
    boundary_void(|| {
        if let Some(l) = slot_take(l) {
            l.close();
        }
    })
}
