use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Spaces each tenant's requests so that Graph sees them at least a second apart.
///
/// Graph's CA endpoints allow 1 request/second per tenant, shared by every app
/// in that tenant, and answer 429 without Retry-After. Bouncing off the limit
/// wastes a second per bounce, so caguard stays under it. Two rules:
/// - each request reserves the tenant's next free slot (`interval` after the
///   previous slot) and waits for it;
/// - when a response comes back, the tenant's next request may not leave until
///   `gap` later. A request reaches Graph before its response leaves Graph, so
///   however long the request spent in transit or in a queue, two arrivals are
///   never closer than `gap`.
///
/// Tenants never wait on each other.
pub struct Pacer {
    interval: Duration,
    gap: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        // The gap after a response is Graph's 1 s window, or less when pacing is turned down.
        Self::with_gap(interval, interval.min(Duration::from_secs(1)))
    }

    pub fn with_gap(interval: Duration, gap: Duration) -> Self {
        Pacer { interval, gap, next: Mutex::new(HashMap::new()) }
    }

    /// A response for `tenant` arrived: its next request leaves `gap` from now at the earliest.
    pub fn completed(&self, tenant: &str) {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = Instant::now() + self.gap;
        let key = tenant.to_ascii_lowercase();
        let slot = next.get(&key).map_or(earliest, |n| (*n).max(earliest));
        next.insert(key, slot);
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for the tenant's next slot and reserves it.
    pub async fn wait(&self, tenant: &str) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let key = tenant.to_ascii_lowercase();
            let slot = next.get(&key).map_or(now, |n| (*n).max(now));
            next.insert(key, slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_one_tenant_and_leaves_others_alone() {
        let p = Pacer::new(Duration::from_millis(1000));
        let start = Instant::now();
        p.wait("a").await;
        p.wait("b").await;
        assert!(start.elapsed() < Duration::from_millis(10), "other tenants do not wait");
        p.wait("a").await;
        assert!(start.elapsed() >= Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_response_pushes_the_next_request_back() {
        let p = Pacer::with_gap(Duration::from_millis(1100), Duration::from_millis(1000));
        let start = Instant::now();
        p.wait("a").await;
        tokio::time::sleep(Duration::from_millis(400)).await; // the request took 400 ms
        p.completed("a");
        p.wait("a").await;
        assert!(start.elapsed() >= Duration::from_millis(1400), "{:?}", start.elapsed());
    }
}
