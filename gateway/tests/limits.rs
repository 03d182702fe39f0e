//! Budgets and rate limits: exactness under concurrency, boundaries, settlement, period
//! rollover, key+team accounting, replicas sharing Redis, and Redis outages. Every
//! behaviour runs on both backends; Redis tests use a unique key prefix and delete their
//! keys even when they fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard::limits::{
    Admission, Backend, BudgetLimit, BudgetRule, LimitRejection, LimitSource, Limiter,
    LimitsConfig, OnRedisError, Overrides, Period, RateLimit, RateRule, RedisBackend, Scope,
    Subject, TeamLimits, Usd,
};

const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// 2024-06-15T12:00:00Z.
const NOON_MS: u64 = 1_718_452_800_000;
const DAY_MS: u64 = 86_400_000;

const KEY_A: Subject<'static> = Subject {
    key_id: Some("key-a"),
    team: Some("eng"),
};
const KEY_B: Subject<'static> = Subject {
    key_id: Some("key-b"),
    team: Some("eng"),
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Redis,
}

/// Deletes every key under its prefix when dropped, so a failing test cleans up too.
struct RedisKeys {
    prefix: String,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(REDIS_URL) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let pattern = format!("{}:*", self.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .unwrap_or_default();
        for k in keys {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&k).query(&mut conn);
        }
    }
}

fn usd_micros(micros: i64) -> Option<Usd> {
    Some(Usd::from_micros(micros).expect("valid amount"))
}

fn budget(
    name: &str,
    scope: Scope,
    period: Period,
    soft: Option<i64>,
    hard: Option<i64>,
) -> BudgetRule {
    BudgetRule {
        name: name.into(),
        scope,
        subject: "*".into(),
        period,
        soft_usd: soft.and_then(usd_micros),
        hard_usd: hard.and_then(usd_micros),
    }
}

fn rate(name: &str, scope: Scope, rpm: Option<u32>, tpm: Option<u32>) -> RateRule {
    RateRule {
        name: name.into(),
        scope,
        subject: "*".into(),
        rpm,
        tpm,
    }
}

fn redis_backend(prefix: &str, url: &str, on_redis_error: OnRedisError) -> Backend {
    Backend::Redis(RedisBackend {
        url: url.into(),
        key_prefix: prefix.into(),
        on_redis_error,
        // 1 000 concurrent scripts on a shared 2-core machine can queue for a while.
        timeout_ms: 10_000,
    })
}

/// A limiter of the given kind, plus the guard that deletes its Redis keys.
async fn limiter(
    kind: Kind,
    budgets: Vec<BudgetRule>,
    rate_limits: Vec<RateRule>,
) -> (Limiter, Option<RedisKeys>, LimitsConfig) {
    let (backend, guard) = match kind {
        Kind::Memory => (Backend::Memory, None),
        Kind::Redis => {
            let prefix = format!("switchyard-test:limits:{}", uuid::Uuid::new_v4());
            (
                redis_backend(&prefix, REDIS_URL, OnRedisError::FailClosed),
                Some(RedisKeys { prefix }),
            )
        }
    };
    let cfg = LimitsConfig {
        backend,
        budgets,
        rate_limits,
    };
    let l = Limiter::new(&cfg).await.expect("valid limits config");
    (l, guard, cfg)
}

async fn spent(l: &Limiter, subject: &Subject<'_>, budget: &str, now_ms: u64) -> i64 {
    l.budget_usage(subject, now_ms)
        .await
        .expect("usage readable")
        .into_iter()
        .find(|u| u.budget == budget)
        .map(|u| u.spent_micros)
        .expect("budget applies")
}

async fn concurrent_admits(
    l: Arc<Limiter>,
    n: usize,
    estimate_micros: i64,
) -> (usize, Vec<LimitRejection>, Vec<Admission>) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move { l.admit(&KEY_A, estimate_micros, 10, NOON_MS).await })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut rejected = Vec::new();
    for t in tasks {
        match t.await.expect("task ran") {
            Ok(a) => admitted.push(a),
            Err(r) => rejected.push(r),
        }
    }
    (admitted.len(), rejected, admitted)
}

