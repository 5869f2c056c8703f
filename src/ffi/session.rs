//! `jw_session`: jumpwire networks served as a Jumpstarter exporter session.

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, boundary, boundary_void, box_ref, check_out, ok,
    slot_get, slot_out, slot_take, str_in, str_out,
};
use super::error::jw_status;
use super::network::jw_network;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::session::{Exported, Session};
use std::ffi::c_char;
use std::sync::Arc;

/// A Jumpstarter exporter session serving networks as upstream network
/// drivers (what `jmp shell` and upstream's Python client use through
/// `JUMPSTARTER_HOST`). Made by `jw_session_serve`, released with
/// `jw_session_close`.
///
/// Threads: `jw_session_address` may run on any thread, at the same time as
/// others and as `jw_session_close`; a call that overlaps the close finishes
/// safely. The handle names the session rather than pointing at its memory:
/// once `jw_session_close` has begun, every call with it returns
/// `JW_ERR_CLOSED` and a second close is a no-op; a value that was never a
/// session handle is `JW_ERR_INVALID_ARGUMENT`. `jw_session_close` must not
/// be called from a jumpwire callback (the log callback): it joins the
/// session's threads.
pub struct jw_session {
    _private: [u8; 0],
}

impl Handle for jw_session {
    type Rust = Session;
    type Ownership = Slotted;
    const NAME: &'static str = "session";
}

impl SlotHandle for jw_session {
    fn registry() -> &'static Registry<Session> {
        static SESSIONS: Registry<Session> = Registry::new();
        &SESSIONS
    }
}

/// `count` pointers at `p` (NULL only when `count` is 0).
fn array_in<'a, T>(p: *const *const T, count: usize, what: &str) -> Result<&'a [*const T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL (and count is {count})"
        )));
    }
    // SAFETY: non-NULL; the caller promises `count` readable pointers.
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}

/// Serves `count` networks as a Jumpstarter exporter session on
/// `listen_url` and writes the session to `*out`. `listen_url` is
/// `unix:/PATH` (the socket `JUMPSTARTER_HOST` then names: set it to
/// `/PATH`; `unix:@NAME` for an abstract socket) or `tcp://HOST:PORT`
/// (port 0 picks a free one; plaintext HTTP/2: upstream's client needs
/// `JMP_GRPC_INSECURE=1` and `JUMPSTARTER_HOST=HOST:PORT`).
///
/// `networks[i]` becomes a child driver named `names[i]` of a composite
/// root, as upstream's exporter configuration's children: upstream's
/// client sees an upstream `NetworkClient` (a `dbus:system` or
/// `dbus:session` network: `DbusNetworkClient`) and `jmp shell` shows it
/// by that name. Its `address` call answers the network's address for TCP,
/// UDP and websocket networks (upstream's error for
/// `enable_address=false`; `NOT_FOUND` for the others, as upstream's Unix,
/// vsock, D-Bus and echo drivers have no address); each of its streams
/// (`connect`) is a new stream of the network (connected within 30 s),
/// relayed both ways with half-close until both directions ended. The
/// session copies the names and the networks: the caller may free them
/// afterwards.
///
/// `JW_ERR_INVALID_ARGUMENT` for a NULL `listen_url` or `out`, a NULL
/// `names` or `networks` with `count` > 0, a NULL, empty or duplicate
/// name, a NULL network, or a URL that is not `unix:` or `tcp://`;
/// `JW_ERR_IO` if the address cannot be bound (a socket path that exists).
#[unsafe(no_mangle)]
pub extern "C" fn jw_session_serve(
    listen_url: *const c_char,
    names: *const *const c_char,
    networks: *const *const jw_network,
    count: usize,
    out: *mut *mut jw_session,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(listen_url, "listen_url")?;
        let names = array_in(names, count, "names")?;
        let networks = array_in(networks, count, "networks")?;
        let mut drivers: Vec<(String, Arc<dyn Exported>)> = Vec::with_capacity(count);
        for (i, (&name, &net)) in names.iter().zip(networks).enumerate() {
            let name = str_in(name, &format!("names[{i}]"))?;
            if net.is_null() {
                return Err(Error::invalid(format!("networks[{i}] is NULL")));
            }
            let net: &Network = box_ref(net)?;
            drivers.push((name.to_owned(), Arc::new(net.clone())));
        }
        ok(slot_out(out, Session::serve(url, drivers)?))
    })
}

/// Writes the address the session listens on, with the real port
/// (`unix:/PATH`, `unix:@NAME`, `tcp://127.0.0.1:PORT`, `tcp://[::1]:PORT`),
/// into `buf` (`cap` bytes, NUL included). `JUMPSTARTER_HOST` takes it
/// without its scheme: `/PATH`, or `127.0.0.1:PORT`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_session_address(
    s: *const jw_session,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, slot_get(s)?.address()))
}

/// Stops the session and frees it: accepting stops, every open driver
/// stream ends (its client sees `UNAVAILABLE`, its target is closed), the
/// connections close (within 3 s), every thread of the session is joined
/// (a target's connect still running is waited for, at most 30 s), and a
/// Unix socket file it created is removed. May run while other threads
/// are inside calls on the same session; later calls with `s` return
/// `JW_ERR_CLOSED`. NULL or an already closed `s` is a no-op. The networks
/// given to `jw_session_serve` are not touched (the session kept copies).
#[unsafe(no_mangle)]
pub extern "C" fn jw_session_close(s: *mut jw_session) {
    boundary_void(|| {
        if let Some(s) = slot_take(s) {
            s.close();
        }
    })
}
