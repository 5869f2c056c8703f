//! Upstream's client over a Unix socket sends an `:authority` that HTTP
//! does not allow: gRPC's C core (1.57 and later) sends the socket's path,
//! percent-encoded (`tmp%2Fjumpstarter-x%2Fsocket`), and the HTTP/2 server
//! under tonic (h2) resets every such request with `PROTOCOL_ERROR`
//! (hyperium/h2#487, grpc/grpc#38142). Upstream's own server (gRPC's C
//! core) takes it. [`FixAuthority`] sits between a session's connection
//! and the server: it reads the client's HTTP/2 frames, passes every frame
//! through untouched but the header blocks (`HEADERS` and its
//! `CONTINUATION`s), and in those rewrites an `:authority` value that is not
//! a valid authority into one of the same length (each character an
//! authority cannot hold becomes `-`), so that the HPACK dynamic tables of
//! the client and of the server keep the same sizes and indices. Nothing
//! else in the connection changes; the server's bytes go back as they are.
//!
//! The Huffman code of HPACK (RFC 7541, Appendix B) is needed to read such
//! a value: its table below is copied from h2 (MIT licence, Copyright (c)
//! 2017 h2 authors), `src/hpack/huffman/table.rs`.

use bytes::{Buf, BytesMut};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface, passed through.
const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame this writes (the HTTP/2 minimum every peer accepts).
const FRAME_OUT: usize = 16 << 10;
/// Largest header block read whole; a larger one fails the connection.
const MAX_BLOCK: usize = 1 << 20;
/// Bytes read from the client at a time (outside frame payloads, which
/// are read straight into the server's buffer).
const SCRATCH: usize = 64 << 10;
/// The static table index of `:authority`.
const AUTHORITY_INDEX: u64 = 1;

const ENCODE_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const ENCODE_CODE_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// The Huffman decoder: (code length, code) → byte.
fn codes() -> &'static HashMap<(u8, u32), u8> {
    static CODES: OnceLock<HashMap<(u8, u32), u8>> = OnceLock::new();
    CODES.get_or_init(|| {
        (0..256)
            .map(|s| ((ENCODE_CODE_LENGTHS[s], ENCODE_CODES[s]), s as u8))
            .collect()
    })
}

/// Decodes a Huffman-coded HPACK string (RFC 7541, 5.2).
fn huffman_decode(src: &[u8]) -> Option<Vec<u8>> {
    let table = codes();
    let mut out = Vec::with_capacity(src.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0u8);
    for byte in src {
        for k in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> k) & 1);
            len += 1;
            if len >= 5 {
                if let Some(&b) = table.get(&(len, code)) {
                    out.push(b);
                    (code, len) = (0, 0);
                }
            }
            if len > 30 {
                return None;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    (len < 8 && code == (1 << len) - 1).then_some(out)
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1): its value and
/// the bytes it took.
fn integer(src: &[u8], n: u8) -> Option<(u64, usize)> {
    let mask = (1u64 << n) - 1;
    let mut v = u64::from(*src.first()?) & mask;
    if v < mask {
        return Some((v, 1));
    }
    let mut shift = 0;
    for (i, b) in src.iter().enumerate().skip(1) {
        v += u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
        if shift > 28 {
            return None;
        }
    }
    None
}

/// An HPACK string literal: its decoded bytes and the bytes it took.
fn string(src: &[u8]) -> Option<(Vec<u8>, usize)> {
    let huffman = src.first()? & 0x80 != 0;
    let (len, n) = integer(src, 7)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    let raw = src.get(n..end)?;
    let text = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Some((text, end))
}

/// Appends `s` as a plain (not Huffman-coded) HPACK string literal.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(s);
}

/// An authority value h2 takes in place of `value`, of the same length;
/// `None` if `value` is fine (or cannot be mended).
fn mend(value: &[u8]) -> Option<Vec<u8>> {
    let ok = |v: &[u8]| tonic::codegen::http::uri::Authority::try_from(v).is_ok();
    if value.is_empty() || ok(value) {
        return None;
    }
    let fixed: Vec<u8> = value
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                b
            } else {
                b'-'
            }
        })
        .collect();
    ok(&fixed).then_some(fixed)
}

