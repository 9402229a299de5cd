//! Failed sign-ins, counted per account (e-mail address) and per client
//! address in fixed windows. Only failures count, so a person who types their
//! password right is never slowed; past the limit every attempt is refused
//! until the window ends, right password or not.
//!
//! In this process only: each replica counts on its own (as the API's rate
//! limits do), so N replicas allow up to N times the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    window: Duration,
    per_account: u32,
    per_address: u32,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Entries kept before expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

impl Throttle {
    /// `per_account` failures per window for one e-mail address; an address
    /// (many people behind one clinic NAT) gets four times as many.
    pub fn new(per_account: u32, window: Duration) -> Throttle {
        Throttle {
            window,
            per_account,
            per_address: per_account.saturating_mul(4),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `email` from `address` may try again, if they may not now.
    pub fn blocked_for(&self, email: &str, address: &str) -> Option<Duration> {
        if self.per_account == 0 {
            return None;
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        [
            (account_key(email), self.per_account),
            (address_key(address), self.per_address),
        ]
        .into_iter()
        .filter_map(|(key, limit)| {
            let (start, count) = failures.get(&key)?;
            let left = self.window.checked_sub(now.duration_since(*start))?;
            (*count >= limit).then_some(left)
        })
        .max()
    }

    pub fn record_failure(&self, email: &str, address: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        for key in [account_key(email), address_key(address)] {
            let entry = failures.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub fn record_success(&self, email: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&account_key(email));
    }
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_blocked_after_its_failures_and_freed_by_the_window() {
        let throttle = Throttle::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert_eq!(throttle.blocked_for("A@x.org", "10.0.0.1"), None);
            throttle.record_failure("a@x.org", "10.0.0.1");
        }
        assert!(throttle.blocked_for("a@x.org", "10.0.0.2").is_some());
        assert_eq!(throttle.blocked_for("b@x.org", "10.0.0.1"), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.blocked_for("a@x.org", "10.0.0.1"), None);
    }

    #[test]
    fn an_address_is_blocked_after_four_times_as_many() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        for n in 0..8 {
            throttle.record_failure(&format!("user{n}@x.org"), "10.0.0.9");
        }
        assert!(throttle.blocked_for("new@x.org", "10.0.0.9").is_some());
        assert_eq!(throttle.blocked_for("new@x.org", "10.0.0.8"), None);
    }
}
