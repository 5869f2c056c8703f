//! `jw_stream`: a live bidirectional stream.

use super::boundary::{
    Handle, Shared, arc_clone, arc_take, boundary, boundary_void, buf_out, check_out, ok, slice_in,
    timeout, write_out,
};
use super::error::jw_status;
use crate::stream::Stream;
use std::ffi::{c_int, c_void};

/// A bidirectional byte or message stream, made by `jw_connect`,
/// `jw_network_connect`, `jw_router_connect` or `jw_ws_accept`; a
/// `jw_ws_serve` handler is lent one that belongs to the server. Release it
/// with `jw_stream_close` exactly once.
///
/// Threads: a stream may be used from any thread, and from several at once.
/// One thread may send (`jw_stream_send`, `jw_stream_send_eof`) while another
/// receives; sends from several threads are serialised, each waiting at most
/// its own timeout, and so are receives; `jw_stream_stats` and `jw_ws_path`
/// may run beside any call. While `jw_forward` moves a stream's bytes, other
/// sends and receives on it are safe but mix their bytes with the forward's
/// unpredictably; `jw_stream_close` ends the forward (`JW_ERR_CLOSED`).
///
/// `jw_stream_close` may run while other threads are inside calls on the
/// stream: those calls wake and return `JW_ERR_CLOSED`, and the stream's
/// memory lasts until they have returned. But unlike the `jw_ws_server`,
/// `jw_listener` and `jw_router` handles, a `jw_stream *` points at the
/// stream's memory: a call with it that starts once `jw_stream_close` has
/// been called, or a second close, is a use-after-free. A host that closes a
/// stream under another thread's call must make sure that call is already
/// under way and that the thread makes no further call with the stream (it
/// can stop at `JW_ERR_CLOSED`).
pub struct jw_stream {
    _private: [u8; 0],
}

impl Handle for jw_stream {
    type Rust = Stream;
    type Ownership = Shared;
    const NAME: &'static str = "stream";
}

// Several threads use one stream at once (each call holds an `Arc<Stream>`):
// it must be `Send + Sync`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Stream>();
};

/// Sends all `len` bytes of `data` (on UDP one datagram, on a websocket one
/// message), waiting at most `timeout_ms`. Either everything is accepted
/// (`JW_OK`) or nothing is (`JW_TIMEOUT`: the stream is unchanged, send again).
/// `JW_ERR_CLOSED` after `jw_stream_send_eof`; `JW_ERR_TOO_LARGE` for a
/// datagram over 65507 bytes; `JW_ERR_CONNECTION` if the peer is gone.
/// `data` may be NULL only when `len` is 0.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_send(
    s: *mut jw_stream,
    data: *const c_void,
    len: usize,
    timeout_ms: c_int,
) -> jw_status {
    boundary(|| {
        let s = arc_clone(s)?;
        let data = slice_in(data, len)?;
        ok(s.send(data, timeout(timeout_ms)?))
    })
}

/// Receives the next bytes into `buf` (`cap` > 0 bytes) and writes their count
/// to `*out_len`, waiting at most `timeout_ms`. Never returns bytes of two
/// messages at once; a message larger than `cap` comes out over several calls.
/// Returns `JW_OK` (`*out_len` may be 0 only for an empty datagram or message),
/// `JW_EOF` once the peer has finished and everything before was delivered,
/// `JW_TIMEOUT` when nothing arrived in time (nothing consumed), or an error.
/// If `jw_stream_close` is called on another thread meanwhile, this returns
/// `JW_ERR_CLOSED`.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_receive(
    s: *mut jw_stream,
    buf: *mut c_void,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: c_int,
) -> jw_status {
    boundary(|| {
        let s = arc_clone(s)?;
        let buf = buf_out(buf, cap)?;
        super::boundary::check_out(out_len)?;
        match s.receive(buf, timeout(timeout_ms)?)? {
            Some(n) => {
                write_out(out_len, n)?;
                Ok(jw_status::JW_OK)
            }
            None => {
                write_out(out_len, 0)?;
                Ok(jw_status::JW_EOF)
            }
        }
    })
}

/// Half-closes the stream: the peer sees end of stream once it has read what
/// was sent before (TCP, Unix, vsock and D-Bus `shutdown(SHUT_WR)`; a router
/// stream's GOAWAY and the end of its request stream; echo EOF). Receiving
/// goes on; later sends return `JW_ERR_CLOSED`. On UDP and websocket streams
/// it is a no-op, as upstream: nothing is sent and sends still work.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_send_eof(s: *mut jw_stream) -> jw_status {
    boundary(|| ok(arc_clone(s)?.send_eof()))
}