/// The header block `block` with each invalid `:authority` value mended
/// ([`mend`]); `None` when nothing changes (or the block cannot be read:
/// the server then judges it as it is).
fn rewrite_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + 64);
    let mut changed = false;
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        let prefix = if b & 0x80 != 0 {
            // Indexed field: copied.
            let (_, n) = integer(&block[i..], 7)?;
            out.extend_from_slice(&block[i..i + n]);
            i += n;
            continue;
        } else if b & 0xc0 == 0x40 {
            6 // literal with incremental indexing
        } else if b & 0xe0 == 0x20 {
            // Dynamic table size update: copied.
            let (_, n) = integer(&block[i..], 5)?;
            out.extend_from_slice(&block[i..i + n]);
            i += n;
            continue;
        } else {
            4 // literal without indexing, never indexed
        };
        let start = i;
        let (index, n) = integer(&block[i..], prefix)?;
        i += n;
        let authority = if index == 0 {
            let (name, m) = string(&block[i..])?;
            i += m;
            name == b":authority"
        } else {
            index == AUTHORITY_INDEX
        };
        let value_at = i;
        let (value, m) = string(&block[i..])?;
        i += m;
        match authority.then(|| mend(&value)).flatten() {
            Some(fixed) => {
                out.extend_from_slice(&block[start..value_at]);
                put_string(&mut out, &fixed);
                changed = true;
            }
            None => out.extend_from_slice(&block[start..i]),
        }
    }
    changed.then_some(out)
}

/// A header block being gathered (a `HEADERS` frame and its
/// `CONTINUATION`s).
struct Block {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

impl Block {
    /// The block as frames: one `HEADERS` and as many `CONTINUATION`s as
    /// needed, each at most [`FRAME_OUT`].
    fn write(self, out: &mut BytesMut) {
        let body = rewrite_block(&self.fragment).unwrap_or(self.fragment);
        let mut first = Vec::with_capacity(body.len() + 5);
        if let Some(p) = self.priority {
            first.extend_from_slice(&p);
        }
        first.extend_from_slice(&body);
        let mut chunks = first.chunks(FRAME_OUT).peekable();
        let mut kind = HEADERS;
        let mut flags = if self.end_stream { END_STREAM } else { 0 }
            | if self.priority.is_some() { PRIORITY } else { 0 };
        if chunks.peek().is_none() {
            frame_head(out, 0, kind, flags | END_HEADERS, self.stream);
            return;
        }
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            frame_head(
                out,
                c.len(),
                kind,
                flags | if last { END_HEADERS } else { 0 },
                self.stream,
            );
            out.extend_from_slice(c);
            (kind, flags) = (CONTINUATION, 0);
        }
    }
}

fn frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: [u8; 4]) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream);
}

/// A session connection whose client's header blocks get their
/// `:authority` mended (see the [module docs](self)).
pub(crate) struct FixAuthority<T> {
    io: T,
    /// Bytes read from the client and not yet looked at.
    raw: BytesMut,
    /// Bytes ready for the server.
    out: BytesMut,
    /// Bytes of the current frame (or the preface) still to pass through.
    passthrough: usize,
    block: Option<Block>,
    eof: bool,
    /// What each read from the client lands in first.
    scratch: Box<[u8]>,
}

impl<T> FixAuthority<T> {
    pub(crate) fn new(io: T) -> FixAuthority<T> {
        FixAuthority {
            io,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            passthrough: PREFACE_LEN,
            block: None,
            eof: false,
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
        }
    }

