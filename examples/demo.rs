//! The demo: the whole routed path on one machine. An embedded router; an
//! exporter exporting a TCP echo service through it; a client that dials the
//! router with the same stream token, exchanges data with the echo service
//! through router and exporter, and prints what happened. Run with
//! `cargo run --release --example demo`.

use jumpwire::network::Network;
use jumpwire::router::{self, Router, token};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const KEY: &str = "demo-key";

/// A TCP echo service (the "device"), one thread per connection.
fn tcp_echo() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok(format!("tcp://{addr}"))
}

fn main() -> Result<(), jumpwire::Error> {
    let wait = Some(Duration::from_secs(10));
    let r = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}"))?;
    println!("router listening on {}", r.address());
    let device = tcp_echo().map_err(|e| jumpwire::Error::io("echo service", &e))?;
    println!("TCP echo service (the device) on {device}");
    let t = token::mint(KEY, "demo-stream", Duration::from_secs(60))?;
    println!(
        "minted a stream token for \"demo-stream\" ({} bytes)",
        t.len()
    );

    let exporter = {
        let (url, t) = (r.address().to_string(), t.clone());
        let target = Network::new(&device)?;
        std::thread::spawn(move || router::export(&url, &t, &target, wait))
    };
    println!("exporter: exporting {device} through the router");

    let s = router::connect(r.address(), &t, wait)?;
    println!("client: connected to {} with the same token", s.name());
    let mut buf = vec![0u8; 256 * 1024];
    for msg in ["hello", "from", "jumpwire"] {
        s.send(msg.as_bytes(), wait)?;
        let n = s.receive(&mut buf, wait)?.unwrap_or(0);
        println!(
            "client: sent {msg:?}, got back {:?} (client -> router -> exporter -> TCP echo and back)",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    let total = 64 << 20;
    let chunk = vec![0xa5u8; 256 * 1024];
    let t0 = Instant::now();
    let received = std::thread::scope(|scope| {
        let h = scope.spawn(|| -> jumpwire::Result<()> {
            for _ in 0..total / chunk.len() {
                s.send(&chunk, wait)?;
            }
            s.send_eof()
        });
        let mut got = 0usize;
        while let Some(n) = s.receive(&mut buf, wait)? {
            got += n;
        }
        h.join().expect("sender thread")?;
        Ok::<usize, jumpwire::Error>(got)
    })?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "client: sent {} MiB and got {} MiB back after send_eof, end of stream seen, {:.0} MiB/s round trip",
        total >> 20,
        received >> 20,
        (received as f64 / (1 << 20) as f64) / secs
    );
    s.close();
    let exported = exporter.join().expect("exporter thread");
    println!("exporter: finished: {exported:?}");
    r.close();
    println!("router closed");
    exported
}
