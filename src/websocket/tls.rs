//! TLS client streams for `wss://` (rustls with the `ring` provider; the
//! configuration comes from [`crate::tls`]).
//!
//! The rustls connection sits under a mutex that no call holds while it
//! waits: a receive locks it only to feed it bytes that are already in the
//! socket and to take out plaintext; a send waits until the socket is
//! writable (nothing is accepted if the deadline passes first), then locks,
//! encrypts and writes, releasing the lock whenever the socket is full. So one
//! thread may send while another receives, as on every [`Stream`].

use crate::error::{Error, Result};
use crate::stream::{Stream, Transport};
use crate::sys;
use crate::util::lock;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `close` may take to send the TLS close_notify.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

struct Tls {
    sock: Socket,
    name: String,
    conn: Mutex<ClientConnection>,
    /// Set once receiving ended: `None` inside = EOF.
    end: Mutex<Option<Option<Error>>>,
    closing: AtomicBool,
}

/// Wraps a connected TCP socket into a TLS client stream, doing the handshake
/// (bounded by `deadline`).
pub(crate) fn connect(
    sock: Socket,
    host: &str,
    config: ClientConfig,
    name: String,
    deadline: Option<Instant>,
) -> Result<Stream> {
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(&name, &e))?;
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| Error::invalid(format!("{name}: {host}: {e}")))?;
    let mut conn = ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| Error::Internal(format!("{name}: TLS setup: {e}")))?;
    // A send hands over one whole frame; flushing bounds what is buffered.
    conn.set_buffer_limit(None);
    let tls = Tls {
        sock,
        name: name.clone(),
        conn: Mutex::new(conn),
        end: Mutex::new(None),
        closing: AtomicBool::new(false),
    };
    tls.handshake(deadline)?;
    Ok(Stream::new(name, tls, Vec::new()))
}

fn tls_error(name: &str, e: &rustls::Error) -> Error {
    Error::Connection(format!("{name}: TLS: {e}"))
}

impl Tls {
    fn wait(&self, events: libc::c_short, deadline: Option<Instant>) -> Result<bool> {
        sys::wait(self.sock.as_fd(), events, deadline)
            .map(|n| n > 0)
            .map_err(|e| Error::io(&self.name, &e))
    }

    fn handshake(&self, deadline: Option<Instant>) -> Result<()> {
        loop {
            let mut c = lock(&self.conn);
            if !c.is_handshaking() {
                return self.flush_locked(c, deadline);
            }
            if c.wants_write() {
                match c.write_tls(&mut sys::NoSigpipe(&self.sock)) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drop(c);
                        if !self.wait(libc::POLLOUT, deadline)? {
                            return Err(Error::Timeout);
                        }
                        continue;
                    }
                    Err(e) => return Err(Error::io(&self.name, &e)),
                }
            }
            match c.read_tls(&mut &self.sock) {
                Ok(0) => {
                    return Err(Error::Connection(format!(
                        "{}: connection closed during the TLS handshake",
                        self.name
                    )));
                }
                Ok(_) => {
                    if let Err(e) = c.process_new_packets() {
                        // Tell the server why (the alert), then give up.
                        let _ = c.write_tls(&mut sys::NoSigpipe(&self.sock));
                        return Err(tls_error(&self.name, &e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(c);
                    if !self.wait(libc::POLLIN, deadline)? {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(Error::io(&self.name, &e)),
            }
        }
    }

    /// Writes out everything rustls holds, releasing the lock while the
    /// socket is full.
    fn flush_locked<'a>(
        &'a self,
        mut c: std::sync::MutexGuard<'a, ClientConnection>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        while c.wants_write() {
            match c.write_tls(&mut sys::NoSigpipe(&self.sock)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(c);
                    if self.closing.load(Ordering::Acquire) {
                        return Err(Error::Closed(format!("{}: stream is closed", self.name)));
                    }
                    if !self.wait(libc::POLLOUT, deadline)? {
                        return Err(Error::Timeout);
                    }
                    c = lock(&self.conn);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.name, &e)),
            }
        }
        Ok(())
    }

    fn end(&self, e: Option<Error>) -> Result<Option<usize>> {
        *lock(&self.end) = Some(e.clone());
        e.map_or(Ok(None), Err)
    }
}

impl Transport for Tls {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        // Accept nothing unless the socket can take data before the deadline.
        if !self.wait(libc::POLLOUT, deadline)? {
            return Err(Error::Timeout);
        }
        let mut c = lock(&self.conn);
        c.writer()
            .write_all(data)
            .map_err(|e| Error::io(&self.name, &e))?;
        // Accepted: the rest goes out even past the deadline (bounded by
        // close), so that a send is all or nothing.
        self.flush_locked(c, None)
    }

    fn send_eof(&self) -> Result<()> {
        Ok(())
    }

    fn half_closes(&self) -> bool {
        false
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        if let Some(end) = lock(&self.end).clone() {
            return end.map_or(Ok(None), Err);
        }
        loop {
            {
                let mut c = lock(&self.conn);
                match c.reader().read(buf) {
                    Ok(0) => return self.end(None),
                    Ok(n) => return Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let e = Error::io(&self.name, &e);
                        return self.end(Some(e));
                    }
                }
                match c.read_tls(&mut &self.sock) {
                    Ok(0) => {
                        return self.end(Some(Error::Connection(format!(
                            "{}: connection closed without a TLS close_notify",
                            self.name
                        ))));
                    }
                    Ok(_) => {
                        if let Err(e) = c.process_new_packets() {
                            let _ = c.write_tls(&mut sys::NoSigpipe(&self.sock));
                            return self.end(Some(tls_error(&self.name, &e)));
                        }
                        // Key updates and the like may need an answer.
                        if c.wants_write() {
                            let _ = c.write_tls(&mut sys::NoSigpipe(&self.sock));
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        if self.closing.load(Ordering::Acquire) {
                            return Err(Error::Closed(format!("{}: stream is closed", self.name)));
                        }
                        return self.end(Some(Error::io(&self.name, &e)));
                    }
                }
            }
            if !self.wait(libc::POLLIN, deadline)? {
                return Err(Error::Timeout);
            }
            if self.closing.load(Ordering::Acquire) {
                return Err(Error::Closed(format!("{}: stream is closed", self.name)));
            }
        }
    }

    fn close(&self) {
        if let Ok(mut c) = self.conn.try_lock() {
            // Data still waiting to go means the peer is not reading (or is
            // gone): no close_notify then, the connection is cut at once.
            if !c.wants_write() {
                c.send_close_notify();
                let _ = self.flush_locked(c, Some(Instant::now() + CLOSE_WAIT));
            }
        }
        self.closing.store(true, Ordering::Release);
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}
