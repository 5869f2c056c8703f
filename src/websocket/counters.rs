//! What a websocket server (or bridge) refuses, counted: handshakes refused
//! (by the server handshake) and connections closed for breaking the
//! protocol (by each connection), as [`RefusalStats`].

use std::sync::atomic::{AtomicU64, Ordering};

/// A websocket server's (or bridge's) refusals, as counted so far (each is
/// also logged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalStats {
    /// Requests that were not a websocket upgrade, not HTTP, or whose head
    /// was longer than 16 KiB (answered with HTTP 400 or 431).
    pub bad_requests: u64,
    /// Requests whose `Origin` is not in the `origins` allow-list (HTTP 403).
    pub forbidden: u64,
    /// Clients that did not finish their handshake within
    /// `handshake_timeout_ms`, or left during it.
    pub unfinished: u64,
    /// Handshakes ended early to make room for a new connection because
    /// `max_handshakes` were in progress.
    pub evicted: u64,
    /// Connections refused (HTTP 503) because `max_connections` were being
    /// served when they arrived or when their handshake finished.
    pub full: u64,
    /// Connections closed after their handshake for breaking the protocol
    /// (close 1002, 1007 or 1009: an unmasked or oversized frame, invalid
    /// UTF-8, a message over `max_message`).
    pub bad_frames: u64,
}

/// The live counters behind [`RefusalStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) bad_requests: AtomicU64,
    pub(super) forbidden: AtomicU64,
    pub(super) unfinished: AtomicU64,
    pub(super) evicted: AtomicU64,
    bad_frames: AtomicU64,
}

impl Counters {
    /// A snapshot, with the server's count of HTTP 503 refusals.
    pub(crate) fn stats(&self, full: u64) -> RefusalStats {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RefusalStats {
            bad_requests: n(&self.bad_requests),
            forbidden: n(&self.forbidden),
            unfinished: n(&self.unfinished),
            evicted: n(&self.evicted),
            full,
            bad_frames: n(&self.bad_frames),
        }
    }

    /// Counts a connection closed for breaking the protocol; returns the
    /// total so far.
    pub(crate) fn count_bad_frame(&self) -> u64 {
        self.bad_frames.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a handshake ended to make room; returns the total so far.
    pub(crate) fn count_evicted(&self) -> u64 {
        self.evicted.fetch_add(1, Ordering::Relaxed) + 1
    }
}
