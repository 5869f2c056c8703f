//! The demo: forward a local TCP port onto the echo driver and send bytes round
//! through it, printing what happens. Run with `cargo run --release --example demo`.

use jumpwire::forward::Listener;
use jumpwire::network::Network;
use std::time::{Duration, Instant};

fn main() -> Result<(), jumpwire::Error> {
    let target = Network::new("echo:")?;
    let listener = Listener::bind("tcp://127.0.0.1:0", &target)?;
    println!("forwarding {} -> echo:", listener.address());

    let s = jumpwire::connect(listener.address(), Some(Duration::from_secs(5)))?;
    println!("connected to {}", s.name());
    let mut buf = vec![0u8; 64 * 1024];
    for msg in ["hello", "from", "jumpwire"] {
        s.send(msg.as_bytes(), Some(Duration::from_secs(5)))?;
        let n = s
            .receive(&mut buf, Some(Duration::from_secs(5)))?
            .unwrap_or(0);
        println!(
            "sent {msg:?}, got back {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    let total = 64 << 20;
    let chunk = vec![0xa5u8; 64 * 1024];
    let t0 = Instant::now();
    let sender = {
        let s = &s;
        let chunk = &chunk;
        move || -> jumpwire::Result<()> {
            for _ in 0..total / chunk.len() {
                s.send(chunk, Some(Duration::from_secs(10)))?;
            }
            s.send_eof()
        }
    };
    let received = std::thread::scope(|scope| {
        let h = scope.spawn(sender);
        let mut got = 0usize;
        while let Some(n) = s.receive(&mut buf, Some(Duration::from_secs(10)))? {
            got += n;
        }
        h.join().expect("sender thread")?;
        Ok::<usize, jumpwire::Error>(got)
    })?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sent {} MiB and got {} MiB back after send_eof, end of stream seen, {:.0} MiB/s round trip",
        total >> 20,
        received >> 20,
        (received as f64 / (1 << 20) as f64) / secs
    );
    s.close();
    listener.close();
    println!("closed");
    Ok(())
}
