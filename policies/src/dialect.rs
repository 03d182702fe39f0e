//! The client dialects a gateway speaks: one type for the policy language (`dialect:`
//! conditions, test cases) and the gateway (its canonical model re-exports it).

use serde::{Deserialize, Serialize};

/// The wire dialect a client spoke (and that errors must be rendered in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// The OpenAI Responses API.
    Responses,
    /// Google's Gemini API (`generateContent`).
    Gemini,
}

impl Dialect {
    pub const ALL: [Dialect; 4] = [
        Dialect::OpenAi,
        Dialect::Anthropic,
        Dialect::Responses,
        Dialect::Gemini,
    ];

    /// The name policies, metrics and the ledger use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Responses => "responses",
            Dialect::Gemini => "gemini",
        }
    }

    pub fn parse(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::parse(d.as_str()), Some(d));
            let json = serde_json::to_string(&d).expect("serialize");
            assert_eq!(json, format!("\"{}\"", d.as_str()));
        }
        assert_eq!(Dialect::parse("OpenAI"), None);
    }
}
