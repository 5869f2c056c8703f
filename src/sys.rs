//! The few socket calls that need `libc` directly: waiting on descriptors with a
//! deadline, `splice` through a pipe, and keeping `SIGPIPE` away from the host.
//! This and `src/ffi/` are the only places with `unsafe`.
//!
//! `SIGPIPE` never reaches a host (curl and libzmq make the same promise):
//! - every socket write the library makes on a caller's thread is a `send`
//!   with `MSG_NOSIGNAL` ([`NoSigpipe`] for code that wants `io::Write`);
//! - writes that cannot take that flag (`splice`, tokio's `writev`) run under
//!   a [`SigpipeGuard`];
//! - every thread the library starts goes through [`spawn`] or
//!   [`spawn_scoped`], which block `SIGPIPE` for the thread's whole life, so a
//!   write on a library thread never raises it whatever it calls.

use socket2::Socket;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};
use std::time::Instant;

/// Starts a library thread named `name` with `SIGPIPE` blocked in it.
pub(crate) fn spawn<F, T>(name: &str, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            block_sigpipe();
            f()
        })
}

/// [`spawn`] for a scoped thread.
pub(crate) fn spawn_scoped<'scope, 'env, F, T>(
    scope: &'scope Scope<'scope, 'env>,
    name: &str,
    f: F,
) -> io::Result<ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, move || {
            block_sigpipe();
            f()
        })
}

/// Blocks `SIGPIPE` on this thread for the rest of its life (for threads the
/// library owns: a `SIGPIPE` their writes raise stays pending on them and is
/// dropped when they end, never delivered to the host).
pub(crate) fn block_sigpipe() {
    let set = sigpipe_set();
    // SAFETY: a valid set; changes only this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// `io::Write` onto a socket that never raises `SIGPIPE`: each write is a
/// `send`/`sendmsg` with `MSG_NOSIGNAL` (a peer that has gone is `EPIPE`).
pub(crate) struct NoSigpipe<'a>(pub(crate) &'a Socket);

impl Write for NoSigpipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Milliseconds until `deadline` for `poll(2)`, rounded up (-1 = forever).
fn poll_timeout(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            let ms = left.as_micros().div_ceil(1000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Waits until `fd` is ready for `events` (`libc::POLLIN` / `libc::POLLOUT`) or
/// `deadline` passes (`None` waits forever). Returns the revents, or 0 on
/// timeout. `EINTR` is retried.
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<libc::c_short> {
    loop {
        let timeout_ms = poll_timeout(deadline);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1; the fd is borrowed for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            if deadline.is_some_and(|d| Instant::now() < d) {
                continue; // woke early (ms rounding); wait the rest
            }
            return Ok(0);
        }
        return Ok(pfd.revents);
    }
}

/// The real user id of the process.
pub(crate) fn getuid() -> u32 {
    // SAFETY: getuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// Waits until one of `fds` is ready or `deadline` passes: `poll(2)` on
/// several descriptors (their `revents` are filled in). `EINTR` is retried.
pub(crate) fn wait_any(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<()> {
    loop {
        let timeout_ms = poll_timeout(deadline);
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A non-blocking, close-on-exec pipe sized to hold `size` bytes where the
/// system allows it. Returns (read end, write end, capacity).
pub(crate) fn pipe(size: usize) -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are new and owned by us.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let want = size.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: plain fcntl calls on a descriptor we own; failure leaves the
    // default size, which the F_GETPIPE_SZ below reports.
    let cap = unsafe {
        libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, want);
        libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ)
    };
    if cap <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r, w, cap as usize))
}

