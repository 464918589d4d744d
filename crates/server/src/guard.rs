//! Brute-force protection: failed authentications are counted per (identity, source address),
//! per source address and per identity, and each count locks out with exponential back-off.
//!
//! * **identity + address**: after `pair_after` failures within the window, that address may not
//!   try that identity for `base`, doubling with each further failure up to `pair_max`. A
//!   success resets it.
//! * **address**: after `ip_after` failures (any identity, unknown users and bad tokens
//!   included), the address is locked, doubling from `base` up to `ip_max`.
//! * **identity**: after `identity_after` failures from anywhere, the identity is locked, doubling
//!   up to `pair_max`, **except for addresses that authenticated as it lately**: an attacker
//!   spraying from many addresses cannot lock the real sender out of its own address. "Lately"
//!   is a fixed table of [`RECENT_SLOTS`] hashed (identity, address) pairs written on every
//!   success (one atomic store, no lock); a pair stays until another pair takes its slot.
//!
//! Locked requests are refused before their credentials are checked (no oracle, no password
//! hashing cost). Each table holds at most `capacity` entries; when one is full, the entries whose
//! window has passed go first, then the oldest. Counts are per node. While nothing is counted at
//! all, every check is one atomic load.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Slots of the table of (identity, address) pairs that authenticated lately.
pub(crate) const RECENT_SLOTS: usize = 1 << 16;

/// (identity, address) pairs that authenticated lately, as seeded 64-bit hashes in a fixed
/// table: lock-free to write and read, bounded, and not predictable from outside.
struct Recent {
    seed: u64,
    slots: Box<[AtomicU64]>,
}

impl Recent {
    fn new() -> Self {
        Self {
            seed: u64::from_le_bytes(postern_auth::secret::random::<8>()) | 1,
            slots: (0..RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The pair's hash (identity compared ASCII case-insensitively); never 0.
    fn key(&self, identity: &str, ip: IpAddr) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = self.seed;
        let mut mix = |word: u64| h = (h.rotate_left(5) ^ word).wrapping_mul(K);
        for chunk in identity.as_bytes().chunks(8) {
            let mut b = [0u8; 8];
            for (d, s) in b.iter_mut().zip(chunk) {
                *d = s.to_ascii_lowercase();
            }
            mix(u64::from_le_bytes(b));
        }
        match ip {
            IpAddr::V4(a) => mix(u64::from(u32::from(a))),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                mix(v as u64);
                mix((v >> 64) as u64);
            }
        }
        // A final avalanche so that the slot index and the stored value depend on every bit.
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h.max(1)
    }

    fn note(&self, key: u64) {
        let slot = &self.slots[(key as usize) % RECENT_SLOTS];
        if slot.load(Ordering::Relaxed) != key {
            slot.store(key, Ordering::Relaxed);
        }
    }

    fn contains(&self, key: u64) -> bool {
        self.slots[(key as usize) % RECENT_SLOTS].load(Ordering::Relaxed) == key
    }
}

/// A lockout as whole seconds for `Retry-After`: rounded up (never sooner than the lock ends),
/// at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The thresholds and durations; `pair_after == 0` switches the protection off.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Failures of one identity from one address before it locks.
    pub pair_after: u32,
    /// Failures from one address (any identity) before it locks.
    pub ip_after: u32,
    /// Failures of one identity (any address) before it locks for unknown addresses.
    pub identity_after: u32,
    /// Failures count within this window after the first.
    pub window: Duration,
    /// The first lockout; each further failure doubles it.
    pub base: Duration,
    /// Longest lockout of an identity (per address or overall).
    pub pair_max: Duration,
    /// Longest lockout of an address.
    pub ip_max: Duration,
    /// Most entries per table.
    pub capacity: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            pair_after: 5,
            ip_after: 50,
            identity_after: 100,
            window: Duration::from_secs(15 * 60),
            base: Duration::from_secs(1),
            pair_max: Duration::from_secs(15 * 60),
            ip_max: Duration::from_secs(3600),
            capacity: 100_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Count {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            first: now,
            locked_until: None,
        }
    }

    /// Counts a failure; locks once `after` is reached.
    fn fail(&mut self, now: Instant, policy: &Policy, after: u32, max: Duration) {
        if now.duration_since(self.first) > policy.window && self.locked_until.is_none_or(|u| u <= now) {
            *self = Count::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= after {
            let doublings = (self.failures - after).min(30);
            let lock = policy.base.saturating_mul(1u32 << doublings).min(max);
            self.locked_until = Some(now + lock);
        }
    }

    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Whether the entry still matters (within its window or still locked).
    fn live(&self, now: Instant, window: Duration) -> bool {
        now.duration_since(self.first) <= window || self.locked(now).is_some()
    }
}

