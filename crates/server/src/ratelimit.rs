//! Per-credential rate limits: a service instance may set `rate-limit` (requests per second and
//! burst); each of its keys then gets a token bucket on this node, checked at the sender
//! endpoint after authentication. Credentials without a limit cost nothing here.
//!
//! The table is sharded (short `std::sync::Mutex` sections, never held across `.await`) and
//! bounded: a full shard first forgets buckets idle long enough to have refilled, then, if still
//! full, starts over (those credentials get a fresh burst; documented).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postern_auth::{Principal, PrincipalKind};
use postern_core::model::RateLimit;
use postern_core::snapshot::Snapshot;

const SHARDS: usize = 16;
/// Buckets kept per shard.
const MAX_PER_SHARD: usize = 8192;

struct Bucket {
    tokens: f64,
    at: Instant,
    limit: RateLimit,
}

/// The buckets of this node.
pub(crate) struct RateLimiter {
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
    hasher: RandomState,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl RateLimiter {
    /// Takes one request from the principal's bucket, if its instance has a limit; otherwise
    /// how long until the next request would be allowed.
    pub(crate) fn check(&self, security: &Snapshot, p: &Principal, now: Instant) -> Result<(), Duration> {
        let (client_id, key) = match &p.kind {
            PrincipalKind::ServiceKey { key, .. } | PrincipalKind::Certificate { key, .. } => {
                (&*p.name, &**key)
            }
            PrincipalKind::Token { client_id, key, .. } => (&**client_id, key.as_str()),
            PrincipalKind::User | PrincipalKind::MappedCertificate => return Ok(()),
        };
        let Some(limit) = security.client(client_id).and_then(|c| c.rate_limit) else {
            return Ok(());
        };
        let id = format!("{client_id}\0{key}");
        let shard = &self.shards[self.hasher.hash_one(&id) as usize % SHARDS];
        // Poisoning only follows a panic inside this short section; the table stays usable.
        let mut table = shard.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_PER_SHARD && !table.contains_key(&id) {
            table.retain(|_, b| !b.refilled(now));
            if table.len() >= MAX_PER_SHARD {
                table.clear();
            }
        }
        let bucket = table.entry(id).or_insert(Bucket {
            tokens: f64::from(limit.burst),
            at: now,
            limit,
        });
        bucket.take(limit, now)
    }
}

impl Bucket {
    fn refilled(&self, now: Instant) -> bool {
        let per_second = f64::from(self.limit.per_second);
        self.tokens + now.duration_since(self.at).as_secs_f64() * per_second >= f64::from(self.limit.burst)
    }

    fn take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        if limit != self.limit {
            // The instance's limit changed: start from a full bucket of the new size.
            *self = Bucket {
                tokens: f64::from(limit.burst),
                at: now,
                limit,
            };
        }
        let per_second = f64::from(limit.per_second);
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(limit.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_average_rate() {
        let limit = RateLimit {
            per_second: 10,
            burst: 5,
        };
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 5.0,
            at: t0,
            limit,
        };
        for _ in 0..5 {
            assert!(b.take(limit, t0).is_ok());
        }
        let wait = b.take(limit, t0).expect_err("empty");
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // A tenth of a second later, one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.take(limit, t1).is_ok());
        assert!(b.take(limit, t1).is_err());
        // A new limit starts over with its own burst.
        let bigger = RateLimit {
            per_second: 100,
            burst: 200,
        };
        for _ in 0..200 {
            assert!(b.take(bigger, t1).is_ok());
        }
        assert!(b.take(bigger, t1).is_err());
        assert!(b.refilled(t1 + Duration::from_secs(2)));
    }
}
