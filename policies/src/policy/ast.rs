//! The YAML surface: serde types exactly as written in policy and policy-test files.
//! Everything here is checked and lowered by `compile` into the engine's own types.

use crate::classify::Category;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A string or a list of strings (`team: ml` or `team: [ml, research]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetDef {
    pub model: Option<String>,
    pub chain: Option<Vec<String>>,
    #[allow(dead_code)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrivacyDef {
    pub categories: Option<Vec<Category>>,
    pub min_confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeDef {
    pub gte: Option<f64>,
    pub lt: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SensitivityDef {
    pub categories: Option<Vec<Category>>,
    pub kinds: Option<OneOrMany>,
    pub min_confidence: Option<f32>,
    pub privacy_critical: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeDef {
    pub from: Option<u8>,
    pub to: Option<u8>,
    pub days: Option<Vec<Weekday>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum VolumeScope {
    #[default]
    Team,
    Key,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VolumeDef {
    #[serde(default)]
    pub scope: VolumeScope,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
}

/// A condition map: every key present must hold (implicit `all`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CondDef {
    pub all: Option<Vec<CondDef>>,
    pub any: Option<Vec<CondDef>>,
    pub not: Option<Box<CondDef>>,
    pub sensitivity: Option<SensitivityDef>,
    pub difficulty: Option<RangeDef>,
    pub team: Option<OneOrMany>,
    pub key: Option<OneOrMany>,
    pub app: Option<OneOrMany>,
    pub tags: Option<OneOrMany>,
    pub model: Option<OneOrMany>,
    pub dialect: Option<OneOrMany>,
    pub tokens: Option<RangeDef>,
    pub stream: Option<bool>,
    pub time: Option<TimeDef>,
    pub volume: Option<VolumeDef>,
}

/// What a rule (or the default) does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionDef {
    pub route: Option<String>,
    pub redact: Option<Vec<Category>>,
    pub block: Option<String>,
    pub require_local: Option<bool>,
    pub require_commercial_license: Option<bool>,
    pub cache_ttl_s: Option<u64>,
    pub budget: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub shadow: Option<ShadowDef>,
}

/// `shadow:` — also send a sample of the requests a rule serves to another target,
/// after the client has its answer, to compare the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShadowDef {
    pub target: String,
    /// Fraction of the rule's requests shadowed, 0..=1 (default 0.05).
    pub sample: Option<f64>,
    /// Keep the (redacted) prompt and both answers with the scored pair.
    pub retain_text: Option<bool>,
}

/// A rule: `id`, optional `description` and `when`, and the action keys inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDef {
    pub id: String,
    #[allow(dead_code)]
    pub description: Option<String>,
    pub when: Option<CondDef>,
    pub route: Option<String>,
    pub redact: Option<Vec<Category>>,
    pub block: Option<String>,
    pub require_local: Option<bool>,
    pub require_commercial_license: Option<bool>,
    pub cache_ttl_s: Option<u64>,
    pub budget: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub shadow: Option<ShadowDef>,
}

impl RuleDef {
    pub(crate) fn action(&self) -> ActionDef {
        ActionDef {
            route: self.route.clone(),
            redact: self.redact.clone(),
            block: self.block.clone(),
            require_local: self.require_local,
            require_commercial_license: self.require_commercial_license,
            cache_ttl_s: self.cache_ttl_s,
            budget: self.budget.clone(),
            headers: self.headers.clone(),
            shadow: self.shadow.clone(),
        }
    }
}

// ---- policy tests (`*.test.yaml`) ----

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageDef {
    pub role: String,
    pub content: String,
}

/// `time:` in a test request: unix seconds or `YYYY-MM-DDTHH:MM[:SS]Z`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TimeValue {
    Unix(i64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestDef {
    pub messages: Option<Vec<MessageDef>>,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub team: Option<String>,
    pub key: Option<String>,
    pub app: Option<String>,
    pub tags: Option<Vec<String>>,
    pub stream: Option<bool>,
    pub dialect: Option<crate::Dialect>,
    pub time: Option<TimeValue>,
    pub team_rpm: Option<u32>,
    pub key_rpm: Option<u32>,
    pub difficulty: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectDef {
    pub rule: Option<String>,
    pub target: Option<String>,
    pub model: Option<String>,
    pub external: Option<bool>,
    pub redactions: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub privacy_critical: Option<bool>,
    /// The shadow model expected, or `none`.
    pub shadow: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestCaseDef {
    pub name: String,
    pub request: RequestDef,
    pub expect: ExpectDef,
}
