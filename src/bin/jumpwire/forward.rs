//! `jumpwire forward LISTEN_URL TARGET_URL`: a [`Listener`] until stopped.

use crate::args::{Parsed, Spec};
use crate::{Failure, logger, network, say, stop};
use crossbeam_channel::RecvTimeoutError;
use jumpwire::forward::Listener;
use jumpwire::url::Endpoint;
use std::io::IsTerminal;
use std::time::Duration;

pub static SPEC: Spec = Spec {
    name: "forward",
    usage: "\
Usage: jumpwire forward [-v] LISTEN_URL TARGET_URL [--token TOKEN]

Listens on LISTEN_URL and forwards each connection it accepts to a new
stream of TARGET_URL, both ways, until SIGINT (Ctrl-C) or SIGTERM, which
close every forwarded connection and exit 0.

LISTEN_URL   tcp://HOST:PORT[?max_connections=N] (port 0 picks a free one),
             unix:/PATH, unix:@NAME, or ws://HOST:PORT[?OPTIONS] (the
             websocket bridge: each websocket client's messages go to the
             target as bytes, its bytes come back as binary messages)
TARGET_URL   any stream URL: tcp://, udp://, unix:, vsock://, dbus:, ws://,
             wss://, echo:, a Jumpstarter session's driver
             (jumpstarter:?driver=NAME inside jmp shell: `j network
             forward-tcp`; jumpstarter:unix:/PATH?driver=NAME; a lease's
             jumpstarter:lease?driver=NAME&lease=LEASE[&client=ALIAS]
             through its lab, with the client configuration of `jmp`), or
             a router's grpc(s)://HOST:PORT with --token

Prints the bound address (with the real port) on stdout, one line. At -v,
logs each connection on stderr. On a terminal, stderr shows how many
connections are open and how many were refused.

Options:
  --token TOKEN   TARGET_URL is a router: each connection is a router
                  stream with this stream token (`jumpwire router token`)
  -v, -vv         log connections (info), debug lines
  -h, --help      this text

Example:
  jumpwire forward tcp://127.0.0.1:5201 tcp://192.168.1.2:5201
",
    flags: &[],
    values: &["--token"],
};

/// How often the status line is redrawn.
const TICK: Duration = Duration::from_millis(250);

pub fn run(p: Parsed) -> Result<(), Failure> {
    let [listen, target] = p.exact(["LISTEN_URL", "TARGET_URL"])?;
    let signals = stop::signals()?;
    let target = network(target, p.value("--token"))?;
    let listener = Listener::bind(listen, &target)?;
    say(listener.address())?;
    if matches!(target.endpoint(), Endpoint::Dbus(_)) {
        if let Ok(bus) = listener.dbus_address() {
            log::info!(
                "{}: D-Bus clients use the address {bus}",
                listener.address()
            );
        }
    }
    // A live count on a terminal: connections and bytes each way.
    let live = std::io::stderr().is_terminal();
    let sig = if live {
        loop {
            let st = listener.stats();
            logger::status(&format!(
                "{}: {} open, {} accepted, {} refused, {} in, {} out",
                listener.address(),
                st.active,
                st.accepted,
                st.refused,
                bytes(st.bytes_received),
                bytes(st.bytes_sent)
            ));
            match signals.recv_timeout(TICK) {
                Ok(sig) => break Ok(sig),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Err(()),
            }
        }
    } else {
        signals.recv().map_err(|_| ())
    };
    logger::end_status();
    let st = listener.stats();
    log::info!(
        "{}: accepted {}, refused {}, bytes in {}, bytes out {}",
        listener.address(),
        st.accepted,
        st.refused,
        st.bytes_received,
        st.bytes_sent
    );
    match sig {
        Ok(sig) => log::info!("{}: {sig}: closing", listener.address()),
        Err(_) => return Err(Failure::Runtime("the signal thread ended".into())),
    }
    listener.close();
    Ok(())
}

/// A byte count as people read it: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
