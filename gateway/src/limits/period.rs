//! UTC calendar arithmetic without a date crate: the only operations needed are "which
//! day/month/minute contains this instant" and "when does it end".

use super::config::Period;
use crate::store::time::{civil_from_days, days_from_civil};

const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;

/// One counting window: `label` goes into the counter key, so a new period is a new key
/// and starts at zero without any reset job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: String,
    pub end_ms: u64,
}

pub fn budget_window(period: Period, now_ms: u64) -> Window {
    let day = now_ms / DAY_MS;
    let (y, m, d) = civil_from_days(day as i64);
    match period {
        Period::Day => Window {
            label: format!("d{y:04}-{m:02}-{d:02}"),
            end_ms: (day + 1) * DAY_MS,
        },
        Period::Month => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Window {
                label: format!("m{y:04}-{m:02}"),
                end_ms: days_from_civil(ny, nm, 1).max(0) as u64 * DAY_MS,
            }
        }
    }
}

/// The unix day number on which the budget period containing `now_ms` starts.
pub fn first_day(period: Period, now_ms: u64) -> i64 {
    let day = (now_ms / DAY_MS) as i64;
    match period {
        Period::Day => day,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1)
        }
    }
}

pub fn minute_window(now_ms: u64) -> Window {
    let minute = now_ms / MINUTE_MS;
    Window {
        label: format!("t{minute}"),
        end_ms: (minute + 1) * MINUTE_MS,
    }
}

/// RFC 3339 for messages, e.g. `2024-06-16T00:00:00Z`.
pub fn rfc3339(unix_s: u64) -> String {
    let (y, m, d) = civil_from_days((unix_s / 86_400) as i64);
    let s = unix_s % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-02-29T23:59:59.999Z, a leap day.
    const LEAP_LAST_MS: u64 = 1_709_251_199_999;

    #[test]
    fn day_and_month_windows_follow_the_utc_calendar() {
        let d = budget_window(Period::Day, LEAP_LAST_MS);
        assert_eq!(d.label, "d2024-02-29");
        assert_eq!(d.end_ms, LEAP_LAST_MS + 1);
        let next = budget_window(Period::Day, LEAP_LAST_MS + 1);
        assert_eq!(next.label, "d2024-03-01");
        let m = budget_window(Period::Month, LEAP_LAST_MS);
        assert_eq!(m.label, "m2024-02");
        assert_eq!(m.end_ms, LEAP_LAST_MS + 1);
        let dec = budget_window(Period::Month, 1_735_689_599_000); // 2024-12-31T23:59:59Z
        assert_eq!(dec.label, "m2024-12");
        assert_eq!(rfc3339(dec.end_ms / 1000), "2025-01-01T00:00:00Z");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn civil_round_trips() {
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn minute_window_ends_on_the_next_minute() {
        let w = minute_window(120_001);
        assert_eq!((w.label.as_str(), w.end_ms), ("t2", 180_000));
    }
}
