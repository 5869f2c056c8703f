//! The frame codec (RFC 6455 section 5) on tungstenite's types: a header is
//! read by [`FrameHeader::parse`] and written by [`FrameHeader::format`];
//! opcodes and close codes are tungstenite's [`OpCode`] and [`CloseCode`].
//!
//! What is ours: the checks jumpwire applies to a peer's header, each made as
//! soon as the bytes that decide it are there (the reserved bits from the
//! first byte, the rest once the length is known, without waiting for the
//! masking key); masking 16 bytes at a time; masking keys drawn from the OS
//! generator in bulk; close frame payloads.

use crate::error::{Error, Result};
use std::io::Cursor;
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, OpCode};

/// The longest frame header: 2 bytes, 8 of extended length, 4 of masking
/// key.
pub(crate) const MAX_HEADER: usize = 14;
/// The masking key's length.
const MASK_LEN: usize = 4;
/// RSV1-3 in a frame's first byte: only an extension sets them, and none is
/// ever negotiated.
const RESERVED_BITS: u8 = 0x70;
/// The MASK bit in a frame's second byte.
const MASK_BIT: u8 = 0x80;
/// The largest control frame payload.
const MAX_CONTROL: u64 = 125;
/// Masking keys drawn from the OS generator at a time, per connection (4
/// bytes each): one `getrandom` per 64 client frames.
const MASK_POOL: usize = 256;

/// Which side of the connection we are: a client masks its frames and takes
/// unmasked ones, a server the other way round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Client,
    Server,
}

/// A peer's frame header, parsed and checked.
#[derive(Debug)]
pub(crate) struct Header {
    /// FIN, opcode and masking key (the reserved bits are clear).
    pub(crate) frame: FrameHeader,
    /// Payload length, within the frame limit.
    pub(crate) len: usize,
    /// Header length in bytes.
    pub(crate) size: usize,
}

/// A peer's breach of the protocol: the close code that answers it and why.
#[derive(Debug)]
pub(crate) struct Violation {
    pub(crate) code: CloseCode,
    pub(crate) why: String,
}

impl Violation {
    pub(crate) fn new(code: CloseCode, why: impl Into<String>) -> Violation {
        Violation {
            code,
            why: why.into(),
        }
    }
}

/// Parses the header of a frame from the peer at the start of `b` and
/// checks it: `Ok(None)` when more bytes are needed.
///
/// In this order: no reserved bit set; a known opcode; a control frame is
/// final and holds at most 125 bytes; a client's frames are masked and a
/// server's are not (`role` is ours); the payload is at most `max_frame`
/// bytes.
pub(crate) fn parse_header(
    b: &[u8],
    role: Role,
    max_frame: usize,
) -> std::result::Result<Option<Header>, Violation> {
    let [first, second, ..] = *b else {
        return Ok(None);
    };
    // tungstenite reports the reserved bits without refusing them, and only
    // once the whole header is there.
    if first & RESERVED_BITS != 0 {
        return Err(Violation::new(
            CloseCode::Protocol,
            "reserved bits set (no extension was negotiated)",
        ));
    }
    let mut cursor = Cursor::new(b);
    if let Some((frame, len)) = FrameHeader::parse(&mut cursor).map_err(refusal)? {
        let masked = frame.mask.is_some();
        let len = check(&frame, masked, len, role, max_frame)?;
        let size = usize::try_from(cursor.position()).unwrap_or(MAX_HEADER);
        return Ok(Some(Header { frame, len, size }));
    }
    if second & MASK_BIT != 0 {
        // Perhaps only the masking key is missing: the header without it
        // (the MASK bit cleared) is judged now, as a bad one cannot become
        // good with 4 more bytes.
        let mut unmasked = [0u8; MAX_HEADER - MASK_LEN];
        let n = b.len().min(unmasked.len());
        unmasked[..n].copy_from_slice(&b[..n]);
        unmasked[1] &= !MASK_BIT;
        let parsed = FrameHeader::parse(&mut Cursor::new(&unmasked[..n])).map_err(refusal)?;
        if let Some((frame, len)) = parsed {
            check(&frame, true, len, role, max_frame)?;
        }
    }
    Ok(None)
}

