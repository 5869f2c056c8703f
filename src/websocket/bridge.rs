//! The websocket bridge: a `ws://` listener's client on one side, a stream
//! of the target network on the other, bytes going both ways as binary
//! messages, and each side's end reaching the other as a websocket close or
//! a half-close.

use super::Ws;
use crate::error::{Error, Result};
use crate::relay::{CANCEL_CHECK, FORWARD_CHUNK, both_ways};
use crate::stream::Stream;
use crate::util::lock;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;

/// How long the bridge waits, once one side has ended, for the other to
/// finish: the client's answer to our close frame, or the target's EOF after
/// the client closed.
const BRIDGE_LINGER: Duration = Duration::from_secs(2);

/// How long the bridge's close frame after a target failure may wait for
/// room to send.
const BRIDGE_CLOSE_SEND: Duration = Duration::from_millis(500);

/// When a bridge's two directions must have finished (once one side ended).
struct Ending(Mutex<Option<Instant>>);

impl Ending {
    /// Starts the countdown (if not started).
    fn start(&self) {
        lock(&self.0).get_or_insert_with(|| Instant::now() + BRIDGE_LINGER);
    }

    /// Ends both directions now.
    fn now(&self) {
        *lock(&self.0) = Some(Instant::now());
    }

    /// The next wake-up: a short wait, or the end of the countdown. `None`
    /// once the countdown is over.
    fn next(&self) -> Option<Instant> {
        let soon = Instant::now() + CANCEL_CHECK;
        match *lock(&self.0) {
            None => Some(soon),
            Some(end) if end <= Instant::now() => None,
            Some(end) => Some(end.min(soon)),
        }
    }
}

/// The websocket bridge between a websocket client (`ws`, with its
/// connection `wsh`) and the target stream. Bytes go both ways as in
/// [`forward`](crate::relay::forward), and each side's end reaches the other:
/// - the target's EOF becomes a close frame with 1000 after every byte before
///   it; the client's answering close half-closes the target;
/// - a target failure (a reset, a failed send) becomes a close frame with
///   1011 and the client is cut off at once: nothing it sends afterwards is
///   taken (its later sends fail), as none of it could reach the target;
/// - the client's close half-closes the target after every byte before it;
///   what the target still sends cannot reach the client any more and is
///   discarded until the target's EOF (at most [`BRIDGE_LINGER`]).
pub(crate) fn bridge(ws: &Stream, wsh: &Ws, target: &Stream) -> Result<()> {
    let ending = Ending(std::sync::Mutex::new(None));
    let (r1, r2) = both_ways(
        ("jw-bridge", "bridge"),
        || client_to_target(ws, wsh, target, &ending),
        || target_to_client(target, ws, wsh, &ending),
    );
    r1.and(r2)
}

/// The client's messages to the target, then the target's half-close.
fn client_to_target(ws: &Stream, wsh: &Ws, target: &Stream, ending: &Ending) -> Result<()> {
    let mut buf = vec![0u8; FORWARD_CHUNK];
    loop {
        let Some(until) = ending.next() else {
            return Ok(());
        };
        match ws.receive_until(&mut buf, Some(until)) {
            Ok(Some(n)) => loop {
                let Some(until) = ending.next() else {
                    return Ok(());
                };
                match target.send_until(&buf[..n], Some(until)) {
                    Ok(()) => break,
                    Err(Error::Timeout) => {}
                    Err(e) => {
                        // The target failed: closing it wakes the other
                        // direction.
                        target_failed(target, ws, wsh, &e);
                        ending.now();
                        target.close();
                        return Err(e);
                    }
                }
            },
            Ok(None) => {
                // The client closed (or answered our close): every byte it
                // sent is with the target now.
                match target.send_eof() {
                    Ok(()) | Err(Error::Closed(_)) => {}
                    Err(e) => log::debug!("bridge {}: {e}", target.name()),
                }
                ending.start();
                return Ok(());
            }
            Err(Error::Timeout) => {}
            Err(e) => {
                // A protocol breach (answered with its close code already),
                // an error close from the client, or the client vanished or
                // was cut off: nothing more can reach it. Closing the target
                // wakes the other direction.
                ending.now();
                target.close();
                return Err(e);
            }
        }
    }
}

/// A target failure: the client is told (close 1011) and cut off at once,
/// so that nothing it sends afterwards is taken as if it could still reach
/// the target (its later sends fail).
fn target_failed(target: &Stream, ws: &Stream, wsh: &Ws, e: &Error) {
    log::info!(
        "bridge {}: {e}: closing {} with 1011",
        target.name(),
        ws.name()
    );
    wsh.abort(
        CloseCode::Error,
        "the target failed",
        Instant::now() + BRIDGE_CLOSE_SEND,
    );
}

/// The target's bytes to the client as binary messages; its end as a close
/// frame (1000 at EOF, 1011 on a failure).
fn target_to_client(target: &Stream, ws: &Stream, wsh: &Ws, ending: &Ending) -> Result<()> {
    let mut buf = vec![0u8; FORWARD_CHUNK];
    loop {
        let Some(until) = ending.next() else {
            return Ok(());
        };
        match target.receive_until(&mut buf, Some(until)) {
            Ok(Some(n)) => loop {
                if wsh.is_closing() {
                    // The client closed: discard until the target's EOF.
                    break;
                }
                let Some(until) = ending.next() else {
                    return Ok(());
                };
                match ws.send_until(&buf[..n], Some(until)) {
                    Ok(()) => break,
                    Err(Error::Timeout) => {}
                    Err(_) if wsh.is_closing() => break,
                    Err(e) => {
                        ending.now();
                        return Err(e);
                    }
                }
            },
            Ok(None) => {
                // Every byte before the EOF went out before the close frame.
                wsh.send_close(CloseCode::Normal, "", Instant::now() + BRIDGE_LINGER);
                ending.start();
                return Ok(());
            }
            Err(Error::Timeout) => {}
            Err(Error::Closed(m)) => {
                ending.now();
                return Err(Error::Closed(m));
            }
            Err(e) => {
                target_failed(target, ws, wsh, &e);
                ending.now();
                return Err(e);
            }
        }
    }
}

/// A target that could not be reached: the client gets a close frame with
/// 1011, at once.
pub(crate) fn target_unreachable(wsh: &Ws) {
    wsh.abort(
        CloseCode::Error,
        "target unreachable",
        Instant::now() + BRIDGE_CLOSE_SEND,
    );
}