async fn exactly_n_budget(kind: Kind) {
    // $1.00 hard limit, $0.01 per request: exactly 100 of 1 000 fit.
    let (l, _g, _) = limiter(
        kind,
        vec![budget(
            "key-daily",
            Scope::Key,
            Period::Day,
            None,
            Some(1_000_000),
        )],
        vec![],
    )
    .await;
    let l = Arc::new(l);
    let (n, rejected, admitted) = concurrent_admits(l.clone(), 1_000, 10_000).await;
    assert_eq!(n, 100, "{kind:?}");
    assert_eq!(rejected.len(), 900);
    assert!(rejected.iter().all(
        |r| matches!(r, LimitRejection::BudgetExceeded { budget, .. } if budget == "key-daily")
    ));
    assert_eq!(spent(&l, &KEY_A, "key-daily", NOON_MS).await, 1_000_000);
    for a in admitted {
        l.settle(a, 10_000, 10).await;
    }
    assert_eq!(spent(&l, &KEY_A, "key-daily", NOON_MS).await, 1_000_000);
}

async fn exactly_n_rpm(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![],
        vec![rate("key-rpm", Scope::Key, Some(100), None)],
    )
    .await;
    let (n, rejected, _admitted) = concurrent_admits(Arc::new(l), 1_000, 0).await;
    assert_eq!(n, 100, "{kind:?}");
    assert!(rejected.iter().all(|r| matches!(
        r,
        LimitRejection::RateLimited { limit, retry_after_s, .. } if limit == "key-rpm" && *retry_after_s == 60
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_of_1000_concurrent_budget_memory() {
    exactly_n_budget(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_of_1000_concurrent_budget_redis() {
    exactly_n_budget(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_of_1000_concurrent_rpm_memory() {
    exactly_n_rpm(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_of_1000_concurrent_rpm_redis() {
    exactly_n_rpm(Kind::Redis).await;
}

async fn boundary(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![budget("b", Scope::Key, Period::Day, None, Some(100))],
        vec![],
    )
    .await;
    // Exactly the limit is admitted...
    let a = l
        .admit(&KEY_A, 100, 0, NOON_MS)
        .await
        .expect("== limit admitted");
    // ...and not one micro-dollar more, not even a free request over a spent budget's edge.
    let r = l
        .admit(&KEY_A, 1, 0, NOON_MS)
        .await
        .expect_err("limit + 1 rejected");
    let LimitRejection::BudgetExceeded {
        budget,
        resets_at_unix_s,
        message,
    } = r
    else {
        panic!("expected a budget rejection, got {r:?}")
    };
    assert_eq!(budget, "b");
    assert_eq!(resets_at_unix_s, (NOON_MS / DAY_MS + 1) * DAY_MS / 1000);
    assert!(message.contains("2024-06-16T00:00:00Z"), "{message}");
    l.admit(&KEY_A, 0, 0, NOON_MS)
        .await
        .expect("0 more stays within the limit");
    l.settle(a, 100, 0).await;
    // A fresh subject: limit + 1 in one request is rejected outright.
    l.admit(&KEY_B, 101, 0, NOON_MS)
        .await
        .expect_err("limit + 1 micro rejected");
    assert_eq!(spent(&l, &KEY_B, "b", NOON_MS).await, 0, "{kind:?}");
}

#[tokio::test]
async fn boundary_is_inclusive_memory() {
    boundary(Kind::Memory).await;
}

#[tokio::test]
async fn boundary_is_inclusive_redis() {
    boundary(Kind::Redis).await;
}

async fn settle_releases_difference(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![budget("b", Scope::Key, Period::Day, None, Some(100))],
        vec![],
    )
    .await;
    let a = l.admit(&KEY_A, 100, 0, NOON_MS).await.expect("admitted");
    l.admit(&KEY_A, 1, 0, NOON_MS)
        .await
        .expect_err("fully reserved");
    l.settle(a, 30, 0).await;
    assert_eq!(spent(&l, &KEY_A, "b", NOON_MS).await, 30);
    let b = l
        .admit(&KEY_A, 70, 0, NOON_MS)
        .await
        .expect("70 available again");
    l.admit(&KEY_A, 1, 0, NOON_MS)
        .await
        .expect_err("full again");
    // A failed call settles with 0 and releases its whole reservation.
    l.settle(b, 0, 0).await;
    assert_eq!(spent(&l, &KEY_A, "b", NOON_MS).await, 30, "{kind:?}");
    // Dropping an unsettled admission releases it in the background.
    let c = l.admit(&KEY_A, 70, 0, NOON_MS).await.expect("admitted");
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while spent(&l, &KEY_A, "b", NOON_MS).await != 30 {
        assert!(Instant::now() < deadline, "drop did not release");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn settle_releases_the_difference_memory() {
    settle_releases_difference(Kind::Memory).await;
}

#[tokio::test]
async fn settle_releases_the_difference_redis() {
    settle_releases_difference(Kind::Redis).await;
}

async fn rollover(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![
            budget("daily", Scope::Key, Period::Day, None, Some(100)),
            budget("monthly", Scope::Team, Period::Month, None, Some(250)),
        ],
        vec![],
    )
    .await;
    // 2024-06-30T23:59:59.999Z: the last millisecond of a day and of a month.
    let last_ms = 1_719_791_999_999;
    let a = l.admit(&KEY_A, 100, 0, last_ms).await.expect("admitted");
    l.settle(a, 100, 0).await;
    l.admit(&KEY_A, 1, 0, last_ms).await.expect_err("day spent");
    // One millisecond later both periods are new and start at zero.
    let next = last_ms + 1;
    assert_eq!(spent(&l, &KEY_A, "daily", next).await, 0);
    assert_eq!(spent(&l, &KEY_A, "monthly", next).await, 0);
    let a = l
        .admit(&KEY_A, 100, 0, next)
        .await
        .expect("new day, new budget");
    l.settle(a, 100, 0).await;
    // Within the month the team total keeps growing across days.
    let day2 = next + DAY_MS;
    let a = l.admit(&KEY_A, 100, 0, day2).await.expect("another day");
    l.settle(a, 100, 0).await;
    let r = l
        .admit(&KEY_A, 51, 0, day2 + DAY_MS)
        .await
        .expect_err("month spent");
    assert!(
        matches!(r, LimitRejection::BudgetExceeded { ref budget, .. } if budget == "monthly"),
        "{r:?}"
    );
    assert_eq!(spent(&l, &KEY_A, "monthly", day2).await, 200, "{kind:?}");
}

#[tokio::test]
async fn new_period_starts_at_zero_memory() {
    rollover(Kind::Memory).await;
}

#[tokio::test]
async fn new_period_starts_at_zero_redis() {
    rollover(Kind::Redis).await;
}

async fn key_and_team(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![
            budget("per-key", Scope::Key, Period::Day, None, Some(100)),
            budget("per-team", Scope::Team, Period::Day, None, Some(150)),
        ],
        vec![],
    )
    .await;
    let a = l.admit(&KEY_A, 60, 0, NOON_MS).await.expect("admitted");
    l.settle(a, 60, 0).await;
    assert_eq!(spent(&l, &KEY_A, "per-key", NOON_MS).await, 60);
    // Charged once to the team, not once per applicable rule.
    assert_eq!(spent(&l, &KEY_A, "per-team", NOON_MS).await, 60);
    let b = l.admit(&KEY_B, 60, 0, NOON_MS).await.expect("admitted");
    l.settle(b, 60, 0).await;
    assert_eq!(spent(&l, &KEY_B, "per-team", NOON_MS).await, 120);
    // key-b has room (60 of 100) but the team does not (120 + 40 > 150): rejected by the
    // team budget, and key-b's own counter is left untouched.
    let r = l
        .admit(&KEY_B, 40, 0, NOON_MS)
        .await
        .expect_err("team budget full");
    assert!(
        matches!(r, LimitRejection::BudgetExceeded { ref budget, .. } if budget == "per-team"),
        "{r:?}"
    );
    assert_eq!(spent(&l, &KEY_B, "per-key", NOON_MS).await, 60);
    assert_eq!(
        spent(&l, &KEY_B, "per-team", NOON_MS).await,
        120,
        "{kind:?}"
    );
    l.admit(&KEY_B, 30, 0, NOON_MS)
        .await
        .expect("exactly fills the team budget");
}

#[tokio::test]
async fn key_and_team_budgets_count_once_memory() {
    key_and_team(Kind::Memory).await;
}

#[tokio::test]
async fn key_and_team_budgets_count_once_redis() {
    key_and_team(Kind::Redis).await;
}

const OPS: Subject<'static> = Subject {
    key_id: Some("key-ops"),
    team: Some("ops"),
};

fn team_budget(hard: i64) -> Option<BudgetLimit> {
    Some(BudgetLimit {
        soft_usd: None,
        hard_usd: usd_micros(hard),
    })
}

async fn team_limits(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![budget(
            "per-team",
            Scope::Team,
            Period::Day,
            None,
            Some(1_000),
        )],
        vec![],
    )
    .await;
    let a = l.admit(&KEY_A, 300, 0, NOON_MS).await.expect("admitted");
    l.settle(a, 300, 0).await;
    // eng's own daily budget of 400 replaces the configured 1 000 for eng only, on the
    // same counter: the 300 already spent still counts.
    let mut o = Overrides::new();
    o.insert(
        "eng".into(),
        TeamLimits {
            budget_day: team_budget(400),
            ..TeamLimits::default()
        },
    );
    l.set_overrides(o.clone());
    let r = l
        .admit(&KEY_A, 101, 0, NOON_MS)
        .await
        .expect_err("over the team's own limit");
    assert!(
        matches!(r, LimitRejection::BudgetExceeded { ref budget, .. } if budget == "per-team"),
        "{r:?}"
    );
    let usage = l.budget_usage(&KEY_A, NOON_MS).await.expect("usage");
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(
        (usage[0].source, usage[0].hard_micros, usage[0].spent_micros),
        (LimitSource::Team, Some(400), 300)
    );
    l.admit(&KEY_A, 100, 0, NOON_MS)
        .await
        .expect("exactly fills 400");
    // Another team keeps the configured limit.
    l.admit(&OPS, 900, 0, NOON_MS).await.expect("ops has 1 000");

    // A monthly budget and a rate limit where no rule of that kind is configured: rules
    // of their own, named for what they are.
    o.insert(
        "ops".into(),
        TeamLimits {
            budget_month: team_budget(950),
            rate: Some(RateLimit {
                rpm: Some(2),
                tpm: None,
            }),
            ..TeamLimits::default()
        },
    );
    l.set_overrides(o.clone());
    // The new monthly counter starts from what the ledger says ops spent this month.
    l.seed_team_spend("ops", Period::Month, 900, NOON_MS)
        .await
        .expect("seeded");
    l.seed_team_spend("ops", Period::Month, 10, NOON_MS)
        .await
        .expect("a lower seed leaves the counter alone");
    assert_eq!(spent(&l, &OPS, "team-limit-month", NOON_MS).await, 900);
    let r = l
        .admit(&OPS, 51, 0, NOON_MS)
        .await
        .expect_err("monthly 900 + 51 > 950");
    assert!(
        matches!(r, LimitRejection::BudgetExceeded { ref budget, .. } if budget == "team-limit-month"),
        "{r:?}"
    );
    // The rejected call above counted nowhere: two requests still fit this minute.
    for _ in 0..2 {
        l.admit(&OPS, 0, 0, NOON_MS).await.expect("within rpm 2");
    }
    let r = l
        .admit(&OPS, 0, 0, NOON_MS)
        .await
        .expect_err("the third request of the minute");
    assert!(
        matches!(r, LimitRejection::RateLimited { ref limit, .. } if limit == "team-limit-rate"),
        "{r:?}"
    );
    let rates = l.rate_usage(&OPS, NOON_MS).await.expect("rates");
    assert_eq!(rates.len(), 1);
    assert_eq!((rates[0].requests, rates[0].rpm), (2, Some(2)));

    // Cleared: back to the configured rules, nothing of the team's own left.
    l.set_overrides(Overrides::new());
    assert!(!l.is_noop());
    l.admit(&OPS, 0, 0, NOON_MS)
        .await
        .expect("no rate limit any more");
    assert_eq!(
        l.budget_usage(&OPS, NOON_MS)
            .await
            .expect("usage")
            .iter()
            .map(|u| u.budget.as_str())
            .collect::<Vec<_>>(),
        ["per-team"]
    );
}

#[tokio::test]
async fn team_limits_replace_and_add_rules_memory() {
    team_limits(Kind::Memory).await;
}

#[tokio::test]
async fn team_limits_replace_and_add_rules_redis() {
    team_limits(Kind::Redis).await;
}

#[tokio::test]
async fn team_limits_alone_turn_the_limiter_on() {
    let (l, _g, _) = limiter(Kind::Memory, vec![], vec![]).await;
    assert!(l.is_noop());
    let mut o = Overrides::new();
    o.insert(
        "eng".into(),
        TeamLimits {
            budget_day: team_budget(10),
            ..TeamLimits::default()
        },
    );
    o.insert("empty".into(), TeamLimits::default());
    l.set_overrides(o);
    assert!(!l.is_noop());
    assert_eq!(l.overrides().len(), 1, "a team without limits is dropped");
    assert!(l.admit(&KEY_A, 11, 0, NOON_MS).await.is_err());
    l.admit(&OPS, 11, 0, NOON_MS).await.expect("ops has none");
}

async fn all_or_nothing(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![budget("b", Scope::Key, Period::Day, None, Some(100))],
        vec![rate("r", Scope::Key, Some(2), Some(1_000))],
    )
    .await;
    l.admit(&KEY_A, 100, 400, NOON_MS).await.expect("admitted");
    // The budget rejects, so the request must not use up one of the 2 rpm or tokens.
    l.admit(&KEY_A, 1, 400, NOON_MS)
        .await
        .expect_err("budget full");
    l.admit(&KEY_A, 0, 600, NOON_MS)
        .await
        .expect("second request of the minute");
    let r = l
        .admit(&KEY_A, 0, 0, NOON_MS)
        .await
        .expect_err("third request");
    assert!(
        matches!(
            r,
            LimitRejection::RateLimited {
                retry_after_s: 60,
                ..
            }
        ),
        "{r:?}"
    );
    // The next minute is a new window.
    l.admit(&KEY_A, 0, 1_000, NOON_MS + 60_000)
        .await
        .expect("new minute");
    let r = l
        .admit(&KEY_A, 0, 1, NOON_MS + 60_000)
        .await
        .expect_err("tpm full");
    assert!(
        matches!(r, LimitRejection::RateLimited { ref message, .. } if message.contains("tokens")),
        "{r:?} {kind:?}"
    );
}

#[tokio::test]
async fn a_rejected_request_counts_nowhere_memory() {
    all_or_nothing(Kind::Memory).await;
}

#[tokio::test]
async fn a_rejected_request_counts_nowhere_redis() {
    all_or_nothing(Kind::Redis).await;
}

async fn tpm_settles(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![],
        vec![rate("t", Scope::Team, None, Some(1_000))],
    )
    .await;
    let a = l.admit(&KEY_A, 0, 1_000, NOON_MS).await.expect("admitted");
    l.admit(&KEY_B, 0, 1, NOON_MS)
        .await
        .expect_err("team tokens reserved");
    l.settle(a, 0, 250).await;
    l.admit(&KEY_B, 0, 750, NOON_MS)
        .await
        .expect("750 tokens released");
    l.admit(&KEY_B, 0, 1, NOON_MS)
        .await
        .expect_err("full again");
    let r = l
        .admit(&KEY_A, 0, 5_000, NOON_MS + 60_000)
        .await
        .expect_err("larger than the limit");
    assert!(
        format!("{r}").contains("more than the whole limit"),
        "{r} {kind:?}"
    );
}

#[tokio::test]
async fn tpm_reserves_and_settles_tokens_memory() {
    tpm_settles(Kind::Memory).await;
}

#[tokio::test]
async fn tpm_reserves_and_settles_tokens_redis() {
    tpm_settles(Kind::Redis).await;
}

async fn soft_warning(kind: Kind) {
    let (l, _g, _) = limiter(
        kind,
        vec![budget("b", Scope::Team, Period::Month, Some(50), Some(100))],
        vec![],
    )
    .await;
    let a = l.admit(&KEY_A, 50, 0, NOON_MS).await.expect("admitted");
    assert!(
        a.warnings.is_empty(),
        "reaching the soft limit exactly is within it"
    );
    let b = l
        .admit(&KEY_A, 1, 0, NOON_MS)
        .await
        .expect("admitted over soft");
    assert_eq!(b.warnings.len(), 1, "{kind:?}");
    assert!(b.warnings[0].contains("soft limit"), "{:?}", b.warnings);
    assert!(b.warnings[0].is_ascii());
    l.settle(a, 50, 0).await;
    l.settle(b, 1, 0).await;
}

#[tokio::test]
async fn soft_limit_warns_memory() {
    soft_warning(Kind::Memory).await;
}

#[tokio::test]
async fn soft_limit_warns_redis() {
    soft_warning(Kind::Redis).await;
}

#[tokio::test]
async fn subjects_outside_the_glob_are_not_limited() {
    let cfg = LimitsConfig {
        budgets: vec![BudgetRule {
            subject: "svc-*".into(),
            ..budget("svc", Scope::Key, Period::Day, None, Some(0))
        }],
        ..LimitsConfig::default()
    };
    let l = Limiter::new(&cfg).await.expect("valid");
    assert!(!l.is_noop());
    l.admit(&KEY_A, 10, 0, NOON_MS)
        .await
        .expect("key-a does not match svc-*");
    let svc = Subject {
        key_id: Some("svc-1"),
        team: None,
    };
    l.admit(&svc, 10, 0, NOON_MS)
        .await
        .expect_err("svc-1 matches");
    let anonymous = Subject::default();
    l.admit(&anonymous, 10, 0, NOON_MS)
        .await
        .expect("no key, no team");
    assert!(Limiter::new(&LimitsConfig::default())
        .await
        .expect("valid")
        .is_noop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_counters_through_redis() {
    let (a, _g, cfg) = limiter(
        Kind::Redis,
        vec![budget("b", Scope::Team, Period::Day, None, Some(100))],
        vec![rate("r", Scope::Key, Some(50), None)],
    )
    .await;
    let b = Limiter::new(&cfg).await.expect("second replica");
    let (a, b) = (Arc::new(a), Arc::new(b));
    // 100 requests split over both replicas: exactly 50 fit the shared rpm.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { l.admit(&KEY_A, 1, 0, NOON_MS).await })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        if let Ok(adm) = t.await.expect("task ran") {
            admitted.push(adm);
        }
    }
    assert_eq!(admitted.len(), 50);
    assert_eq!(spent(&b, &KEY_A, "b", NOON_MS).await, 50);
    for adm in admitted {
        b.settle(adm, 1, 0).await;
    }
    // Replica b sees what replica a reserved and settled.
    let x = a
        .admit(&KEY_B, 50, 0, NOON_MS)
        .await
        .expect("fills the team budget");
    b.admit(&KEY_B, 1, 0, NOON_MS)
        .await
        .expect_err("b sees a's reservation");
    a.settle(x, 20, 0).await;
    b.admit(&KEY_B, 30, 0, NOON_MS)
        .await
        .expect("b sees a's settlement");
}

#[tokio::test]
async fn unreachable_redis_fails_closed_by_default_or_open_when_configured() {
    // Port 1 on loopback: nothing listens, so every connect is refused at once.
    let closed = "redis://127.0.0.1:1/";
    let rules = vec![budget("b", Scope::Key, Period::Day, None, Some(100))];
    let parsed: LimitsConfig = serde_yaml_ng::from_str(&format!(
        "backend: {{redis: {{url: \"{closed}\", timeout_ms: 500}}}}"
    ))
    .expect("valid yaml");
    let closed_cfg = LimitsConfig {
        budgets: rules.clone(),
        ..parsed
    };
    let l = Limiter::new(&closed_cfg)
        .await
        .expect("starts without redis");
    let started = Instant::now();
    let r = l
        .admit(&KEY_A, 1, 0, NOON_MS)
        .await
        .expect_err("fail_closed is the default");
    assert!(matches!(r, LimitRejection::Unavailable { .. }), "{r:?}");
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "decided promptly"
    );

    let open_cfg = LimitsConfig {
        backend: redis_backend("unused", closed, OnRedisError::FailOpen),
        budgets: rules,
        rate_limits: vec![],
    };
    let l = Limiter::new(&open_cfg).await.expect("starts without redis");
    let a = l
        .admit(&KEY_A, 1_000, 0, NOON_MS)
        .await
        .expect("fail_open admits");
    assert_eq!(
        a.warnings.len(),
        1,
        "never silently: the response carries a warning"
    );
    assert!(a.warnings[0].contains("not enforced"));
    l.settle(a, 1_000, 0).await;
}

#[derive(Debug, Clone)]
enum Step {
    Admit(i64),
    /// Settle the admission at this index (mod the open ones) with this share of its
    /// reservation, in percent.
    Settle(usize, u8),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0i64..60).prop_map(Step::Admit),
            (any::<usize>(), 0u8..=100).prop_map(|(i, p)| Step::Settle(i, p)),
        ],
        1..40,
    )
}

