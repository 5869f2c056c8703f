//! The in-memory echo stream: what you send comes back, in order, and
//! `send_eof` comes back as end of stream. Like upstream `EchoNetwork`, it holds
//! a bounded number of messages; a send into a full echo waits for room.
//!
//! The bytes go through a bounded `crossbeam-channel` queue: the sending half
//! feeds it ([`Feeder`]), the receiving half ([`Inbox`]) turns its messages
//! back into receives with the stream semantics (a message larger than the
//! buffer comes out over several calls; end of stream once the feeder is gone
//! and the queue is empty).

use crate::error::{Error, Result};
use crate::stream::{Stream, Transport};
use crate::util::lock;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many messages an echo holds.
const EVENT_QUEUE: usize = 16;

struct Echo {
    feeder: Mutex<Option<Arc<Feeder>>>,
    inbox: Inbox,
}

impl Echo {
    fn feeder(&self) -> Result<Arc<Feeder>> {
        lock(&self.feeder)
            .clone()
            .ok_or_else(|| Error::Closed("echo: stream is closed".into()))
    }
}

/// A new echo stream.
pub(crate) fn stream() -> Stream {
    let (feeder, inbox) = queue();
    Stream::new(
        "echo:".into(),
        Echo {
            feeder: Mutex::new(Some(Arc::new(feeder))),
            inbox,
        },
        Vec::new(),
    )
}

impl Transport for Echo {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        // A byte stream: sending nothing delivers nothing.
        if data.is_empty() {
            return self.feeder().map(drop);
        }
        self.feeder()?.feed_until(data.to_vec(), deadline)
    }

    fn send_eof(&self) -> Result<()> {
        // Dropping the producer ends the queue after what it holds: end of
        // stream comes after every byte sent before it.
        drop(lock(&self.feeder).take());
        Ok(())
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        self.inbox.receive(buf, deadline)
    }

    fn close(&self) {
        // Ends the queue, which wakes a blocked receiver, and a blocked sender.
        drop(lock(&self.feeder).take());
        self.inbox.close();
    }
}

/// The producing end of an [`Inbox`]'s queue.
struct Feeder {
    tx: Sender<Vec<u8>>,
    stop: Receiver<()>,
}

/// A new queue: the producer's end and the [`Inbox`] that receives.
fn queue() -> (Feeder, Inbox) {
    let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
    let inbox = Inbox {
        rx,
        stop: Mutex::new(Some(stop_tx)),
        state: Mutex::new(RecvState::default()),
    };
    (Feeder { tx, stop: stop_rx }, inbox)
}

impl Feeder {
    /// Queues `msg` unless `deadline` passes first (then nothing is queued
    /// and the result is [`Error::Timeout`]) or the stream closes.
    fn feed_until(&self, msg: Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        let closed = || Error::Closed("stream is closed".into());
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(closed()),
            Err(TrySendError::Full(msg)) => msg,
        };
        let mut sel = crossbeam_channel::Select::new();
        let send = sel.send(&self.tx);
        sel.recv(&self.stop);
        let op = match deadline {
            None => sel.select(),
            Some(d) => sel.select_deadline(d).map_err(|_| Error::Timeout)?,
        };
        if op.index() == send {
            op.send(&self.tx, msg).map_err(|_| closed())
        } else {
            let _ = op.recv(&self.stop);
            Err(closed())
        }
    }
}

#[derive(Default)]
struct RecvState {
    /// The message being delivered and how much of it was delivered.
    current: Option<(Vec<u8>, usize)>,
    /// Set once the queue has ended.
    eof: bool,
}

/// The receiving end of a queue: messages turned into receives with the
/// stream semantics (pieces of a large message, sticky end of stream).
struct Inbox {
    rx: Receiver<Vec<u8>>,
    stop: Mutex<Option<Sender<()>>>,
    state: Mutex<RecvState>,
}

impl Inbox {
    /// Receives the next bytes into `buf`. When every producer is gone the
    /// queue has ended: end of stream after what it held.
    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        let mut state = lock(&self.state);
        loop {
            if let Some((msg, pos)) = &mut state.current {
                let n = (msg.len() - *pos).min(buf.len());
                buf[..n].copy_from_slice(&msg[*pos..*pos + n]);
                *pos += n;
                if *pos == msg.len() {
                    state.current = None;
                }
                return Ok(Some(n));
            }
            if state.eof {
                return Ok(None);
            }
            let msg = match deadline {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => self.rx.recv_deadline(d),
            };
            match msg {
                Ok(d) => state.current = Some((d, 0)),
                Err(RecvTimeoutError::Disconnected) => state.eof = true,
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout),
            }
        }
    }

    /// Tells the producers to stop (a producer blocked on a full queue wakes).
    fn close(&self) {
        drop(lock(&self.stop).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn a_full_echo_times_out_without_sending() {
        let s = stream();
        let mut sent = 0;
        while s.send(&[sent as u8], Some(Duration::ZERO)).is_ok() {
            sent += 1;
            assert!(sent <= EVENT_QUEUE, "the echo queue is bounded");
        }
        assert_eq!(s.send(b"z", ms(20)), Err(Error::Timeout));
        let mut buf = [0u8; 4];
        for i in 0..sent {
            assert_eq!(s.receive(&mut buf, ms(100)).unwrap(), Some(1));
            assert_eq!(buf[0], i as u8);
        }
        assert_eq!(
            s.receive(&mut buf, Some(Duration::ZERO)),
            Err(Error::Timeout)
        );
    }

    #[test]
    fn an_inbox_ends_with_eof_and_stops_a_blocked_producer_on_close() {
        let (feeder, inbox) = queue();
        let (feeder2, inbox2) = queue();
        drop(feeder2);
        assert_eq!(inbox2.receive(&mut [0u8; 4], None).unwrap(), None);
        assert_eq!(inbox2.receive(&mut [0u8; 4], None).unwrap(), None);
        for _ in 0..EVENT_QUEUE {
            assert!(feeder.feed_until(vec![1], None).is_ok());
        }
        let producer = std::thread::spawn(move || feeder.feed_until(vec![2], None));
        std::thread::sleep(Duration::from_millis(30));
        inbox.close();
        assert!(
            producer.join().unwrap().is_err(),
            "a producer blocked on a full queue stops"
        );
    }
}
