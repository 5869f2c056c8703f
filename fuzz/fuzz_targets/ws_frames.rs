//! The websocket frame parser and message assembly (server and client
//! side), fed over a socket pair after the handshake. The first three bytes
//! pick the side, the limits and the receive buffer size; the rest are
//! frames from the peer, after which the peer's side of the connection ends.
//!
//! A small model of RFC 6455 as jumpwire applies it says what must come out:
//! the messages, in receive-sized chunks, then how the stream ends (the
//! peer's close frame with no code, 1000 or 1001 = end of stream; another
//! code, a protocol breach, a message over the limits, or the connection
//! ending without a close frame = an error of the matching kind). What jumpwire writes back is checked too: valid frames of
//! its side, a pong for each ping, then exactly one close frame.
#![no_main]

use jumpwire::Error;
use jumpwire::fuzzing::{unix_pair, websocket_over};
use jumpwire::websocket::Limits;
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::Shutdown;

const SIZES: [usize; 8] = [0, 1, 5, 125, 126, 1000, 65_535, 16 << 20];
/// Inputs longer than this are skipped: the socket pair buffers this much.
const MAX_INPUT: usize = 100_000;
const BUFS: [usize; 8] = [1, 2, 7, 64, 125, 4096, 20_000, 70_000];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Protocol(u16),
    TooLarge,
    Connection,
}

struct Frame<'a> {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
    rest: &'a [u8],
}

/// Reads one frame of a peer that masks (`masked`) or does not; `Err` is
/// how the stream ends when the frame is bad or incomplete.
fn frame(b: &[u8], masked: bool, max_frame: usize) -> Result<Frame<'_>, End> {
    if b.len() < 2 {
        return Err(End::Connection);
    }
    if b[0] & 0x70 != 0 {
        return Err(End::Protocol(1002));
    }
    let (fin, opcode) = (b[0] & 0x80 != 0, b[0] & 0x0F);
    let (len, mut at) = match b[1] & 0x7F {
        126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
        127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
        126 | 127 => return Err(End::Connection),
        n => (u64::from(n), 2),
    };
    let control = opcode >= 8;
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) || (control && (!fin || len > 125)) {
        return Err(End::Protocol(1002));
    }
    if (b[1] & 0x80 != 0) != masked {
        return Err(End::Protocol(1002));
    }
    if len > max_frame as u64 {
        return Err(End::TooLarge);
    }
    let mask = if masked {
        let m: [u8; 4] = b
            .get(at..at + 4)
            .ok_or(End::Connection)?
            .try_into()
            .unwrap();
        at += 4;
        m
    } else {
        [0; 4]
    };
    let len = len as usize;
    let data = b.get(at..at + len).ok_or(End::Connection)?;
    let payload = data
        .iter()
        .enumerate()
        .map(|(i, x)| x ^ mask[i % 4])
        .collect();
    Ok(Frame {
        fin,
        opcode,
        payload,
        rest: &b[at + len..],
    })
}

