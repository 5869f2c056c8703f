//! The router server's handling of a caller's request frames: the input is
//! the body of a `RouterService/Stream` call (gRPC length-prefixed
//! `StreamRequest` messages, as bytes), sent by a plain HTTP/2 client to a
//! real in-process router, paired with a jumpwire router stream that reads
//! what the router relays. A GOAWAY frame is appended, so every input ends
//! the pair.
//!
//! A model decodes the same bytes (gRPC framing, then prost) and says what
//! the reader must get: the payloads of the DATA frames up to the first
//! GOAWAY, then the end of the stream; or, when a frame is malformed (cut
//! short, compressed, over 64 MiB, not a `StreamRequest`) or is an
//! RST_STREAM, an error (after at most the DATA before it). The router must
//! never hang (the reader gives up after 10 s) and must serve the next
//! input's pair, so each run also checks that it is still alive.
#![no_main]

use bytes::Bytes;
use jumpwire::router::pb::StreamRequest;
use jumpwire::router::token::mint;
use jumpwire::router::{MAX_MESSAGE, Router};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const KEY: &str = "fuzz-router-key";
/// `StreamRequest { frame_type: GOAWAY }`, gRPC-framed.
const GOAWAY: [u8; 7] = [0, 0, 0, 0, 2, 0x10, 0x07];

struct World {
    router: Router,
    rt: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World {
        router: Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).expect("a router"),
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    })
}

#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Error,
}

/// What the reader must get: the DATA payloads and how its stream ends.
fn model(mut b: &[u8]) -> (Vec<u8>, End) {
    let mut data = Vec::new();
    loop {
        let [flag, l0, l1, l2, l3, rest @ ..] = b else {
            return (data, End::Error);
        };
        let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        // The body ends right after a whole message header (a non-empty
        // message, none of its bytes): tonic's decoder takes that for a clean
        // end of the request stream, and the router then tells the peer with
        // a GOAWAY of its own (once the caller is seen to stay).
        if *flag == 0 && len > 0 && len <= MAX_MESSAGE && rest.is_empty() {
            return (data, End::Eof);
        }
        if *flag != 0 || len > MAX_MESSAGE || rest.len() < len {
            return (data, End::Error);
        }
        let Ok(f) = StreamRequest::decode(&rest[..len]) else {
            return (data, End::Error);
        };
        b = &rest[len..];
        match f.frame_type {
            0 => data.extend_from_slice(&f.payload),
            3 => return (data, End::Error),
            7 => return (data, End::Eof),
            _ => {}
        }
    }
}

fuzz_target!(|input: &[u8]| {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut sent = input.to_vec();
    sent.extend_from_slice(&GOAWAY);
    let (want, want_end) = model(&sent);
    let w = world();
    let sub = format!("fuzz-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let token = mint(KEY, &sub, Duration::from_secs(600)).unwrap();
    let address = w.router.address().to_string();
    let reader = jumpwire::router::connect(&address, &token, Some(Duration::from_secs(10)))
        .expect("the router takes a caller");

    let body = Bytes::from(sent);
    let authority = address.strip_prefix("grpc://").unwrap().to_string();
    let caller = w.rt.spawn(async move {
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driving = tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = http::Request::post(format!(
            "http://{authority}/jumpstarter.v1.RouterService/Stream"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(body, true).unwrap();
        // Held until the reader is done; dropped with the task.
        (response, send, client, driving)
    });

    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let end = loop {
        match reader.receive(&mut buf, Some(Duration::from_secs(10))) {
            Ok(Some(n)) => got.extend_from_slice(&buf[..n]),
            Ok(None) => break End::Eof,
            Err(jumpwire::Error::Timeout) => panic!("the router stream hangs"),
            Err(_) => break End::Error,
        }
    };
    assert_eq!(end, want_end, "how the stream ended");
    if end == End::Eof {
        assert!(
            got == want,
            "the data ({} bytes, want {})",
            got.len(),
            want.len()
        );
    } else {
        assert!(want.starts_with(&got), "the data is not what was sent");
    }
    reader.close();
    let (_response, _send, _client, driving) = w.rt.block_on(caller).unwrap();
    driving.abort();
});
