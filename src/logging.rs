//! Logging through the `log` facade. jumpwire is silent unless the host asks:
//! a Rust host installs its own logger; a C host sets `JW_LOG` (`error`,
//! `warn`, `info`, `debug`, `trace`) and gets lines on stderr.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::Once;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                Level::Error => "ERROR",
                Level::Warn => "WARN",
                Level::Info => "INFO",
                Level::Debug => "DEBUG",
                Level::Trace => "TRACE",
            };
            let _ = writeln!(std::io::stderr().lock(), "jumpwire {level}: {}", r.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the stderr logger if `JW_LOG` asks for one and no other logger is
/// installed. Cheap after the first call.
pub(crate) fn init_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(value) = std::env::var("JW_LOG") else {
            return;
        };
        let level = match value.trim().to_ascii_lowercase().as_str() {
            "error" => LevelFilter::Error,
            "warn" | "warning" => LevelFilter::Warn,
            "info" => LevelFilter::Info,
            "debug" | "1" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            _ => return,
        };
        if log::set_logger(&Stderr).is_ok() {
            log::set_max_level(level);
        }
    });
}