/// What a receiver must see: the messages, the pings answered, the end and
/// the close code sent back.
fn model(mut b: &[u8], masked: bool, limits: Limits) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, End, u16) {
    let (mut messages, mut pings) = (Vec::new(), Vec::new());
    let mut partial: Option<(u8, Vec<u8>)> = None;
    loop {
        let f = match frame(b, masked, limits.max_frame) {
            Ok(f) => f,
            Err(End::Protocol(c)) => return (messages, pings, End::Protocol(c), c),
            Err(End::TooLarge) => return (messages, pings, End::TooLarge, 1009),
            Err(e) => return (messages, pings, e, 1000),
        };
        b = f.rest;
        let utf8 = |m: &[u8]| std::str::from_utf8(m).is_ok();
        match f.opcode {
            9 => pings.push(f.payload),
            10 => {}
            8 => {
                return match f.payload.len() {
                    0 => (messages, pings, End::Eof, 1000),
                    1 => (messages, pings, End::Protocol(1002), 1002),
                    _ if !utf8(&f.payload[2..]) => (messages, pings, End::Protocol(1007), 1007),
                    _ => {
                        // 1000 and 1001 end the stream; any other code is
                        // the peer's error. Either way the code is echoed.
                        let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                        let end = if matches!(code, 1000 | 1001) {
                            End::Eof
                        } else {
                            End::Connection
                        };
                        (messages, pings, end, code)
                    }
                };
            }
            op if f.fin && partial.is_none() && op != 0 => {
                if op == 1 && !utf8(&f.payload) {
                    return (messages, pings, End::Protocol(1007), 1007);
                }
                if f.payload.len() > limits.max_message {
                    return (messages, pings, End::TooLarge, 1009);
                }
                messages.push(f.payload);
            }
            op => {
                let (opcode, mut msg) = match (op, partial.take()) {
                    (0, Some(p)) => p,
                    (0, None) | (_, Some(_)) => {
                        return (messages, pings, End::Protocol(1002), 1002);
                    }
                    (op, None) => (op, Vec::new()),
                };
                if msg.len() + f.payload.len() > limits.max_message {
                    return (messages, pings, End::TooLarge, 1009);
                }
                msg.extend_from_slice(&f.payload);
                if !f.fin {
                    partial = Some((opcode, msg));
                } else if opcode == 1 && !utf8(&msg) {
                    return (messages, pings, End::Protocol(1007), 1007);
                } else {
                    messages.push(msg);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [how, frame_limit, message_limit, input @ ..] = data else {
        return;
    };
    let server = how & 1 != 0;
    let buf_size = BUFS[usize::from(how >> 1) % BUFS.len()];
    let limits = Limits {
        max_frame: SIZES[usize::from(*frame_limit) % SIZES.len()],
        max_message: SIZES[usize::from(*message_limit) % SIZES.len()],
    };
    if input.len() > MAX_INPUT {
        return;
    }
    // All of it fits the socket's buffer: written before anything reads.
    let (raw, mut peer) = unix_pair().expect("a socket pair");
    peer.write_all(input).expect("feeding the frames");
    peer.shutdown(Shutdown::Write).unwrap();
    let ws = websocket_over(raw, server, limits);

    let (messages, pings, end, code) = model(&data[3..], server, limits);
    let mut want_chunks = Vec::new();
    for m in &messages {
        if m.is_empty() {
            want_chunks.push(Vec::new());
        }
        want_chunks.extend(m.chunks(buf_size).map(<[u8]>::to_vec));
    }
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; buf_size];
    let got_end = loop {
        match ws.receive(&mut buf, Some(std::time::Duration::from_secs(10))) {
            Ok(Some(n)) => chunks.push(buf[..n].to_vec()),
            Ok(None) => break End::Eof,
            Err(Error::Protocol(_)) => break End::Protocol(code),
            Err(Error::TooLarge(_)) => break End::TooLarge,
            Err(Error::Connection(_)) => break End::Connection,
            Err(e) => panic!("unexpected error {e:?}"),
        }
        assert!(
            chunks.len() <= want_chunks.len(),
            "more chunks than the model has"
        );
    };
    assert_eq!(chunks, want_chunks, "the messages");
    assert_eq!(got_end, end, "how the stream ended");
    // The end repeats.
    assert!(matches!(
        (ws.receive(&mut buf, None), end),
        (Ok(None), End::Eof)
            | (Err(Error::Protocol(_)), End::Protocol(_))
            | (Err(Error::TooLarge(_)), End::TooLarge)
            | (Err(Error::Connection(_)), End::Connection)
    ));
    drop(ws);

    // What went back: pongs, then one close frame with the code.
    let out = jumpwire::fuzzing::read_to_end_or_reset(&mut peer).unwrap();
    let mut rest = &out[..];
    let mut sent = Vec::new();
    while !rest.is_empty() {
        let f = frame(rest, !server, 125).expect("jumpwire writes valid frames");
        assert!(f.fin);
        sent.push((f.opcode, f.payload));
        rest = f.rest;
    }
    let Some((8, close)) = sent.pop() else {
        panic!("no close frame at the end: {sent:?}");
    };
    assert_eq!(
        u16::from_be_bytes([close[0], close[1]]),
        code,
        "the close code"
    );
    assert!(
        std::str::from_utf8(&close[2..]).is_ok(),
        "close reason not UTF-8"
    );
    let pongs: Vec<Vec<u8>> = sent
        .into_iter()
        .map(|(op, p)| {
            assert_eq!(op, 10, "only pongs before the close");
            p
        })
        .collect();
    assert_eq!(pongs, pings, "a pong for each ping");
});
