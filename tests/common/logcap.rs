//! A test logger that keeps every line the library logs at `info` or above
//! (`LEVEL message`), for tests that check that refusals are logged.

use std::sync::{Mutex, Once, PoisonError};

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}", r.level(), r.args());
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Installs the logger (once; panics if another logger is installed).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// How many captured lines contain every one of `parts`.
pub fn count(parts: &[&str]) -> usize {
    install();
    let lines = CAPTURE.0.lock().unwrap_or_else(PoisonError::into_inner);
    lines
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}