/// Moves up to `len` bytes from `from` to `to` (one of them a pipe) without
/// copying them through user space. Non-blocking: `WouldBlock` when nothing
/// can move now. 0 means end of stream on `from`.
pub(crate) fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are borrowed for the call; no offsets.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether the TCP connection of `fd` is CLOSED (`TCP_INFO`'s state): the
/// state a connection the peer reset is left in. `false` for other sockets
/// and when it cannot be read.
pub(crate) fn tcp_closed(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: tcp_info is plain integers: all zeros is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is borrowed for the call; getsockopt writes at most `len`
    // bytes into `info` and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    // TCP_CLOSE of the kernel's tcp_states.h (not in libc).
    const TCP_CLOSE: u8 = 7;
    rc == 0 && len > 0 && info.tcpi_state == TCP_CLOSE
}

/// Keeps `SIGPIPE` from reaching the host while it lives: `splice` into a
/// socket whose peer is gone raises it (there is no `MSG_NOSIGNAL` for splice).
/// Blocks the signal on this thread, and on drop takes away a `SIGPIPE` that
/// became pending meanwhile and restores the thread's mask — curl's
/// `sigpipe_ignore` does the same.
pub(crate) struct SigpipeGuard {
    old: libc::sigset_t,
    was_pending: bool,
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

fn sigpipe_pending() -> bool {
    // SAFETY: sigpending fills the set we own; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

impl SigpipeGuard {
    /// A guard, unless the process ignores `SIGPIPE` already (Rust and
    /// Python programs do): then there is nothing to keep from the host, and
    /// the four system calls of a guard are saved.
    pub(crate) fn unless_ignored() -> Option<SigpipeGuard> {
        // SAFETY: with a null new action, sigaction only reads the current
        // disposition into the struct we own.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        (!ignored).then(SigpipeGuard::new)
    }

    pub(crate) fn new() -> SigpipeGuard {
        let set = sigpipe_set();
        // SAFETY: valid sets; changes only this thread's mask.
        let old = unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            old
        };
        SigpipeGuard {
            old,
            was_pending: sigpipe_pending(),
        }
    }
}

impl Drop for SigpipeGuard {
    fn drop(&mut self) {
        let set = sigpipe_set();
        if !self.was_pending {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid set and timespec; takes at most one pending
            // SIGPIPE per call without waiting.
            while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) } == libc::SIGPIPE
            {
            }
        }
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// `SIGINT` and `SIGTERM`: the signals that stop the `jumpwire` command.
fn stop_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// For the `jumpwire` command (see `cli_support`): blocks `SIGINT` and
/// `SIGTERM` on the calling thread. Threads started after it inherit the
/// mask, so when `main` calls it before any thread starts, the two signals
/// stay pending until [`wait_stop_signal`] takes one, instead of killing the
/// process: the command then closes what it serves and exits 0.
pub fn block_stop_signals() -> io::Result<()> {
    let set = stop_set();
    // SAFETY: a valid set; changes only this thread's mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for `SIGINT` or `SIGTERM` (blocked in every thread by
/// [`block_stop_signals`]) and returns its number. Blocks the calling thread
/// until one comes.
pub fn wait_stop_signal() -> io::Result<i32> {
    let set = stop_set();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: a valid set and a valid place for the signal number.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        match rc {
            0 => return Ok(sig),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn wait_times_out_then_sees_data() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let t0 = Instant::now();
        let r = wait(
            a.as_fd(),
            libc::POLLIN,
            Some(t0 + Duration::from_millis(30)),
        )
        .unwrap();
        assert_eq!(r, 0);
        assert!(t0.elapsed() >= Duration::from_millis(30));
        b.write_all(b"hi").unwrap();
        let r = wait(a.as_fd(), libc::POLLIN, None).unwrap();
        assert_ne!(r & libc::POLLIN, 0);
    }

    #[test]
    fn splice_moves_bytes_through_a_pipe() {
        use std::io::Read;
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, mut b_peer) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let (r, w, cap) = pipe(1 << 20).unwrap();
        assert!(cap >= 4096);
        assert_eq!(
            splice(a.as_fd(), w.as_fd(), cap).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a_peer.write_all(b"spliced").unwrap();
        assert_eq!(splice(a.as_fd(), w.as_fd(), cap).unwrap(), 7);
        assert_eq!(splice(r.as_fd(), b.as_fd(), 7).unwrap(), 7);
        let mut got = [0u8; 7];
        b_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"spliced");
        drop(a_peer);
        assert_eq!(splice(a.as_fd(), w.as_fd(), cap).unwrap(), 0);
    }

    #[test]
    fn a_blocked_stop_signal_waits_for_wait_stop_signal() {
        // On a thread of its own: the mask is per thread, and the signal is
        // sent to that thread only, so the test process is never stopped.
        let t = std::thread::spawn(|| {
            block_stop_signals().unwrap();
            // SAFETY: sends SIGTERM to this thread, which has it blocked.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
            wait_stop_signal().unwrap()
        });
        assert_eq!(t.join().unwrap(), libc::SIGTERM);
    }

    #[test]
    fn no_guard_is_needed_where_sigpipe_is_ignored() {
        // The Rust runtime ignores SIGPIPE before main, test harness included.
        assert!(SigpipeGuard::unless_ignored().is_none());
    }

    #[test]
    fn a_sigpipe_raised_under_the_guard_is_taken_away() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let (r, w, _) = pipe(4096).unwrap();
        let mut w_file = std::fs::File::from(w);
        w_file.write_all(b"x").unwrap();
        {
            let _guard = SigpipeGuard::new();
            // Into a socket whose peer is gone: EPIPE, and a SIGPIPE that would
            // kill the process without the guard.
            let err = splice(r.as_fd(), a.as_fd(), 1).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        }
        assert!(!sigpipe_pending());
    }
}
