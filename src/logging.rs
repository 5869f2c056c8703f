//! Logging through the `log` facade. jumpwire is silent unless the host asks:
//! a Rust host installs its own logger; a C host sets `JW_LOG` (`error`,
//! `warn`, `info`, `debug`, `trace`) and gets lines on stderr, or hands each
//! line to a callback of its own ([`set_callback`], `jw_set_log_callback`).

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, RwLock};

/// Where the host wants log lines: `(level, target, message)`, level 1
/// (error) to 5 (trace). The C boundary wraps the host's C function in one.
pub(crate) type Callback = dyn Fn(i32, &str, &str) + Send + Sync;

#[derive(Clone)]
struct Sink {
    f: std::sync::Arc<Callback>,
    level: LevelFilter,
}

/// jumpwire's logger: lines go to the host's callback when one is set, else
/// to stderr at the level `JW_LOG` asks for.
struct Host {
    /// Read-held while a callback runs, so that replacing the callback waits
    /// for the calls in progress.
    sink: RwLock<Option<Sink>>,
    /// `JW_LOG`'s level (`Off` when unset).
    env: RwLock<LevelFilter>,
}

static HOST: Host = Host {
    sink: RwLock::new(None),
    env: RwLock::new(LevelFilter::Off),
};
/// Whether `HOST` is the process's logger.
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread runs the host's callback: lines it logs then
    /// (through jumpwire calls the callback makes) are dropped, not recursed.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn level_number(l: Level) -> i32 {
    match l {
        Level::Error => 1,
        Level::Warn => 2,
        Level::Info => 3,
        Level::Debug => 4,
        Level::Trace => 5,
    }
}

/// The level filter for a level number (0 = off, 1 error ... 5 trace).
pub(crate) fn filter_of(n: i32) -> Option<LevelFilter> {
    Some(match n {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        5 => LevelFilter::Trace,
        _ => return None,
    })
}

impl Host {
    fn env_level(&self) -> LevelFilter {
        *self.env.read().unwrap_or_else(|p| p.into_inner())
    }

    fn update_max_level(&self, sink: Option<&Sink>) {
        let cb = sink.map_or(LevelFilter::Off, |s| s.level);
        log::set_max_level(cb.max(self.env_level()));
    }
}

impl Log for Host {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if IN_CALLBACK.with(Cell::get) {
            return;
        }
        let sink = self.sink.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = &*sink {
            if r.level() <= s.level {
                IN_CALLBACK.with(|c| c.set(true));
                // Reset whatever happens (a Rust callback may panic).
                let _reset = Reset;
                (s.f)(level_number(r.level()), r.target(), &r.args().to_string());
            }
            return;
        }
        drop(sink);
        if r.level() <= self.env_level() {
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

struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(false));
    }
}

/// Makes `HOST` the process's logger unless another one is; returns whether
/// it is.
fn install() -> bool {
    if INSTALLED.load(Ordering::Acquire) {
        return true;
    }
    if log::set_logger(&HOST).is_ok() {
        INSTALLED.store(true, Ordering::Release);
    }
    INSTALLED.load(Ordering::Acquire)
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
        *HOST.env.write().unwrap_or_else(|p| p.into_inner()) = level;
        if install() {
            let sink = HOST.sink.read().unwrap_or_else(|p| p.into_inner());
            HOST.update_max_level(sink.as_ref());
        }
    });
}

/// Why a log callback cannot be set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetError {
    /// Called from inside the callback (it would wait for itself).
    FromCallback,
    /// The host (a Rust program) installed a `log` logger of its own.
    OtherLogger,
}

/// Sends every line at `level` or more severe to `f(level, target,
/// message)` instead of stderr; `None` goes back to `JW_LOG`. Waits for calls
/// of the previous callback in progress on other threads to return.
pub(crate) fn set_callback(sink: Option<(Box<Callback>, LevelFilter)>) -> Result<(), SetError> {
    if IN_CALLBACK.with(Cell::get) {
        return Err(SetError::FromCallback);
    }
    init_from_env();
    if !install() {
        return Err(SetError::OtherLogger);
    }
    let sink = sink.map(|(f, level)| Sink {
        f: std::sync::Arc::from(f),
        level,
    });
    let mut s = HOST.sink.write().unwrap_or_else(|p| p.into_inner());
    HOST.update_max_level(sink.as_ref());
    *s = sink;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_callback_gets_lines_at_its_level_and_nothing_recurses() {
        let lines: Arc<Mutex<Vec<(i32, String, String)>>> = Arc::default();
        let sink = lines.clone();
        let f = move |level: i32, target: &str, msg: &str| {
            sink.lock()
                .unwrap()
                .push((level, target.to_string(), msg.to_string()));
            // A line logged from inside the callback is dropped, not recursed,
            // and the callback cannot be replaced from inside itself.
            log::error!("from inside the callback");
            assert_eq!(set_callback(None), Err(SetError::FromCallback));
        };
        set_callback(Some((Box::new(f), LevelFilter::Info))).unwrap();
        log::info!("hello {}", 1);
        log::debug!("too detailed");
        log::warn!("a warning");
        set_callback(None).unwrap();
        log::error!("after the callback went");
        let lines = lines.lock().unwrap().clone();
        let ours: Vec<_> = lines
            .iter()
            .filter(|(_, t, _)| t == "jumpwire::logging::tests")
            .collect();
        assert_eq!(
            ours,
            [
                &(3, "jumpwire::logging::tests".into(), "hello 1".into()),
                &(2, "jumpwire::logging::tests".into(), "a warning".into()),
            ]
        );
        assert_eq!(filter_of(6), None);
        assert_eq!(filter_of(0), Some(LevelFilter::Off));
    }
}
