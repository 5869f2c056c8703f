//! The command's logger: the library's `log` lines (and the command's own)
//! on stderr, `jumpwire LEVEL: message`, at the level `-v` asks for
//! (warnings by default, `-v` info, `-vv` debug, `-vvv` trace; `JW_LOG`,
//! as the library reads it, when it asks for more). And the live status
//! line of `forward` on a terminal, which log lines clear before they are
//! written.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::Mutex;

struct Stderr {
    level: LevelFilter,
    /// At `-v`: the lines each connection of a listener or server makes,
    /// which the library logs at debug (accepted, done), pass too.
    connections: bool,
}

/// Targets whose debug lines are about one connection (accepted, done).
const CONNECTION_TARGETS: &[&str] = &["jumpwire::acceptor", "jumpwire::forward"];

/// The status line on the terminal now, if one is (a log line clears it);
/// the lock also keeps a log line and a status update apart.
static STATUS: Mutex<Option<String>> = Mutex::new(None);

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
            || (self.connections
                && m.level() <= Level::Debug
                && CONNECTION_TARGETS.contains(&m.target()))
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // A connection line let through at -v is info to the command.
        let shown = if r.level() > self.level {
            Level::Info
        } else {
            r.level()
        };
        let level = match shown {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let mut status = STATUS.lock().unwrap_or_else(|p| p.into_inner());
        let mut e = std::io::stderr().lock();
        if status.take().is_some() {
            let _ = e.write_all(b"\r\x1b[K");
        }
        let _ = writeln!(e, "jumpwire {level}: {}", r.args());
    }

    fn flush(&self) {}
}

/// The level `JW_LOG` asks for, if any.
fn env_level() -> Option<LevelFilter> {
    let v = std::env::var("JW_LOG").ok()?;
    Some(match v.trim().to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" | "1" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Installs the logger for `verbose` times `-v`.
pub fn init(verbose: u8) {
    let mut level = match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if let Some(env) = env_level() {
        level = level.max(env);
    }
    let connections = level >= LevelFilter::Info;
    let max = if connections {
        level.max(LevelFilter::Debug)
    } else {
        level
    };
    let logger: &'static Stderr = Box::leak(Box::new(Stderr { level, connections }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// Shows `text` as the status line (on a terminal: the caller checks);
/// written only when it differs from what is shown.
pub fn status(text: &str) {
    let mut status = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    if status.as_deref() == Some(text) {
        return;
    }
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[K{text}");
    let _ = e.flush();
    *status = Some(text.to_string());
}

/// Clears the status line, if one is shown.
pub fn end_status() {
    let mut status = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    if status.take().is_some() {
        let _ = std::io::stderr().lock().write_all(b"\r\x1b[K");
    }
}
