//! The few socket calls that need `libc` directly: waiting on a descriptor with
//! a deadline, and reading straight into a `Vec`'s spare capacity. This and
//! `src/ffi/` are the only places with `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

/// Waits until `fd` is ready for `events` (`libc::POLLIN` / `libc::POLLOUT`) or
/// `deadline` passes (`None` waits forever). Returns the revents, or 0 on
/// timeout. `EINTR` is retried.
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<libc::c_short> {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a wait never ends before the deadline.
                let ms = left.as_micros().div_ceil(1000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
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

/// Reads once from `fd` into the spare capacity of `buf` (at most `max` bytes
/// past its current length) and extends its length by what was read. Returns
/// the byte count; 0 means end of stream (or an empty datagram).
pub(crate) fn read_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: `spare` is writable memory of at least `len` bytes owned by `buf`.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
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
        let mut v = b"x".to_vec();
        assert_eq!(read_into(a.as_fd(), &mut v, 100).unwrap(), 2);
        assert_eq!(v, b"xhi");
    }
}
