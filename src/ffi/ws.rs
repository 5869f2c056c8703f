//! Websocket calls: on `jw_stream`, the server handshake and the request
//! path; `jw_ws_server`, the websocket server with its handler and
//! broadcasts.

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, arc_clone, arc_handle, arc_out, arc_take, boundary,
    boundary_void, check_out, ok, slice_in, slot_get, slot_out, slot_take, str_in, str_out,
    timeout, write_out,
};
use super::error::jw_status;
use super::stream::{jw_server_stats_t, jw_stream};
use crate::error::Error;
use crate::stream::Stream;
use crate::util::deadline;
use crate::websocket::{Limits, Server, accept_shared};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

/// Turns `raw` (a byte stream from a websocket client: an accepted TCP
/// connection, a stream that came through the router) into a websocket server
/// connection: reads the client's upgrade request (waiting at most
/// `timeout_ms`) and answers it. Afterwards each `jw_stream_send` on `*out` is
/// one binary message, receives return message payloads (text as its UTF-8
/// bytes), pings and close frames are answered, and a close frame from the
/// client is `JW_EOF` when its code is 1000, 1001 or absent, and
/// `JW_ERR_CONNECTION` (naming the code and reason) for any other code.
/// Messages and frames over 16 MiB are refused (close 1009). The `binary`
/// subprotocol is answered when the client offers it.
///
/// `JW_ERR_INVALID_ARGUMENT` (NULL `raw` or `out`, a negative `timeout_ms`
/// other than -1) leaves `raw` untouched and still the caller's. Otherwise
/// `raw` is taken (do not use or close it afterwards): on failure it is closed
/// (a request that is not a websocket upgrade is answered with HTTP 400 first)
/// and `JW_ERR_PROTOCOL`, `JW_TIMEOUT` or `JW_ERR_CONNECTION` is returned.
/// Thread-safe; the new stream follows `jw_stream`'s rules.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_accept(
    raw: *mut jw_stream,
    timeout_ms: c_int,
    out: *mut *mut jw_stream,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        if raw.is_null() {
            return Err(Error::invalid("raw is NULL"));
        }
        let t = timeout(timeout_ms)?;
        let raw = arc_take(raw).ok_or_else(|| Error::invalid("raw is NULL"))?;
        let (ws, _) = accept_shared(raw, deadline(t), Limits::default())?;
        arc_out(out, ws)?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes the request path (with its query, e.g. `/chat?room=1`) that the
/// client of a websocket server connection asked for into `buf` (`cap` bytes,
/// NUL included): for streams made by `jw_ws_accept` and those passed to a
/// `jw_ws_serve` handler. `JW_ERR_UNSUPPORTED` for any other stream,
/// `JW_ERR_TOO_LARGE` if `cap` is too small. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_path(s: *const jw_stream, buf: *mut c_char, cap: usize) -> jw_status {
    boundary(|| {
        let s = arc_clone(s)?;
        let Some(path) = crate::websocket::request_path(&s) else {
            return Err(Error::Unsupported(format!(
                "{}: not a websocket server connection",
                s.name()
            )));
        };
        str_out(buf, cap, path)
    })
}

/// A websocket server made by `jw_ws_serve`. Release with
/// `jw_ws_server_close`.
///
/// Threads: every call (`jw_ws_broadcast`, `jw_ws_server_address`,
/// `jw_ws_server_dropped`, `jw_ws_server_refused`, `jw_ws_server_stats`) may run on any thread,
/// handlers included, at the same time as the others and as
/// `jw_ws_server_close`. A call that overlaps the close finishes
/// safely (`jw_ws_broadcast` then returns `JW_OK` or `JW_ERR_CLOSED`). The
/// handle names the server rather than pointing at its memory: once
/// `jw_ws_server_close` has begun, every call with it returns `JW_ERR_CLOSED`
/// and a second close is a no-op; a value that was never a server handle is
/// `JW_ERR_INVALID_ARGUMENT`. Only `jw_ws_server_close` itself must not run
/// on a handler's thread (it waits for every handler to return).
pub struct jw_ws_server {
    _private: [u8; 0],
}

impl Handle for jw_ws_server {
    type Rust = Server;
    type Ownership = Slotted;
    const NAME: &'static str = "ws_server";
}

impl SlotHandle for jw_ws_server {
    fn registry() -> &'static Registry<Server> {
        static SERVERS: Registry<Server> = Registry::new();
        &SERVERS
    }
}

/// Called on each connection's own thread with a stream for the connection
/// (one send = one binary message; receives return message payloads; a close
/// frame from the client is `JW_EOF` with code 1000, 1001 or none, and
/// `JW_ERR_CONNECTION` with any other) and the `user` pointer given to
/// `jw_ws_serve`. `conn` belongs to the server: use it until the handler
/// returns, and do not pass it to `jw_stream_close` (the server closes the
/// connection, with a close frame, when the handler returns). The handler must
/// return once `conn` is closed (its calls then return `JW_ERR_CLOSED`).
///
/// Threads: handlers of different connections run at the same time, each on
/// its connection's thread. `conn` follows `jw_stream`'s rules and may be
/// handed to other threads (one receives while another sends, say), but
/// every call with it must have returned before the handler does: after
/// that, `conn` is dangling.
pub type jw_ws_handler = Option<unsafe extern "C" fn(conn: *mut jw_stream, user: *mut c_void)>;

