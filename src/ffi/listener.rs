//! `jw_listener`: a listening socket that forwards every connection.

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, boundary, boundary_void, box_ref, check_out, ok,
    slot_get, slot_out, slot_take, str_in, str_out, write_out,
};
use super::error::jw_status;
use super::network::jw_network;
use super::stream::jw_server_stats_t;
use crate::forward::Listener;
use std::ffi::c_char;

/// A listener that forwards each accepted connection to a new stream of its
/// target network, each on its own thread. Made by `jw_listen`, released
/// with `jw_listener_close`.
///
/// Threads: every call (`jw_listener_address`, `jw_listener_dbus_address`,
/// `jw_listener_connections`, `jw_listener_refused`, `jw_listener_stats`) may run on any thread,
/// at the same time as the others and as `jw_listener_close`; a call that
/// overlaps the close finishes safely. The handle names the listener rather
/// than pointing at its memory: once `jw_listener_close` has begun, every
/// call with it returns `JW_ERR_CLOSED` and a second close is a no-op; a
/// value that was never a listener handle is `JW_ERR_INVALID_ARGUMENT`.
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

/// Binds `listen_url` (`tcp://HOST:PORT[?max_connections=N]`, port 0 picks a
/// free port; `unix:/PATH`, `unix:@NAME`; or `ws://HOST:PORT[?OPTIONS]` for a
/// websocket bridge, options as for `jw_ws_serve`) and forwards every
/// accepted connection to a new stream of `target` (copied: `target` may be
/// freed afterwards). Writes the listener to `*out`.
///
/// At most `max_connections` (default 1024) are forwarded at once; one more
/// is reset (a bridge answers HTTP 503), logged and counted
/// (`jw_listener_refused`). A target that fails or cannot be reached resets
/// its client (a bridge sends close 1011), a client that resets resets the
/// target: a failure never reaches the other side as a clean end.
/// `JW_ERR_IO` if the address cannot be bound.
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
/// `tcp://[::1]:PORT`, `unix:/PATH`, `unix:@NAME`, `ws://127.0.0.1:PORT/`
/// for a bridge) into `buf` (`cap` bytes, NUL included). Thread-safe.
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
/// addresses require (`/tmp/a b` is written `/tmp/a%20b`). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_dbus_address(
    l: *const jw_listener,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, &slot_get(l)?.dbus_address()?))
}

/// Writes to `*out` how many forwarded connections are open now.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_connections(l: *const jw_listener, out: *mut u64) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, slot_get(l)?.connections() as u64)?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes to `*out` how many clients the listener has refused so far: over
/// `max_connections`, accepted while the process was out of descriptors, or
/// (a websocket bridge) whose handshake was refused. Each is logged too.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_refused(l: *const jw_listener, out: *mut u64) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, slot_get(l)?.refused())?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes the listener's counts to `*out`: connections accepted, open now
/// and refused so far, and the bytes relayed each way (`bytes_received`:
/// from clients to the target; `bytes_sent`: from the target back to
/// clients), counted as they move, open connections included. For a
/// websocket bridge the bytes are message payloads. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_stats(
    l: *const jw_listener,
    out: *mut jw_server_stats_t,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, jw_server_stats_t::from(slot_get(l)?.stats()))?;
        Ok(jw_status::JW_OK)
    })
}

/// Stops accepting, closes every forwarded connection, joins every thread and
/// frees the listener (a Unix socket file it created is removed). May run
/// while other threads are inside calls on the same listener; later calls
/// with `l` return `JW_ERR_CLOSED`. NULL or an already closed `l` is a no-op.
/// The target network given to `jw_listen` is not touched (the listener
/// kept a copy).
#[unsafe(no_mangle)]
pub extern "C" fn jw_listener_close(l: *mut jw_listener) {
    boundary_void(|| {
        if let Some(l) = slot_take(l) {
            l.close();
        }
    })
}
