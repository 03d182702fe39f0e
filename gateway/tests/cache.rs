//! Response cache: tenant scoping, determinism, TTLs, the Redis tier across replicas and
//! when Redis is down, stream replay round trips, the semantic tier, size bounds, and
//! that entries hold only the redacted form of a request.
//!
//! Tests that touch Redis (127.0.0.1:6379) use a fresh key prefix each and delete what
//! they wrote; their TTLs are short, so even a failed test leaves nothing for long.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard::cache::{
    replay_events, CacheConfig, ResponseCache, SemanticConfig, StreamAccumulator,
};
use switchyard::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, Message, Role, StopReason, StreamEvent, Usage,
};

const REDIS_URL: &str = "redis://127.0.0.1:6379/";

fn request(text: &str) -> ChatRequest {
    let mut r = ChatRequest::new(
        "gpt-4o",
        vec![Message::text(Role::User, text)],
        Dialect::OpenAi,
    );
    r.sampling.temperature = Some(0.0);
    r
}

fn answer(text: &str) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        model: "gpt-4o-2024-08-06".into(),
        content: vec![ContentPart::text(text)],
        stop_reason: StopReason::EndTurn,
        usage: Usage {
            input_tokens: 12,
            output_tokens: 7,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        },
        created: 1_700_000_000,
    }
}

async fn cache(cfg: CacheConfig) -> ResponseCache {
    ResponseCache::new(&cfg).await.expect("valid cache config")
}

fn unique_prefix(test: &str) -> String {
    format!("switchyard:test:cache:{test}:{}:", uuid::Uuid::new_v4())
}

fn redis_config(prefix: &str) -> CacheConfig {
    CacheConfig {
        redis_url: Some(REDIS_URL.into()),
        redis_key_prefix: prefix.into(),
        // Generous: the CI machine is small and busy.
        redis_timeout_ms: 2_000,
        ..CacheConfig::default()
    }
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis at 127.0.0.1:6379")
}

/// Every key under `prefix` with its raw value.
async fn redis_entries(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut conn = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut out = Vec::new();
    for k in keys {
        let v: Vec<u8> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .expect("GET");
        out.push((k, v));
    }
    out
}