/// The handler and its user pointer, moved to connection threads.
struct CHandler {
    f: unsafe extern "C" fn(*mut jw_stream, *mut c_void),
    user: *mut c_void,
}

// SAFETY: the C caller of `jw_ws_serve` promises that `handler` may run on
// any thread with `user` (documented there); we only pass the pointer on.
unsafe impl Send for CHandler {}
// SAFETY: as above: the handler is called concurrently from many threads.
unsafe impl Sync for CHandler {}

/// Binds `listen_url` (`ws://HOST:PORT[/PATH][?OPTIONS]`, port 0 picks a free
/// port; options `max_message`, `max_frame` (bytes, default 16 MiB each),
/// `max_connections` (connections served at once, default 1024; more are
/// refused with HTTP 503), `max_handshakes` (connections in their handshake at
/// once, counted apart, default 64; one more ends the oldest),
/// `handshake_timeout_ms` (default 10000), `queue` (broadcast messages queued
/// per connection, default 1024), `protocols` (subprotocols answered, e.g.
/// `binary,base64`: the first of the client's offers in the list is answered,
/// none if none is; default `binary`, as every message the server sends is
/// binary; `protocols=` answers none), `origins` (allowed `Origin` values,
/// e.g. `https://a.example,http://b:8080`; others, and requests without one,
/// are refused with HTTP 403; default: any)) and
/// serves every websocket client: after its handshake, `handler(conn, user)`
/// runs on the connection's own thread (see `jw_ws_handler`). Writes the
/// server to `*out`. `handler` runs concurrently on many threads, so `user`
/// must be safe to use from them. NULL `listen_url`, `handler` or `out`:
/// `JW_ERR_INVALID_ARGUMENT`; `JW_ERR_IO` if the address cannot be bound.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_serve(
    listen_url: *const c_char,
    handler: jw_ws_handler,
    user: *mut c_void,
    out: *mut *mut jw_ws_server,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(listen_url, "listen_url")?;
        let f = handler.ok_or_else(|| Error::invalid("handler is NULL"))?;
        let h = CHandler { f, user };
        let server = Server::serve(url, move |conn: &Arc<Stream>| {
            let h = &h;
            // A handle holding one more reference to the connection, taken
            // back when the handler returns.
            let ptr = arc_handle::<jw_stream>(conn.clone());
            // SAFETY: the host gave `f` and `user` to `jw_ws_serve` to be
            // called this way, on any connection thread (documented there);
            // `ptr` is a live stream handle until `arc_take` below.
            unsafe { (h.f)(ptr, h.user) };
            drop(arc_take(ptr));
        })?;
        ok(slot_out(out, server))
    })
}

/// Writes the bound address with the real port (`ws://127.0.0.1:PORT/`) into
/// `buf` (`cap` bytes, NUL included). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_server_address(
    w: *const jw_ws_server,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, slot_get(w)?.address()))
}

/// Queues `len` bytes of `data` as one binary message to every open
/// connection and returns at once; each connection's own thread sends it. A
/// connection whose queue is full (a client that does not keep up) is dropped
/// with close code 1008; that is counted (`jw_ws_server_dropped`) and logged.
/// `data` may be NULL only when `len` is 0. `JW_ERR_CLOSED` once the server is
/// closing. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_broadcast(
    w: *mut jw_ws_server,
    data: *const c_void,
    len: usize,
) -> jw_status {
    boundary(|| {
        let w = slot_get(w.cast_const())?;
        let data = slice_in(data, len)?;
        w.broadcast(data).map(|_| jw_status::JW_OK)
    })
}

/// Writes to `*out` how many clients have been dropped because they could not
/// keep up with broadcasts. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_server_dropped(w: *const jw_ws_server, out: *mut u64) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, slot_get(w)?.dropped())?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes to `*out` how many clients have been refused (HTTP 503) because
/// the listen URL's `max_connections` were served, when they came or when
/// their handshake finished. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_server_refused(w: *const jw_ws_server, out: *mut u64) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, slot_get(w)?.refused())?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes the server's counts to `*out`: connections accepted (handshakes
/// begun), served now (handshake done, handler running) and refused so
/// far, and the message payload bytes received from clients and sent to
/// them (by handlers and by `jw_ws_broadcast`), counted as they move.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_server_stats(
    w: *const jw_ws_server,
    out: *mut jw_server_stats_t,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, jw_server_stats_t::from(slot_get(w)?.stats()))?;
        Ok(jw_status::JW_OK)
    })
}

/// Stops accepting, closes every connection with a close frame (1001; the
/// frames may take 50 ms in all, then every connection is cut, which wakes
/// handlers blocked on a client that does not read), waits for every
/// handler to return, joins every thread and frees the server. Do
/// not call it from a handler. May run while other threads are inside calls
/// on the same server (they return `JW_ERR_CLOSED` or finish); later calls
/// with `w` return `JW_ERR_CLOSED`. NULL or an already closed `w` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn jw_ws_server_close(w: *mut jw_ws_server) {
    boundary_void(|| {
        if let Some(w) = slot_take(w) {
            w.close();
        }
    })
}
