//! Requests-per-minute per team and per key, for the policy's `volume` conditions.
//! Two one-minute buckets per name, blended by how far into the minute we are: an
//! O(1), lock-light estimate of a sliding one-minute window.

use std::collections::HashMap;
use std::sync::Mutex;

/// Caps memory if names were ever attacker-chosen (teams come from headers until
/// virtual keys exist): past this many names the table starts afresh.
const MAX_NAMES: usize = 100_000;

#[derive(Default)]
pub struct VolumeMeter {
    buckets: Mutex<HashMap<String, Buckets>>,
}

#[derive(Clone, Copy)]
struct Buckets {
    minute: u64,
    current: u32,
    previous: u32,
}

impl VolumeMeter {
    /// Counts one request for `name` at `now_ms` (unix milliseconds) and returns the
    /// estimated requests per minute, this one included.
    pub fn hit(&self, name: &str, now_ms: u64) -> u32 {
        let minute = now_ms / 60_000;
        let into = (now_ms % 60_000) as f64 / 60_000.0;
        let Ok(mut map) = self.buckets.lock() else {
            return 0;
        };
        if map.len() >= MAX_NAMES && !map.contains_key(name) {
            map.clear();
        }
        let b = map.entry(name.to_string()).or_insert(Buckets {
            minute,
            current: 0,
            previous: 0,
        });
        if b.minute != minute {
            b.previous = if b.minute + 1 == minute { b.current } else { 0 };
            b.current = 0;
            b.minute = minute;
        }
        b.current = b.current.saturating_add(1);
        (f64::from(b.previous) * (1.0 - into) + f64::from(b.current)).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_a_minute_and_blends_the_previous_one() {
        let m = VolumeMeter::default();
        let t0 = 60_000 * 1000;
        for i in 0..10 {
            assert_eq!(m.hit("a", t0 + i), i as u32 + 1);
        }
        // Half-way through the next minute, half of the previous minute still counts.
        assert_eq!(m.hit("a", t0 + 90_000), 6);
        // Two minutes of silence forget everything.
        assert_eq!(m.hit("a", t0 + 240_000), 1);
        assert_eq!(m.hit("b", t0), 1);
    }
}