/// What tungstenite's parser refuses: an unknown opcode (reading from bytes
/// in memory fails no other way).
fn refusal(e: WsError) -> Violation {
    let why = match e {
        WsError::Protocol(ProtocolError::InvalidOpcode(op)) => format!("unknown opcode {op:#x}"),
        e => e.to_string(),
    };
    Violation::new(CloseCode::Protocol, why)
}

/// The checks of [`parse_header`] after tungstenite's: returns the payload
/// length.
fn check(
    frame: &FrameHeader,
    masked: bool,
    len: u64,
    role: Role,
    max_frame: usize,
) -> std::result::Result<usize, Violation> {
    if matches!(frame.opcode, OpCode::Control(_)) && (!frame.is_final || len > MAX_CONTROL) {
        return Err(Violation::new(
            CloseCode::Protocol,
            "fragmented or oversized control frame",
        ));
    }
    match (role, masked) {
        (Role::Server, false) => {
            return Err(Violation::new(
                CloseCode::Protocol,
                "unmasked frame from a client",
            ));
        }
        (Role::Client, true) => {
            return Err(Violation::new(
                CloseCode::Protocol,
                "masked frame from a server",
            ));
        }
        _ => {}
    }
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= max_frame)
        .ok_or_else(|| {
            Violation::new(
                CloseCode::Size,
                format!("frame of {len} bytes is over the limit of {max_frame}"),
            )
        })
}

/// The header of a final frame of `len` payload bytes, masked with `mask`
/// when there is one: its bytes and how many.
pub(crate) fn header(
    opcode: OpCode,
    len: usize,
    mask: Option<[u8; 4]>,
) -> Result<([u8; MAX_HEADER], usize)> {
    let frame = FrameHeader {
        is_final: true,
        opcode,
        mask,
        ..FrameHeader::default()
    };
    let mut head = [0u8; MAX_HEADER];
    let mut rest = &mut head[..];
    frame
        .format(len as u64, &mut rest)
        .map_err(|e| Error::Io(format!("writing a frame header: {e}")))?;
    let n = MAX_HEADER - rest.len();
    Ok((head, n))
}

/// Writes one whole final frame into `f` at `at` (its payload masked with
/// `mask` when there is one) and returns where it ends. `f` only grows: a
/// kept buffer is written over, never zero-filled again.
pub(crate) fn write_frame(
    f: &mut Vec<u8>,
    at: usize,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<usize> {
    let (head, h) = header(opcode, payload.len(), mask)?;
    let end = at + h + payload.len();
    if f.len() < end {
        f.resize(end, 0);
    }
    f[at..at + h].copy_from_slice(&head[..h]);
    copy_masked(&mut f[at + h..end], payload, mask);
    Ok(end)
}

/// A close frame's payload: the code, then as much of `reason` as a control
/// frame holds (cut at a character).
pub(crate) fn close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut payload = u16::from(code).to_be_bytes().to_vec();
    let mut cut = reason.len().min(MAX_CONTROL as usize - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

/// The code and reason of a close frame from the peer (unmasked): `None`
/// when it has no code.
pub(crate) fn parse_close(
    payload: &[u8],
) -> std::result::Result<Option<(CloseCode, &str)>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation::new(CloseCode::Protocol, "close frame of 1 byte")),
        [hi, lo, reason @ ..] => match std::str::from_utf8(reason) {
            Ok(reason) => Ok(Some((
                CloseCode::from(u16::from_be_bytes([*hi, *lo])),
                reason,
            ))),
            Err(_) => Err(Violation::new(
                CloseCode::Invalid,
                "close reason is not UTF-8",
            )),
        },
    }
}

