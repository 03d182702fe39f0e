//! Team limits set at run time (the console's Teams page, `PUT /admin/teams/{team}/limits`)
//! on top of the configured rules. A team has at most one daily budget, one monthly budget
//! and one rate limit set this way; each replaces, for that team only, the limits of every
//! configured team-scope rule of its kind (same counter, so what was spent so far still
//! counts), or adds a rule of its own when no configured rule applies to the team.
//! Persisted by `team_limits.rs`; see `docs/limits.md`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use super::config::{Period, Usd};

/// What a team limit sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    BudgetDay,
    BudgetMonth,
    Rate,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [
        LimitKind::BudgetDay,
        LimitKind::BudgetMonth,
        LimitKind::Rate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::BudgetDay => "budget_day",
            LimitKind::BudgetMonth => "budget_month",
            LimitKind::Rate => "rate",
        }
    }

    pub fn of_period(p: Period) -> LimitKind {
        match p {
            Period::Day => LimitKind::BudgetDay,
            Period::Month => LimitKind::BudgetMonth,
        }
    }

    /// The budget period this kind sets (`None` for the rate limit).
    pub fn period(self) -> Option<Period> {
        match self {
            LimitKind::BudgetDay => Some(Period::Day),
            LimitKind::BudgetMonth => Some(Period::Month),
            LimitKind::Rate => None,
        }
    }

    /// The name of the rule a team limit adds when no configured rule of its kind applies
    /// to the team (and so the name of its counter and of the limit in rejections).
    pub fn rule_name(self) -> &'static str {
        match self {
            LimitKind::BudgetDay => "team-limit-day",
            LimitKind::BudgetMonth => "team-limit-month",
            LimitKind::Rate => "team-limit-rate",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown limit {0:?}: use budget_day, budget_month or rate")]
pub struct UnknownLimitKind(pub String);

impl FromStr for LimitKind {
    type Err = UnknownLimitKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LimitKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownLimitKind(s.chars().take(64).collect()))
    }
}

fn ser_usd<S: Serializer>(v: &Option<Usd>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        // A decimal string, exact, that `Usd`'s parser reads back.
        Some(u) => s.serialize_str(u.to_string().trim_start_matches('$')),
        None => s.serialize_none(),
    }
}

/// A spend budget for one team and period: warn above `soft_usd`, reject above `hard_usd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimit {
    #[serde(default, serialize_with = "ser_usd")]
    pub soft_usd: Option<Usd>,
    #[serde(default, serialize_with = "ser_usd")]
    pub hard_usd: Option<Usd>,
}

impl BudgetLimit {
    pub fn validate(&self) -> Result<(), String> {
        match (self.soft_usd, self.hard_usd) {
            (None, None) => Err("a budget needs soft_usd, hard_usd or both".into()),
            (Some(s), Some(h)) if s > h => Err(format!(
                "soft_usd {s} is above hard_usd {h}, so it could never warn"
            )),
            _ => Ok(()),
        }
    }
}

/// Requests and tokens per UTC clock minute for one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u32>,
}

impl RateLimit {
    pub fn validate(&self) -> Result<(), String> {
        if self.rpm.is_none() && self.tpm.is_none() {
            return Err("a rate limit needs rpm, tpm or both".into());
        }
        Ok(())
    }
}

/// One kind of team limit with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    Budget(BudgetLimit),
    Rate(RateLimit),
}

impl Serialize for LimitValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LimitValue::Budget(b) => b.serialize(s),
            LimitValue::Rate(r) => r.serialize(s),
        }
    }
}

/// The limits set for one team; `None` leaves the configured rules as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TeamLimits {
    pub budget_day: Option<BudgetLimit>,
    pub budget_month: Option<BudgetLimit>,
    pub rate: Option<RateLimit>,
}

