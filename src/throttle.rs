//! Login throttling: failures counted per key (a user name, a client address) in fixed windows;
//! a key over its limit is refused until its window ends. In memory, per server.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys tracked at most; expired windows are dropped when the table is full.
const KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: i64,
    failures: u32,
}

impl Throttle {
    /// `Err(seconds)` to wait when `key` has `limit` or more failures in its current window.
    pub fn check(&self, key: &str, limit: u32, window: i64, now: i64) -> Result<(), u64> {
        let Ok(windows) = self.windows.lock() else {
            return Ok(());
        };
        match windows.get(key) {
            Some(w) if now < w.start + window && w.failures >= limit => {
                Err(u64::try_from(w.start + window - now).unwrap_or(1).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Takes back one failure of `key` (an attempt counted in advance that succeeded).
    pub fn refund(&self, key: &str, window: i64, now: i64) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if let Some(w) = windows.get_mut(key) {
            if now < w.start + window {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// Counts one failure for `key`.
    pub fn fail(&self, key: &str, window: i64, now: i64) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= KEYS {
            windows.retain(|_, w| now < w.start + window);
        }
        let entry = windows.entry(key.to_owned()).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now >= entry.start + window {
            *entry = Window {
                start: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_until_its_window_ends() {
        let t = Throttle::default();
        for _ in 0..3 {
            assert_eq!(t.check("user:ann", 3, 60, 100), Ok(()));
            t.fail("user:ann", 60, 100);
        }
        assert_eq!(t.check("user:ann", 3, 60, 110), Err(50));
        assert_eq!(t.check("user:bob", 3, 60, 110), Ok(()));
        assert_eq!(t.check("user:ann", 3, 60, 160), Ok(()));
        t.fail("user:ann", 60, 160);
        assert_eq!(
            t.check("user:ann", 3, 60, 161),
            Ok(()),
            "a new window starts"
        );
    }
}