/// Masking keys (RFC 6455 section 5.3: unpredictable, from a strong source
/// of entropy): bytes of the OS generator, refilled in bulk.
pub(crate) struct MaskKeys {
    bytes: [u8; MASK_POOL],
    used: usize,
}

impl MaskKeys {
    /// An empty pool: the first key fills it (servers never ask).
    pub(crate) fn new() -> MaskKeys {
        MaskKeys {
            bytes: [0; MASK_POOL],
            used: MASK_POOL,
        }
    }

    pub(crate) fn next(&mut self) -> std::result::Result<[u8; 4], getrandom::Error> {
        if self.used + MASK_LEN > MASK_POOL {
            getrandom::fill(&mut self.bytes)?;
            self.used = 0;
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(&self.bytes[self.used..self.used + MASK_LEN]);
        self.used += MASK_LEN;
        Ok(m)
    }
}

/// XORs `data` with the masking key (in place), 16 bytes at a time.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = wide_mask(mask);
    let mut chunks = data.chunks_exact_mut(16);
    for c in &mut chunks {
        let m = masked16(c, wide);
        c.copy_from_slice(&m);
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// The masking key repeated over 16 bytes.
fn wide_mask(mask: [u8; 4]) -> u128 {
    u128::from(u32::from_ne_bytes(mask)) * 0x0000_0001_0000_0001_0000_0001_0000_0001
}

/// 16 bytes of `src` XORed with the repeated masking key.
fn masked16(src: &[u8], wide: u128) -> [u8; 16] {
    let mut w = [0u8; 16];
    w.copy_from_slice(src);
    (u128::from_ne_bytes(w) ^ wide).to_ne_bytes()
}

/// Copies `src` into `dst` (of the same length), XORed with the masking key
/// if there is one, 16 bytes at a time.
pub(crate) fn copy_masked(dst: &mut [u8], src: &[u8], mask: Option<[u8; 4]>) {
    let Some(mask) = mask else {
        dst.copy_from_slice(src);
        return;
    };
    let wide = wide_mask(mask);
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(&masked16(s, wide));
    }
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::coding::{Control, Data};

    #[test]
    fn masking_is_its_own_inverse_for_every_length() {
        for len in 0..20 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut d = orig.clone();
            apply_mask(&mut d, [1, 2, 3, 0xFF]);
            for (i, b) in d.iter().enumerate() {
                assert_eq!(*b, orig[i] ^ [1, 2, 3, 0xFF][i % 4]);
            }
            apply_mask(&mut d, [1, 2, 3, 0xFF]);
            assert_eq!(d, orig);
        }
    }

    #[test]
    fn wide_masking_matches_bytewise_masking_at_every_length() {
        let mask = [0x9A, 0x02, 0x7F, 0xE1];
        for len in 0..70 {
            let orig: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let want: Vec<u8> = orig
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let mut inplace = orig.clone();
            apply_mask(&mut inplace, mask);
            assert_eq!(inplace, want, "in place, {len} bytes");
            let mut copied = vec![0u8; len];
            copy_masked(&mut copied, &orig, Some(mask));
            assert_eq!(copied, want, "copied, {len} bytes");
            copy_masked(&mut copied, &orig, None);
            assert_eq!(copied, orig, "copied unmasked, {len} bytes");
        }
    }

    fn code(b: &[u8], role: Role, max_frame: usize) -> u16 {
        u16::from(parse_header(b, role, max_frame).unwrap_err().code)
    }

    #[test]
    fn headers_are_checked() {
        assert!(parse_header(&[0x82], Role::Client, 10).unwrap().is_none());
        let h = parse_header(&[0x82, 3], Role::Client, 10).unwrap().unwrap();
        assert_eq!(
            (h.frame.is_final, h.frame.opcode, h.len, h.size),
            (true, OpCode::Data(Data::Binary), 3, 2)
        );
        assert_eq!(code(&[0x82, 3], Role::Server, 10), 1002);
        assert_eq!(code(&[0x82, 0x83], Role::Client, 10), 1002);
        assert_eq!(code(&[0x82, 11], Role::Client, 10), 1009);
        assert_eq!(code(&[0xC2, 1], Role::Client, 10), 1002);
        assert_eq!(code(&[0x83, 1], Role::Client, 10), 1002);
        assert_eq!(code(&[0x09, 1], Role::Client, 10), 1002);
    }

