//! The in-memory echo stream: what you send comes back, in order, and
//! `send_eof` comes back as end of stream. Like upstream `EchoNetwork`, it holds
//! a bounded number of messages; a send into a full echo waits for room.

use crate::error::{Error, Result};
use crate::stream::{Event, Feeder, Stream, Transport, lock, queue};
use std::sync::Mutex;
use std::time::Instant;

struct Echo(Mutex<Option<std::sync::Arc<Feeder>>>);

impl Echo {
    fn feeder(&self) -> Result<std::sync::Arc<Feeder>> {
        lock(&self.0)
            .clone()
            .ok_or_else(|| Error::Closed("echo: stream is closed".into()))
    }
}

/// A new echo stream.
pub(crate) fn stream() -> Stream {
    let (feeder, tap) = queue();
    Stream::new(
        "echo:".into(),
        Echo(Mutex::new(Some(std::sync::Arc::new(feeder)))),
        tap,
        Vec::new(),
    )
}

impl Transport for Echo {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        // A byte stream: sending nothing delivers nothing.
        if data.is_empty() {
            return self.feeder().map(drop);
        }
        self.feeder()?
            .feed_until(Event::Data(data.to_vec()), deadline)
    }

    fn send_eof(&self) -> Result<()> {
        // Dropping the producer ends the queue after what it holds: end of
        // stream comes after every byte sent before it.
        drop(lock(&self.0).take());
        Ok(())
    }

    fn close(&self) {
        drop(lock(&self.0).take());
    }
}