#[derive(Default)]
struct Tables {
    pairs: HashMap<(Box<str>, IpAddr), Count>,
    ips: HashMap<IpAddr, Count>,
    identities: HashMap<Box<str>, Count>,
}

/// Makes room for one more entry: drops what no longer matters, then the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Count>,
    capacity: usize,
    now: Instant,
    window: Duration,
) {
    if map.len() < capacity {
        return;
    }
    map.retain(|_, c| c.live(now, window));
    while map.len() >= capacity {
        let Some(oldest) = map.iter().min_by_key(|(_, c)| c.first).map(|(k, _)| k.clone()) else {
            break;
        };
        map.remove(&oldest);
    }
}

/// The failure counters of one node.
pub struct Guard {
    policy: Policy,
    tables: Mutex<Tables>,
    /// Entries in all tables; zero lets every check return at once.
    tracked: AtomicUsize,
    recent: Recent,
}

impl Guard {
    /// A guard with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            tables: Mutex::new(Tables::default()),
            tracked: AtomicUsize::new(0),
            recent: Recent::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.policy.pair_after > 0
    }

    /// Whether anything is being counted (callers skip work such as reading the identity
    /// when not).
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) > 0
    }

    fn update_tracked(&self, t: &Tables) {
        self.tracked.store(
            t.pairs.len() + t.ips.len() + t.identities.len(),
            Ordering::Relaxed,
        );
    }

    /// How long `ip` must wait before trying `identity` (lower-case; `None` for anonymous
    /// attempts), if it is locked out.
    pub(crate) fn locked(&self, identity: Option<&str>, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.active() {
            return None;
        }
        let Ok(t) = self.tables.lock() else {
            return None;
        };
        let mut wait = t.ips.get(&ip).and_then(|c| c.locked(now));
        if let Some(id) = identity {
            let pair = t
                .pairs
                .get(&(Box::<str>::from(id), ip))
                .and_then(|c| c.locked(now));
            let overall = if self.recent.contains(self.recent.key(id, ip)) {
                None
            } else {
                t.identities.get(id).and_then(|c| c.locked(now))
            };
            wait = wait.max(pair).max(overall);
        }
        wait
    }

    /// Counts a failed authentication; answers with the lockout it caused, if any.
    pub(crate) fn failed(&self, identity: Option<&str>, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        let p = &self.policy;
        let Ok(mut t) = self.tables.lock() else {
            return None;
        };
        make_room(&mut t.ips, p.capacity, now, p.window);
        let ip_count = t.ips.entry(ip).or_insert_with(|| Count::new(now));
        ip_count.fail(now, p, p.ip_after, p.ip_max);
        let mut wait = ip_count.locked(now);
        if let Some(id) = identity {
            make_room(&mut t.pairs, p.capacity, now, p.window);
            let pair = t
                .pairs
                .entry((Box::from(id), ip))
                .or_insert_with(|| Count::new(now));
            pair.fail(now, p, p.pair_after, p.pair_max);
            wait = wait.max(pair.locked(now));
            make_room(&mut t.identities, p.capacity, now, p.window);
            let overall = t
                .identities
                .entry(Box::from(id))
                .or_insert_with(|| Count::new(now));
            overall.fail(now, p, p.identity_after, p.pair_max);
        }
        self.update_tracked(&t);
        wait
    }

    /// Records a successful authentication (on every success: one hash and one atomic access
    /// while nothing is counted): the address becomes one the identity authenticated from
    /// lately, and the pair's count ends.
    pub(crate) fn succeeded(&self, identity: &str, ip: IpAddr) {
        if !self.enabled() {
            return;
        }
        self.recent.note(self.recent.key(identity, ip));
        if !self.active() {
            return;
        }
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        // Forgetting what no longer matters is `sweep`'s job: a success must not scan tables.
        if t.pairs
            .remove(&(Box::<str>::from(identity.to_ascii_lowercase()), ip))
            .is_some()
        {
            self.update_tracked(&t);
        }
    }

    /// Drops counts whose window has passed and that are not locked (a background task calls
    /// this every few seconds).
    pub(crate) fn sweep(&self, now: Instant) {
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        let window = self.policy.window;
        t.pairs.retain(|_, c| c.live(now, window));
        t.ips.retain(|_, c| c.live(now, window));
        t.identities.retain(|_, c| c.live(now, window));
        self.update_tracked(&t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn policy() -> Policy {
        Policy {
            pair_after: 3,
            ip_after: 10,
            identity_after: 6,
            window: Duration::from_secs(60),
            base: Duration::from_secs(1),
            pair_max: Duration::from_secs(8),
            ip_max: Duration::from_secs(30),
            capacity: 4,
        }
    }

    #[test]
    fn a_pair_locks_after_its_threshold_and_backs_off_exponentially() {
        let g = Guard::new(policy());
        let t0 = Instant::now();
        assert!(!g.active());
        assert_eq!(g.failed(Some("k"), ip(1), t0), None);
        assert_eq!(g.failed(Some("k"), ip(1), t0), None);
        assert_eq!(g.failed(Some("k"), ip(1), t0), Some(Duration::from_secs(1)));
        assert_eq!(g.locked(Some("k"), ip(1), t0), Some(Duration::from_secs(1)));
        // Another identity from the same address, and the same identity elsewhere, are not locked.
        assert_eq!(g.locked(Some("other"), ip(1), t0), None);
        assert_eq!(g.locked(Some("k"), ip(2), t0), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.locked(Some("k"), ip(1), t1), None, "the lock expires");
        assert_eq!(g.failed(Some("k"), ip(1), t1), Some(Duration::from_secs(2)));
        assert_eq!(g.failed(Some("k"), ip(1), t1), Some(Duration::from_secs(4)));
        assert_eq!(g.failed(Some("k"), ip(1), t1), Some(Duration::from_secs(8)));
        assert_eq!(
            g.failed(Some("k"), ip(1), t1),
            Some(Duration::from_secs(8)),
            "capped"
        );
        // A success from the address ends its count.
        g.succeeded("k", ip(1));
        assert_eq!(g.locked(Some("k"), ip(1), t1 + Duration::from_secs(9)), None);
    }

    #[test]
    fn spraying_from_many_addresses_does_not_lock_out_the_owners_address() {
        let g = Guard::new(Policy {
            capacity: 100,
            ..policy()
        });
        let t0 = Instant::now();
        // The owner authenticated from .1 before anything was counted.
        g.succeeded("K", ip(1));
        g.failed(Some("k"), ip(9), t0);
        for last in 10..16 {
            g.failed(Some("k"), ip(last), t0);
        }
        // Six failures in all: the identity is locked for unknown addresses...
        assert!(g.locked(Some("k"), ip(50), t0).is_some());
        // ...but not for its owner's address.
        assert_eq!(g.locked(Some("k"), ip(1), t0), None);
    }

    #[test]
    fn an_address_failing_for_many_identities_locks_and_the_tables_stay_bounded() {
        let g = Guard::new(Policy {
            capacity: 1000,
            ..policy()
        });
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(g.failed(Some(&format!("user{i}")), ip(7), t0), None);
        }
        assert_eq!(g.failed(None, ip(7), t0), Some(Duration::from_secs(1)));
        assert!(g.locked(Some("anyone"), ip(7), t0).is_some());
        assert!(g.locked(None, ip(7), t0).is_some());
        assert_eq!(g.locked(None, ip(8), t0), None);

        let small = Guard::new(policy());
        for i in 0..50u8 {
            small.failed(
                Some(&format!("u{i}")),
                ip(i),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        let t = small.tables.lock().expect("tables");
        assert!(t.pairs.len() <= 4 && t.ips.len() <= 4 && t.identities.len() <= 4);
    }

    #[test]
    fn counts_expire_and_the_fast_path_returns() {
        let g = Guard::new(policy());
        let t0 = Instant::now();
        g.failed(Some("k"), ip(1), t0);
        assert!(g.active());
        g.sweep(t0 + Duration::from_secs(61));
        assert!(!g.active());
        let off = Guard::new(Policy {
            pair_after: 0,
            ..policy()
        });
        for _ in 0..100 {
            assert_eq!(off.failed(Some("k"), ip(1), t0), None);
        }
        assert!(!off.active());
    }
}