async fn redis_cleanup(prefix: &str) {
    let mut conn = redis_conn().await;
    for (k, _) in redis_entries(prefix).await {
        let _: i64 = redis::cmd("DEL")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

#[tokio::test]
async fn same_request_hits_only_within_its_tenant() {
    let c = cache(CacheConfig::default()).await;
    let req = request("What is the capital of France?");
    let (key_a, ttl) = c
        .key(&req, "gpt-4o", "team-a", Some(60))
        .expect("cacheable");
    let (key_b, _) = c
        .key(&req, "gpt-4o", "team-b", Some(60))
        .expect("cacheable");
    assert_ne!(key_a, key_b);

    c.put(&key_a, &answer("Paris."), ttl).await;
    assert_eq!(c.get(&key_b).await, None, "another tenant must miss");
    let hit = c.get(&key_a).await.expect("same tenant hits");
    assert_eq!(hit, answer("Paris."));
    assert_eq!(hit.usage.output_tokens, 7, "hits carry the stored usage");

    let again = c.key(&req, "gpt-4o", "team-a", Some(60)).map(|k| k.0);
    assert_eq!(again, Some(key_a), "keys are stable");
    let s = c.stats();
    assert_eq!((s.hits, s.misses), (1, 1));
}

#[tokio::test]
async fn sharing_across_tenants_is_opt_in() {
    let shared = cache(CacheConfig {
        share_across_tenants: true,
        ..CacheConfig::default()
    })
    .await;
    let req = request("hi");
    let (a, ttl) = shared
        .key(&req, "m", "team-a", Some(60))
        .expect("cacheable");
    shared.put(&a, &answer("hello"), ttl).await;
    let (b, _) = shared
        .key(&req, "m", "team-b", Some(60))
        .expect("cacheable");
    assert_eq!(shared.get(&b).await, Some(answer("hello")));
}

#[tokio::test]
async fn streamed_and_plain_requests_share_entries_and_replay() {
    let c = cache(CacheConfig::default()).await;
    let plain = request("Tell me a story about a lighthouse keeper.");
    let mut streamed = plain.clone();
    streamed.stream = true;
    streamed.include_usage = true;
    let (k_plain, ttl) = c.key(&plain, "m", "t", Some(60)).expect("cacheable");
    let (k_stream, _) = c.key(&streamed, "m", "t", Some(60)).expect("cacheable");
    assert_eq!(k_plain, k_stream);

    // Filled from a live stream, answered to a plain request, replayed to a stream.
    let story = answer(
        "Once upon a time, on a rock far out at sea, there lived a keeper who counted ships.",
    );
    let mut acc = StreamAccumulator::new();
    for ev in replay_events(&story) {
        acc.push(&ev);
    }
    assert_eq!(acc.usage(), Some(story.usage));
    let filled = acc.finish().expect("complete stream");
    c.put(&k_stream, &filled, ttl).await;
    let hit = c.get(&k_plain).await.expect("hit");
    assert_eq!(hit, story);
    let replay = replay_events(&hit);
    assert!(matches!(replay.first(), Some(StreamEvent::Start { .. })));
    assert!(
        matches!(replay.last(), Some(StreamEvent::Finish { usage: Some(u), .. }) if *u == story.usage)
    );
}

#[tokio::test]
async fn nondeterministic_requests_are_not_cached_by_default() {
    let c = cache(CacheConfig::default()).await;
    let mut absent = request("hi");
    absent.sampling.temperature = None;
    let mut warm = request("hi");
    warm.sampling.temperature = Some(0.7);
    assert!(
        c.key(&absent, "m", "t", Some(60)).is_none(),
        "absent temperature is not deterministic"
    );
    assert!(c.key(&warm, "m", "t", Some(60)).is_none());
    assert!(c.key(&request("hi"), "m", "t", Some(60)).is_some());

    let lax = cache(CacheConfig {
        cache_nondeterministic: true,
        ..CacheConfig::default()
    })
    .await;
    assert!(lax.key(&absent, "m", "t", Some(60)).is_some());
    assert!(lax.key(&warm, "m", "t", Some(60)).is_some());
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let c = cache(CacheConfig::default()).await;
    let (k, _) = c
        .key(&request("hi"), "m", "t", Some(60))
        .expect("cacheable");
    let (k2, _) = c
        .key(&request("other"), "m", "t", Some(60))
        .expect("cacheable");
    c.put(&k, &answer("short"), Duration::from_millis(300))
        .await;
    c.put(&k2, &answer("long"), Duration::from_secs(60)).await;
    assert!(c.get(&k).await.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.get(&k).await, None, "expired");
    assert!(c.get(&k2).await.is_some(), "TTL is per entry");
}

#[tokio::test]
async fn replicas_share_entries_through_redis() {
    let prefix = unique_prefix("replicas");
    let a = cache(redis_config(&prefix)).await;
    let b = cache(redis_config(&prefix)).await;
    let req = request("Summarize the quarterly report.");
    let (key, _) = a.key(&req, "m", "team-a", Some(60)).expect("cacheable");
    assert_eq!(
        b.key(&req, "m", "team-a", Some(60)).map(|k| k.0),
        Some(key),
        "replicas agree on keys"
    );

    assert_eq!(b.get(&key).await, None);
    a.put(&key, &answer("Revenue grew."), Duration::from_secs(30))
        .await;
    assert_eq!(
        b.get(&key).await,
        Some(answer("Revenue grew.")),
        "filled on A, hit on B"
    );
    assert_eq!(b.stats().redis_hits, 1);
    // Now held in B's own memory too.
    assert_eq!(b.get(&key).await, Some(answer("Revenue grew.")));
    assert_eq!(b.stats().redis_hits, 1);

    // Other tenants miss through Redis as well.
    let (other, _) = b.key(&req, "m", "team-b", Some(60)).expect("cacheable");
    assert_eq!(b.get(&other).await, None);

    let entries = redis_entries(&prefix).await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0].0.ends_with(&key.to_hex()));
    assert!(entries[0].1.starts_with(b"sy1:"), "versioned value");
    let mut conn = redis_conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&entries[0].0)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= 30_000, "stored with PX: {pttl}");
    assert_eq!(a.stats().redis_errors + b.stats().redis_errors, 0);
    redis_cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_ttl_carries_over_to_the_reading_replica() {
    let prefix = unique_prefix("ttl");
    let a = cache(redis_config(&prefix)).await;
    let b = cache(redis_config(&prefix)).await;
    let (key, _) = a
        .key(&request("hi"), "m", "t", Some(60))
        .expect("cacheable");
    a.put(&key, &answer("brief"), Duration::from_millis(800))
        .await;
    assert!(b.get(&key).await.is_some());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        b.get(&key).await,
        None,
        "B kept it no longer than Redis did"
    );
    redis_cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_down_is_a_miss_not_an_error() {
    // Nothing listens on port 1.
    let cfg = CacheConfig {
        redis_url: Some("redis://127.0.0.1:1/".into()),
        redis_timeout_ms: 100,
        ..CacheConfig::default()
    };
    let a = cache(cfg.clone()).await;
    let b = cache(cfg).await;
    let (key, ttl) = a
        .key(&request("hi"), "m", "t", Some(60))
        .expect("cacheable");
    let started = Instant::now();
    a.put(&key, &answer("local"), ttl).await;
    assert_eq!(
        a.get(&key).await,
        Some(answer("local")),
        "the in-process tier still works"
    );
    assert_eq!(b.get(&key).await, None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(a.stats().redis_errors >= 1 && b.stats().redis_errors >= 1);
}

#[tokio::test]
async fn a_silent_redis_costs_at_most_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let c = cache(CacheConfig {
        redis_url: Some(format!("redis://{addr}/")),
        redis_timeout_ms: 300,
        ..CacheConfig::default()
    })
    .await;
    let (key, _) = c
        .key(&request("hi"), "m", "t", Some(60))
        .expect("cacheable");
    let started = Instant::now();
    assert_eq!(c.get(&key).await, None);
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.stats().redis_errors, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it did wait for Redis"
    );
    // Right after a failure Redis is skipped: no second wait.
    let started = Instant::now();
    assert_eq!(c.get(&key).await, None);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.stats().redis_errors, 1);
    server.abort();
}