/// Runs the steps and checks the two invariants after every one of them.
async fn check_sequence(kind: Kind, hard: i64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let (l, _g, _) = limiter(
        kind,
        vec![budget("b", Scope::Key, Period::Day, None, Some(hard))],
        vec![],
    )
    .await;
    let mut open: Vec<(Admission, i64)> = Vec::new();
    let mut settled_sum = 0;
    for step in steps {
        match step {
            Step::Admit(est) => match l.admit(&KEY_A, est, 0, NOON_MS).await {
                Ok(a) => open.push((a, est)),
                Err(_) => {
                    let reserved: i64 = open.iter().map(|(_, e)| e).sum();
                    prop_assert!(
                        settled_sum + reserved + est > hard,
                        "rejected although it fit"
                    );
                }
            },
            Step::Settle(i, pct) if !open.is_empty() => {
                let (a, est) = open.swap_remove(i % open.len());
                let actual = est * i64::from(pct) / 100;
                l.settle(a, actual, 0).await;
                settled_sum += actual;
            }
            Step::Settle(..) => {}
        }
        let reserved: i64 = open.iter().map(|(_, e)| e).sum();
        let s = spent(&l, &KEY_A, "b", NOON_MS).await;
        prop_assert!(s <= hard, "spent {} over hard {}", s, hard);
        prop_assert_eq!(s, settled_sum + reserved);
    }
    for (a, est) in open.drain(..) {
        l.settle(a, est, 0).await;
        settled_sum += est;
    }
    prop_assert_eq!(spent(&l, &KEY_A, "b", NOON_MS).await, settled_sum);
    prop_assert!(settled_sum <= hard);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_admit_settle_sequences_memory(hard in 0i64..200, steps in steps()) {
        runtime().block_on(check_sequence(Kind::Memory, hard, steps))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_admit_settle_sequences_redis(hard in 0i64..200, steps in steps()) {
        runtime().block_on(check_sequence(Kind::Redis, hard, steps))?;
    }
}
