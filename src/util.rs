//! Small helpers every module uses: locking that ignores poisoning, and
//! timeouts turned into deadlines and back.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Locks a mutex, ignoring poisoning (a panicking holder cannot leave our
/// simple states inconsistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Converts a relative timeout into an absolute deadline (`None` = forever).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

/// What is left of `deadline` as a timeout (`None` = forever; zero once it
/// has passed).
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_and_what_remains_of_it() {
        assert_eq!(deadline(None), None);
        assert_eq!(remaining(None), None);
        let d = deadline(Some(Duration::from_secs(60)));
        let left = remaining(d).unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
        assert_eq!(remaining(Some(Instant::now())), Some(Duration::ZERO));
        // A timeout too large for an Instant is as good as forever.
        assert!(deadline(Some(Duration::MAX)).unwrap() > Instant::now());
    }

    #[test]
    fn a_poisoned_mutex_still_locks() {
        let m = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let _g = m.lock().unwrap();
            panic!("poison");
        });
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