impl TeamLimits {
    pub fn budget(&self, p: Period) -> Option<&BudgetLimit> {
        match p {
            Period::Day => self.budget_day.as_ref(),
            Period::Month => self.budget_month.as_ref(),
        }
    }

    pub fn get(&self, kind: LimitKind) -> Option<LimitValue> {
        match kind {
            LimitKind::BudgetDay => self.budget_day.map(LimitValue::Budget),
            LimitKind::BudgetMonth => self.budget_month.map(LimitValue::Budget),
            LimitKind::Rate => self.rate.map(LimitValue::Rate),
        }
    }

    /// Sets (or with `None` clears) one kind. A value of the other shape is refused.
    pub fn set(&mut self, kind: LimitKind, value: Option<LimitValue>) -> Result<(), String> {
        match (kind, value) {
            (LimitKind::BudgetDay, None) => self.budget_day = None,
            (LimitKind::BudgetMonth, None) => self.budget_month = None,
            (LimitKind::Rate, None) => self.rate = None,
            (LimitKind::BudgetDay, Some(LimitValue::Budget(b))) => self.budget_day = Some(b),
            (LimitKind::BudgetMonth, Some(LimitValue::Budget(b))) => self.budget_month = Some(b),
            (LimitKind::Rate, Some(LimitValue::Rate(r))) => self.rate = Some(r),
            (k, Some(_)) => return Err(format!("{k} takes a value of another shape")),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == TeamLimits::default()
    }
}

/// Team name → its limits; teams without any are absent.
pub type Overrides = HashMap<String, TeamLimits>;

/// A team name as the limits and the audit trail accept it.
pub fn validate_team(team: &str) -> Result<(), String> {
    if team.trim().is_empty() || team.len() > 128 || team.chars().any(char::is_control) {
        return Err("a team is 1..=128 bytes without control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Option<Usd> {
        Usd::parse(s).ok()
    }

    #[test]
    fn kinds_round_trip() {
        for k in LimitKind::ALL {
            assert_eq!(k.as_str().parse::<LimitKind>(), Ok(k));
        }
        assert!("budget_week".parse::<LimitKind>().is_err());
    }

    #[test]
    fn budgets_need_a_threshold_and_soft_within_hard() {
        let b = |soft, hard| BudgetLimit {
            soft_usd: usd(soft),
            hard_usd: usd(hard),
        };
        assert!(b("", "").validate().is_err());
        assert!(b("5", "4").validate().is_err());
        assert!(b("4", "4").validate().is_ok());
        assert!(b("", "0.000001").validate().is_ok());
        assert!(RateLimit {
            rpm: None,
            tpm: None
        }
        .validate()
        .is_err());
    }

    #[test]
    fn amounts_serialize_exactly_and_parse_back() {
        let b = BudgetLimit {
            soft_usd: usd("0.1"),
            hard_usd: usd("12.5"),
        };
        let v = serde_json::to_value(b).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"soft_usd": "0.10", "hard_usd": "12.50"})
        );
        let back: BudgetLimit = serde_json::from_value(v).expect("parse");
        assert_eq!(back, b);
        let from_numbers: BudgetLimit =
            serde_json::from_str(r#"{"hard_usd": 0.29}"#).expect("number");
        assert_eq!(from_numbers.hard_usd, usd("0.29"));
        assert!(serde_json::from_str::<BudgetLimit>(r#"{"hard": 1}"#).is_err());
    }

    #[test]
    fn set_refuses_the_wrong_shape() {
        let mut t = TeamLimits::default();
        let rate = LimitValue::Rate(RateLimit {
            rpm: Some(1),
            tpm: None,
        });
        assert!(t.set(LimitKind::BudgetDay, Some(rate)).is_err());
        assert!(t.set(LimitKind::Rate, Some(rate)).is_ok());
        assert_eq!(t.get(LimitKind::Rate), Some(rate));
        assert!(t.set(LimitKind::Rate, None).is_ok());
        assert!(t.is_empty());
    }
}