    #[test]
    fn a_masked_header_is_complete_with_its_key() {
        let b = [0x89, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
        assert!(parse_header(&b[..7], Role::Server, 1000).is_err());
        let b = [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
        for n in 0..b.len() {
            assert!(parse_header(&b[..n], Role::Server, 1000).unwrap().is_none());
        }
        let h = parse_header(&b, Role::Server, 1000).unwrap().unwrap();
        assert_eq!((h.frame.mask, h.len, h.size), (Some([1, 2, 3, 4]), 256, 8));
        let h = parse_header(&[0x88, 0x80, 9, 8, 7, 6], Role::Server, 0)
            .unwrap()
            .unwrap();
        assert_eq!(h.frame.opcode, OpCode::Control(Control::Close));
    }

    #[test]
    fn a_bad_header_is_refused_before_its_masking_key() {
        // The verdict does not wait for the 4 bytes of the key.
        assert_eq!(
            code(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], Role::Server, 100),
            1009
        );
        assert_eq!(code(&[0x82, 0xFE, 0, 101], Role::Server, 100), 1009);
        assert_eq!(code(&[0x83, 0x81], Role::Server, 100), 1002);
        assert_eq!(code(&[0x09, 0x81], Role::Server, 100), 1002);
        assert_eq!(code(&[0x82, 0x81], Role::Client, 100), 1002);
        // The reserved bits need only the first two bytes.
        assert_eq!(code(&[0xA2, 0xFF], Role::Server, 100), 1002);
        // An incomplete length is waited for.
        assert!(
            parse_header(&[0x83, 0xFF, 0], Role::Server, 100)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn frames_are_written_as_tungstenite_reads_them() {
        for (len, size) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            for mask in [None, Some([5, 6, 7, 8])] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut f = vec![0xEE; 3];
                let op = OpCode::Data(Data::Binary);
                let end = write_frame(&mut f, 3, op, &payload, mask).unwrap();
                let size = size + mask.map_or(0, |_| 4);
                assert_eq!(end, 3 + size + len);
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                let h = parse_header(&f[3..], role, usize::MAX).unwrap().unwrap();
                assert_eq!(
                    (h.frame.opcode, h.frame.mask, h.len, h.size),
                    (op, mask, len, size)
                );
                let mut back = f[3 + size..end].to_vec();
                if let Some(mask) = mask {
                    apply_mask(&mut back, mask);
                }
                assert_eq!(back, payload);
            }
        }
    }

    #[test]
    fn close_payloads_round_trip_and_are_cut_at_a_character() {
        let p = close_payload(CloseCode::Error, "the target failed");
        assert_eq!(&p[..2], &[0x03, 0xF3]);
        assert_eq!(
            parse_close(&p).unwrap(),
            Some((CloseCode::Error, "the target failed"))
        );
        assert_eq!(
            parse_close(&close_payload(CloseCode::from(4000), "")).unwrap(),
            Some((CloseCode::from(4000), ""))
        );
        let long = "é".repeat(100);
        let p = close_payload(CloseCode::Normal, &long);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(parse_close(&[]).unwrap(), None);
        assert_eq!(u16::from(parse_close(&[3]).unwrap_err().code), 1002);
        assert_eq!(
            u16::from(parse_close(&[3, 0xE8, 0xFF]).unwrap_err().code),
            1007
        );
        // Every code comes back as it was sent.
        for code in [
            0u16,
            999,
            1000,
            1004,
            1005,
            1016,
            2999,
            3000,
            4999,
            5000,
            u16::MAX,
        ] {
            assert_eq!(u16::from(CloseCode::from(code)), code);
        }
    }
}