    /// Moves what `raw` holds forward into `out`, frame by frame, as far as
    /// it can. An error fails the connection.
    fn process(&mut self) -> io::Result<()> {
        loop {
            if self.passthrough > 0 {
                let n = self.passthrough.min(self.raw.len());
                if n == 0 {
                    return Ok(());
                }
                self.out.extend_from_slice(&self.raw[..n]);
                self.raw.advance(n);
                self.passthrough -= n;
                continue;
            }
            if self.raw.len() < 9 {
                return Ok(());
            }
            let len = usize::from(self.raw[0]) << 16
                | usize::from(self.raw[1]) << 8
                | usize::from(self.raw[2]);
            let (kind, flags) = (self.raw[3], self.raw[4]);
            let stream = [self.raw[5], self.raw[6], self.raw[7], self.raw[8]];
            let header_frame = kind == HEADERS || (kind == CONTINUATION && self.block.is_some());
            if !header_frame {
                self.out.extend_from_slice(&self.raw[..9]);
                self.raw.advance(9);
                self.passthrough = len;
                continue;
            }
            if self.raw.len() < 9 + len {
                if len > MAX_BLOCK {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a header block past 1 MiB",
                    ));
                }
                return Ok(());
            }
            let frame = self.raw.split_to(9 + len);
            let mut payload = &frame[9..];
            if kind == HEADERS {
                if flags & PADDED != 0 {
                    let pad = usize::from(*payload.first().unwrap_or(&0));
                    if payload.len() < 1 + pad {
                        // Malformed: the server judges it as it is.
                        self.out.extend_from_slice(&frame);
                        continue;
                    }
                    payload = &payload[1..payload.len() - pad];
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    let Some(p) = payload.get(..5) else {
                        self.out.extend_from_slice(&frame);
                        continue;
                    };
                    let mut b = [0u8; 5];
                    b.copy_from_slice(p);
                    priority = Some(b);
                    payload = &payload[5..];
                }
                self.block = Some(Block {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: payload.to_vec(),
                });
            } else if let Some(b) = &mut self.block {
                b.fragment.extend_from_slice(payload);
                if b.fragment.len() > MAX_BLOCK {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a header block past 1 MiB",
                    ));
                }
            }
            if flags & END_HEADERS != 0 {
                if let Some(b) = self.block.take() {
                    b.write(&mut self.out);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FixAuthority<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.out.is_empty() {
                let n = me.out.len().min(buf.remaining());
                buf.put_slice(&me.out[..n]);
                me.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if me.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // The payload of a frame passed through goes straight into the
            // caller's buffer.
            if me.passthrough > 0 && me.raw.is_empty() {
                let want = me.passthrough.min(buf.remaining());
                let dst = buf.initialize_unfilled_to(want);
                let mut rb = ReadBuf::new(dst);
                std::task::ready!(Pin::new(&mut me.io).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    me.eof = true;
                    return Poll::Ready(Ok(()));
                }
                buf.advance(n);
                me.passthrough -= n;
                return Poll::Ready(Ok(()));
            }
            me.process()?;
            if !me.out.is_empty() {
                continue;
            }
            let mut rb = ReadBuf::new(&mut me.scratch);
            std::task::ready!(Pin::new(&mut me.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                me.eof = true;
                continue;
            }
            me.raw.extend_from_slice(rb.filled());
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FixAuthority<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Huffman-encodes `s` with the table (the test's encoder).
    fn huffman(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &b in s {
            let (code, len) = (ENCODE_CODES[b as usize], ENCODE_CODE_LENGTHS[b as usize]);
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    #[test]
    fn huffman_strings_decode() {
        for s in [&b"www.example.com"[..], b"tmp%2Fjw-sock", b"", b"\x00\xff~"] {
            assert_eq!(huffman_decode(&huffman(s)).unwrap(), s);
        }
        // RFC 7541, C.4.1.
        let rfc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(huffman_decode(&rfc).unwrap(), b"www.example.com");
        // Padding that is not all ones.
        assert!(
            huffman_decode(&[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xfe
            ])
            .is_none()
        );
    }

    #[test]
    fn integers_read_as_hpack_writes_them() {
        assert_eq!(integer(&[0x0a], 5), Some((10, 1)));
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(integer(&[0x1f, 0x9a], 5), None);
        let mut out = Vec::new();
        put_string(&mut out, &[b'a'; 300]);
        assert_eq!(string(&out).unwrap(), (vec![b'a'; 300], out.len()));
    }

    #[test]
    fn an_invalid_authority_is_mended_to_the_same_length() {
        let path = b"tmp%2Fjumpstarter-x%2Fsocket";
        // :method POST (indexed 3), :authority (static name 1, incremental
        // indexing) Huffman-coded, then a literal without indexing, a
        // dynamic table size update and a literal-named field.
        let mut block = vec![0x83, 0x41];
        let h = huffman(path);
        block.push(0x80 | h.len() as u8);
        block.extend_from_slice(&h);
        block.extend_from_slice(&[0x04, 0x02, b'/', b'x', 0x3f, 0xe1, 0x1f]);
        block.extend_from_slice(&[0x40, 0x01, b'k', 0x01, b'v']);
        let fixed = rewrite_block(&block).unwrap();
        let mut want = vec![0x83, 0x41, path.len() as u8];
        want.extend_from_slice(b"tmp-2Fjumpstarter-x-2Fsocket");
        want.extend_from_slice(&[0x04, 0x02, b'/', b'x', 0x3f, 0xe1, 0x1f]);
        want.extend_from_slice(&[0x40, 0x01, b'k', 0x01, b'v']);
        assert_eq!(fixed, want);
        // A literal name `:authority` (never indexed) too.
        let mut lit = vec![0x10, 0x0a];
        lit.extend_from_slice(b":authority");
        lit.push(0x03);
        lit.extend_from_slice(b"a/b");
        let fixed = rewrite_block(&lit).unwrap();
        assert_eq!(&fixed[fixed.len() - 3..], b"a-b");
        // Valid authorities and other fields are left alone.
        assert_eq!(
            rewrite_block(&[
                0x83, 0x41, 0x09, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't'
            ]),
            None
        );
        assert_eq!(rewrite_block(&[0x84, 0x04, 0x01, b'%']), None);
        // Malformed: left for the server to judge.
        assert_eq!(rewrite_block(&[0x41, 0x7f]), None);
    }

    #[test]
    fn frames_pass_through_and_header_blocks_are_mended() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS (empty), HEADERS padded with priority split over a
        // CONTINUATION, DATA.
        frame_head_vec(&mut input, 0, 0x4, 0, 0);
        let mut block = vec![0x83, 0x41, 0x03];
        block.extend_from_slice(b"a%b");
        let (a, b) = block.split_at(3);
        let mut headers = vec![2u8];
        headers.extend_from_slice(&[0, 0, 0, 0, 16]);
        headers.extend_from_slice(a);
        headers.extend_from_slice(&[0, 0]);
        frame_head_vec(
            &mut input,
            headers.len(),
            HEADERS,
            PADDED | PRIORITY | END_STREAM,
            1,
        );
        input.extend_from_slice(&headers);
        frame_head_vec(&mut input, b.len(), CONTINUATION, END_HEADERS, 1);
        input.extend_from_slice(b);
        frame_head_vec(&mut input, 5, 0x0, 0, 1);
        input.extend_from_slice(b"hello");
        let mut want = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        frame_head_vec(&mut want, 0, 0x4, 0, 0);
        let mut body = vec![0, 0, 0, 0, 16, 0x83, 0x41, 0x03];
        body.extend_from_slice(b"a-b");
        frame_head_vec(
            &mut want,
            body.len(),
            HEADERS,
            PRIORITY | END_STREAM | END_HEADERS,
            1,
        );
        want.extend_from_slice(&body);
        frame_head_vec(&mut want, 5, 0x0, 0, 1);
        want.extend_from_slice(b"hello");
        let got = rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut f = FixAuthority::new(&input[..]);
            let mut got = Vec::new();
            // Small reads: frames cut anywhere.
            let mut buf = [0u8; 7];
            loop {
                let n = f.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        assert_eq!(got, want);
    }

    fn frame_head_vec(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
        let mut b = BytesMut::new();
        frame_head(&mut b, len, kind, flags, stream.to_be_bytes());
        out.extend_from_slice(&b);
    }
}
