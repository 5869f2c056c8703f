//! The in-memory echo stream: what you send comes back, in order, and
//! `send_eof` comes back as end of stream. Like upstream `EchoNetwork`, it holds
//! a bounded number of messages; a send into a full echo waits for room.

use crate::error::{Error, Result};
use crate::stream::{Event, Feeder, Inbox, Stream, Transport, queue};
use crate::util::lock;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
        self.feeder()?
            .feed_until(Event::Data(data.to_vec()), deadline)
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