#[tokio::test]
async fn exact_tier_stays_within_its_byte_budget() {
    let max_bytes = 64 * 1024;
    let c = cache(CacheConfig {
        max_bytes,
        ..CacheConfig::default()
    })
    .await;
    let body = "x".repeat(2_000);
    for i in 0..200 {
        let (k, ttl) = c
            .key(&request(&format!("q{i}")), "m", "t", Some(60))
            .expect("cacheable");
        c.put(&k, &answer(&body), ttl).await;
    }
    c.run_pending_tasks().await;
    let s = c.stats();
    assert!(s.bytes <= max_bytes, "{} > {max_bytes}", s.bytes);
    assert!(s.entries > 0 && s.entries < 200, "{}", s.entries);
}

// --- semantic tier ---

const DIMS: usize = 384;

fn basis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[i] = 1.0;
    v
}

/// A unit vector at angle `acos(cos)` from `basis(i)`, towards `basis(j)`.
fn near(i: usize, j: usize, cos: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[i] = cos;
    v[j] = (1.0 - cos * cos).sqrt();
    v
}

fn semantic_config(max_entries_per_scope: usize) -> CacheConfig {
    CacheConfig {
        semantic: SemanticConfig {
            enabled: true,
            max_entries_per_scope,
            ..SemanticConfig::default()
        },
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn semantic_is_off_by_default() {
    let c = cache(CacheConfig::default()).await;
    let ttl = Duration::from_secs(60);
    c.put_semantic("t", "m", basis(0), false, &answer("a"), ttl)
        .await;
    assert_eq!(c.get_semantic("t", "m", &basis(0), false).await, None);
}

#[tokio::test]
async fn semantic_hits_above_the_floor_and_misses_below() {
    let c = cache(semantic_config(100)).await;
    let ttl = Duration::from_secs(60);
    c.put_semantic("t", "m", basis(0), false, &answer("Paris."), ttl)
        .await;

    let (hit, sim) = c
        .get_semantic("t", "m", &near(0, 1, 0.97), false)
        .await
        .expect("above 0.95");
    assert_eq!(hit, answer("Paris."));
    assert!((sim - 0.97).abs() < 1e-4, "{sim}");
    assert_eq!(
        c.get_semantic("t", "m", &near(0, 1, 0.90), false).await,
        None,
        "below 0.95"
    );
    // Not normalized by the caller: compared by direction, not length.
    let scaled: Vec<f32> = basis(0).iter().map(|x| x * 3.0).collect();
    assert!(c.get_semantic("t", "m", &scaled, false).await.is_some());
    // Unusable vectors are misses, not panics.
    assert_eq!(c.get_semantic("t", "m", &[], false).await, None);
    assert_eq!(
        c.get_semantic("t", "m", &[f32::NAN; DIMS], false).await,
        None
    );
    assert_eq!(c.get_semantic("t", "m", &[1.0; 3], false).await, None);
    let s = c.stats();
    assert_eq!(s.semantic_hits, 2);
    assert_eq!(s.semantic_entries, 1);
}

#[tokio::test]
async fn semantic_is_scoped_by_tenant_and_model() {
    let c = cache(semantic_config(100)).await;
    let ttl = Duration::from_secs(60);
    c.put_semantic("team-a", "m1", basis(0), false, &answer("a-m1"), ttl)
        .await;
    assert!(c
        .get_semantic("team-a", "m1", &basis(0), false)
        .await
        .is_some());
    assert_eq!(c.get_semantic("team-b", "m1", &basis(0), false).await, None);
    assert_eq!(c.get_semantic("team-a", "m2", &basis(0), false).await, None);
}

#[tokio::test]
async fn semantic_excludes_sensitive_requests_unless_allowed() {
    let c = cache(semantic_config(100)).await;
    let ttl = Duration::from_secs(60);
    c.put_semantic("t", "m", basis(0), true, &answer("secret"), ttl)
        .await;
    assert_eq!(
        c.get_semantic("t", "m", &basis(0), false).await,
        None,
        "sensitive never stored"
    );
    c.put_semantic("t", "m", basis(0), false, &answer("plain"), ttl)
        .await;
    assert_eq!(
        c.get_semantic("t", "m", &basis(0), true).await,
        None,
        "sensitive never looked up"
    );

    let mut cfg = semantic_config(100);
    cfg.semantic.allow_sensitive = true;
    let allowed = cache(cfg).await;
    allowed
        .put_semantic("t", "m", basis(0), true, &answer("ok"), ttl)
        .await;
    assert!(allowed
        .get_semantic("t", "m", &basis(0), true)
        .await
        .is_some());
}

#[tokio::test]
async fn semantic_scope_size_and_ttl_are_bounded() {
    let c = cache(semantic_config(3)).await;
    let ttl = Duration::from_secs(60);
    for i in 0..5 {
        c.put_semantic("t", "m", basis(i), false, &answer(&format!("a{i}")), ttl)
            .await;
    }
    for i in 0..2 {
        assert_eq!(
            c.get_semantic("t", "m", &basis(i), false).await,
            None,
            "oldest evicted"
        );
    }
    for i in 2..5 {
        let (r, _) = c
            .get_semantic("t", "m", &basis(i), false)
            .await
            .expect("kept");
        assert_eq!(r, answer(&format!("a{i}")));
    }
    assert_eq!(c.stats().semantic_entries, 3);

    c.put_semantic(
        "t",
        "short",
        basis(0),
        false,
        &answer("x"),
        Duration::from_millis(200),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get_semantic("t", "short", &basis(0), false).await, None);
}

// --- privacy ---

/// The caller passes the redacted request; entries hold placeholders only, and two
/// users whose requests redact to the same text share the answer, each getting their
/// own value back on restore.
#[tokio::test]
async fn entries_hold_only_the_redacted_form() {
    use policies::{Category, Finding};
    use std::borrow::Cow;

    fn redacted(email: &str) -> (ChatRequest, switchyard::privacy::Redaction) {
        let text = format!("Write a short greeting to {email}.");
        let start = text.find(email).expect("email in text");
        let mut req = request(&text);
        let finding = Finding {
            category: Category::Pii,
            detector: policies::Detector::Rule,
            kind: Cow::Borrowed("email"),
            start,
            end: start + email.len(),
            segment: 0,
            seg_start: start,
            seg_end: start + email.len(),
            confidence: 1.0,
        };
        let r = switchyard::privacy::redact_request(&mut req, &[finding], &[Category::Pii])
            .expect("redacted");
        (req, r)
    }

    let prefix = unique_prefix("privacy");
    let c = cache(redis_config(&prefix)).await;
    let (req_a, red_a) = redacted("alice@example.com");
    let (req_b, red_b) = redacted("bob@example.org");
    let sent = serde_json::to_string(&req_a.messages).expect("json");
    assert!(
        sent.contains("<EMAIL_1>") && !sent.contains("alice"),
        "{sent}"
    );

    let (key_a, ttl) = c.key(&req_a, "m", "t", Some(30)).expect("cacheable");
    let (key_b, _) = c.key(&req_b, "m", "t", Some(30)).expect("cacheable");
    assert_eq!(key_a, key_b, "same redacted text, same entry");

    // The provider only ever saw placeholders; its answer is stored as it came.
    let upstream = answer("Hello <EMAIL_1>, have a great day!");
    c.put(&key_a, &upstream, ttl).await;
    let mut restored_a = upstream.clone();
    red_a.restore_response(&mut restored_a);
    assert_eq!(
        restored_a.content,
        vec![ContentPart::text(
            "Hello alice@example.com, have a great day!"
        )]
    );

    let mut hit_b = c.get(&key_b).await.expect("hit");
    assert_eq!(hit_b, upstream, "the cache hands back the placeholder form");
    red_b.restore_response(&mut hit_b);
    assert_eq!(
        hit_b.content,
        vec![ContentPart::text(
            "Hello bob@example.org, have a great day!"
        )]
    );

    let stored = redis_entries(&prefix).await;
    assert_eq!(stored.len(), 1);
    let raw = String::from_utf8_lossy(&stored[0].1);
    assert!(
        raw.contains("<EMAIL_1>") && !raw.contains("alice") && !raw.contains("bob"),
        "{raw}"
    );
    redis_cleanup(&prefix).await;
}

// --- stream round trip ---

fn arb_part() -> impl Strategy<Value = ContentPart> {
    prop_oneof![
        any::<String>().prop_map(ContentPart::text),
        ("[a-zA-Z0-9_]{1,16}", "[a-z_]{1,12}", any::<String>()).prop_map(
            |(id, name, arguments)| {
                ContentPart::ToolCall {
                    id,
                    name,
                    arguments,
                }
            }
        ),
    ]
}

fn arb_stop() -> impl Strategy<Value = StopReason> {
    prop_oneof![
        Just(StopReason::EndTurn),
        Just(StopReason::MaxTokens),
        Just(StopReason::ToolUse),
        Just(StopReason::ContentFilter),
        proptest::option::of(any::<String>())
            .prop_map(|sequence| StopReason::StopSequence { sequence }),
    ]
}

fn arb_response() -> impl Strategy<Value = ChatResponse> {
    (
        "[a-z0-9_-]{0,20}",
        "[a-z0-9.-]{0,20}",
        proptest::collection::vec(arb_part(), 0..6),
        arb_stop(),
        any::<[u32; 4]>(),
        any::<u64>(),
    )
        .prop_map(
            |(id, model, content, stop_reason, u, created)| ChatResponse {
                id,
                model,
                content,
                stop_reason,
                usage: Usage {
                    input_tokens: u[0],
                    output_tokens: u[1],
                    cache_read_input_tokens: u[2],
                    cache_creation_input_tokens: u[3],
                },
                created,
            },
        )
}

proptest! {
    #[test]
    fn replay_then_accumulate_round_trips(resp in arb_response()) {
        let events = replay_events(&resp);
        let mut acc = StreamAccumulator::new();
        for ev in &events {
            acc.push(ev);
        }
        prop_assert_eq!(acc.usage(), Some(resp.usage));
        prop_assert_eq!(acc.finish(), Some(resp.clone()));

        // Without its Finish the same stream is not a complete answer.
        let mut acc = StreamAccumulator::new();
        for ev in &events[..events.len() - 1] {
            acc.push(ev);
        }
        prop_assert_eq!(acc.finish(), None);
    }
}