/// Waits at most `timeout_ms` until what earlier sends accepted has left the
/// library. A send whose timeout passed after part of its data went out is
/// accepted (`JW_OK`), and the library writes the rest in the background.
/// Returns `JW_OK` once all of it was handed to the operating system (a
/// router stream: to its HTTP/2 connection), `JW_TIMEOUT` while it is still
/// on its way (call again), or the error that ended the background write
/// (`JW_ERR_CONNECTION`, `JW_ERR_IO`): not all of it went. `jw_stream_close`
/// gives such data a short grace (2 s) and cannot report how that went:
/// call this first where it matters. `JW_ERR_CLOSED` after `jw_stream_close`
/// on another thread. May run beside `jw_stream_send` and
/// `jw_stream_receive` on other threads.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_flush(s: *mut jw_stream, timeout_ms: c_int) -> jw_status {
    boundary(|| {
        let s = arc_clone(s)?;
        ok(s.flush(timeout(timeout_ms)?))
    })
}

/// What a stream has carried so far, as `jw_stream_stats` reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct jw_stream_stats_t {
    /// Bytes accepted by sends (and moved into the stream by `jw_forward`
    /// or a `jw_listen` forward).
    pub bytes_sent: u64,
    /// Bytes delivered by receives (and moved out of it by a forward).
    pub bytes_received: u64,
    /// Successful sends (messages, on message transports).
    pub messages_sent: u64,
    /// Receives that delivered data.
    pub messages_received: u64,
}

/// What a server has done so far, as `jw_listener_stats`,
/// `jw_ws_server_stats` and `jw_router_stats` report it (for a router,
/// "connections" are its calls).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct jw_server_stats_t {
    /// Connections taken so far (refused ones are not counted here).
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections refused so far (each is logged too).
    pub refused: u64,
    /// Payload bytes received from the server's clients (for a forward:
    /// passed on to the target), by open and ended connections.
    pub bytes_received: u64,
    /// Payload bytes sent to the server's clients.
    pub bytes_sent: u64,
}

impl From<crate::stream::ServerStats> for jw_server_stats_t {
    fn from(s: crate::stream::ServerStats) -> jw_server_stats_t {
        jw_server_stats_t {
            accepted: s.accepted,
            active: s.active,
            refused: s.refused,
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
        }
    }
}

/// Writes what `s` has carried so far to `*out`: counts since the stream was
/// opened, read without stopping other calls. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_stats(s: *const jw_stream, out: *mut jw_stream_stats_t) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let st = arc_clone(s)?.stats();
        write_out(
            out,
            jw_stream_stats_t {
                bytes_sent: st.bytes_sent,
                bytes_received: st.bytes_received,
                messages_sent: st.messages_sent,
                messages_received: st.messages_received,
            },
        )?;
        Ok(jw_status::JW_OK)
    })
}

/// Closes the stream gracefully (a websocket close frame, a router GOAWAY, a
/// TCP FIN) and frees it. A call blocked on `s` in another thread wakes
/// and returns `JW_ERR_CLOSED`; when this returns, no thread of the stream
/// remains. `s` must not be used afterwards, nor closed again (see
/// `jw_stream` for what may overlap the close). NULL is a no-op.
///
/// What an earlier send accepted is given a short grace (2 s) to go out.
/// A router stream's close also gives a peer whose call is still up that
/// grace to end its direction (an exporter's does once its target ends), so
/// that it gets everything and sees a clean end; a peer that is gone, or a
/// call that failed, ends the close at once.
#[unsafe(no_mangle)]
pub extern "C" fn jw_stream_close(s: *mut jw_stream) {
    boundary_void(|| {
        if let Some(s) = arc_take(s) {
            s.close();
        }
    })
}

/// Copies `a -> b` and `b -> a` until both directions have ended, propagating
/// half-close (when one side ends, the other's sending direction is closed).
/// Blocks the calling thread meanwhile. Between two byte-stream sockets (TCP,
/// Unix, vsock, D-Bus) both directions run on the calling thread (one
/// `poll(2)` loop, bulk data moved with `splice(2)`); so do both between a
/// socket and a router or `jumpstarter:` stream (on that stream's own
/// runtime); between any other streams the second direction runs on one
/// more thread. Returns `JW_OK` when both directions ended normally, or the
/// first error, after which the other direction is stopped too and the
/// other stream is reset: a TCP peer gets a reset (RST, not a clean end)
/// once that stream is closed, and its calls return `JW_ERR_CLOSED` until
/// then; a router stream's peer gets an error, not an end of stream.
/// Borrows both streams: close them afterwards. The bytes it moved each way
/// are in the streams' counts (`jw_stream_stats`), also while it runs:
/// `bytes_sent` of `b` is what went `a -> b`, `bytes_sent` of `a` what went
/// `b -> a`.
#[unsafe(no_mangle)]
pub extern "C" fn jw_forward(a: *mut jw_stream, b: *mut jw_stream) -> jw_status {
    boundary(|| {
        let a = arc_clone(a)?;
        let b = arc_clone(b)?;
        ok(crate::forward::forward(&a, &b))
    })
}
