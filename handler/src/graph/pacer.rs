use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Spaces each tenant's requests at least `interval` apart.
///
/// Graph's CA endpoints allow 1 request/second per tenant, shared by every app
/// in that tenant, and answer 429 without Retry-After. Bouncing off the limit
/// wastes a second per bounce, so caguard stays under it: each request reserves
/// the tenant's next free slot and waits for it. Tenants never wait on each other.
pub struct Pacer {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        Pacer { interval, next: Mutex::new(HashMap::new()) }
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
}
