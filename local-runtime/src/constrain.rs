//! Constrained decoding: a grammar compiled from a JSON schema masks, at every step, the
//! tokens that cannot continue a valid answer, so the output always parses and matches
//! the schema. The engine is `llguidance` (the one llama.cpp and onnxruntime-genai use):
//! an Earley parser over a lexer of derivative-based regexes, walked against a trie of
//! the vocabulary's byte strings. One [`Grammars`] per model (the trie is built once);
//! one [`TokenMask`] per constrained sequence, so a batch mixes constrained and free
//! rows, each with its own mask.

use std::path::Path;
use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokenizers::Tokenizer;

use crate::error::RuntimeError;

/// What the answer must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputConstraint {
    /// Any JSON object (OpenAI `response_format: json_object`).
    JsonObject,
    /// A JSON value matching this JSON schema (draft 2020-12 subset that llguidance
    /// supports: types, enum/const, properties/required/additionalProperties, items,
    /// min/maxItems, anyOf/oneOf/allOf, local `$ref`s, string lengths/patterns/formats,
    /// numeric bounds).
    JsonSchema { schema: Value },
}

impl OutputConstraint {
    fn schema(&self) -> Value {
        match self {
            OutputConstraint::JsonObject => json!({"type": "object"}),
            OutputConstraint::JsonSchema { schema } => schema.clone(),
        }
    }
}

/// Whitespace is fixed (", " and ": ", no newlines): with free whitespace a small model
/// can spend its whole budget on indentation, and a fixed layout is one fewer choice
/// per step. The separators are the ones models see most in their training data.
fn compile_options() -> JsonCompileOptions {
    JsonCompileOptions {
        item_separator: ", ".into(),
        key_separator: ": ".into(),
        whitespace_flexible: false,
        ..JsonCompileOptions::default()
    }
}

/// The tokenizer as llguidance sees it: every token id as its byte string (special
/// tokens marked so grammars never produce them), plus the end-of-sequence ids.
struct Vocabulary {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Used only for text the grammar forces (e.g. a `const`); the model's own tokenizer
    /// gives its canonical tokenization, and the trie's greedy split stands in if the
    /// bytes are not valid UTF-8.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |s| {
            self.tokenizer
                .encode(s, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default()
        })
    }
}

/// Compiles schemas into per-sequence masks for one model.
pub(crate) struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    /// `vocab_size` is the model's logits width (it may exceed the tokenizer's: the
    /// extra ids are padding no grammar allows).
    pub fn new(
        tokenizer_json: &Path,
        tokenizer: Arc<Tokenizer>,
        vocab_size: usize,
        eos: &[u32],
    ) -> Result<Grammars, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidModel {
            path: tokenizer_json.to_path_buf(),
            reason,
        };
        let json: Value = crate::files::read_json(tokenizer_json)?;
        let mut words = llguidance::token_bytes_from_tokenizer_json(&json)
            .map_err(|e| invalid(format!("vocabulary for constrained decoding: {e}")))?;
        if words.len() > vocab_size {
            return Err(invalid(format!(
                "tokenizer has {} tokens, the model's logits only {vocab_size}",
                words.len()
            )));
        }
        while words.len() < vocab_size {
            let mut pad = format!(".<[{}]>", words.len()).into_bytes();
            pad[0] = TokTrie::SPECIAL_TOKEN_MARKER;
            words.push(pad);
        }
        let first_eos = *eos
            .first()
            .ok_or_else(|| invalid("the model has no end-of-sequence token".into()))?;
        let info = TokRxInfo::new(vocab_size as u32, first_eos);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(eos);
        let env: TokEnv = Arc::new(Vocabulary { trie, tokenizer });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| invalid(format!("constrained decoding: {e}")))?;
        // llguidance logs warnings to stderr by default; they surface as errors instead.
        factory.quiet();
        Ok(Grammars { factory })
    }

    /// Compiles a constraint; a schema it cannot satisfy or does not support is an
    /// `InvalidRequest` naming the problem.
    pub fn compile(&self, c: &OutputConstraint) -> Result<TokenMask, RuntimeError> {
        let mut schema = c.schema();
        if !schema.is_object() {
            return Err(RuntimeError::InvalidRequest(
                "response schema must be a JSON object".into(),
            ));
        }
        compile_options().apply_to(&mut schema);
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_json_schema(schema))
            .map_err(|e| RuntimeError::InvalidRequest(format!("response schema: {e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(RuntimeError::InvalidRequest(format!(
                "response schema: {e}"
            )));
        }
        let env = matcher
            .tok_env()
            .map_err(|e| RuntimeError::InvalidRequest(format!("response schema: {e}")))?;
        Ok(TokenMask {
            matcher,
            env,
            json: JsonScan::default(),
        })
    }
}

/// Longest JSON number the mask lets a model write (an f64 printed in full is at most 24
/// characters). JSON grammars allow numbers of any length, and a small model caught in a
/// loop writes `1.8187500000000…` until its budget runs out; past this length only the
/// number's end is allowed.
pub(crate) const MAX_NUMBER_CHARS: usize = 24;

/// Tokens left at which an answer under a grammar is steered to its end: a small model can
/// loop inside a string (`"type_1_disease_name_type_1_…"`) until `max_tokens` cuts the JSON
/// off unparsed. From here on, where the grammar allows a token that closes the string (or
/// an object / array), only such tokens are offered, so the answer still completes. A
/// quarter of the budget at most, so short answers are left alone.
pub(crate) const CLOSE_WITHIN: usize = 48;

/// Whether a sequence with `remaining` of `max_new` tokens left is in its closing window.
pub(crate) fn closing(remaining: usize, max_new: usize) -> bool {
    remaining <= CLOSE_WITHIN.min(max_new / 4)
}

/// Where the committed output stands lexically (it is valid JSON so far, by construction):
/// inside a string or not, and how long the number being written is.
#[derive(Debug, Default, Clone, PartialEq)]
struct JsonScan {
    in_string: bool,
    escaped: bool,
    number_run: usize,
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
}

impl JsonScan {
    fn advance(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else if b == b'"' {
                self.in_string = true;
                self.number_run = 0;
            } else if is_number_byte(b) {
                self.number_run += 1;
            } else {
                self.number_run = 0;
            }
        }
    }

    fn number_is_full(&self) -> bool {
        !self.in_string && self.number_run >= MAX_NUMBER_CHARS
    }
}

/// One sequence's grammar state.
pub(crate) struct TokenMask {
    matcher: Matcher,
    env: TokEnv,
    json: JsonScan,
}

impl TokenMask {
    /// Sets every token the grammar forbids to −∞ (end of sequence is allowed only
    /// where the answer is complete). `closing`: the budget is nearly spent (see
    /// [`CLOSE_WITHIN`]).
    pub fn apply(&mut self, logits: &mut [f32], closing: bool) -> Result<(), RuntimeError> {
        let mut mask = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| RuntimeError::InvalidRequest(format!("constrained decoding: {e}")))?;
        if mask.is_zero() {
            return Err(RuntimeError::InvalidRequest(
                "constrained decoding: no token can continue the answer".into(),
            ));
        }
        if self.json.number_is_full() {
            let trie = self.env.tok_trie();
            let mut ended = mask.clone();
            mask.iter_set_entries(|i| {
                if trie
                    .token(i as u32)
                    .first()
                    .copied()
                    .is_some_and(is_number_byte)
                {
                    ended.disallow_token(i as u32);
                }
            });
            // Where the grammar needs another digit (e.g. after "1."), keep it.
            if !ended.is_zero() {
                mask = ended;
            }
        }
        if closing {
            let trie = self.env.tok_trie();
            let wanted: &[u8] = if self.json.in_string { b"\"" } else { b"}]" };
            let mut closes = mask.clone();
            mask.iter_set_entries(|i| {
                let bytes = trie.token(i as u32);
                let special = bytes.first() == Some(&TokTrie::SPECIAL_TOKEN_MARKER);
                if !special && !bytes.iter().any(|b| wanted.contains(b)) {
                    closes.disallow_token(i as u32);
                }
            });
            // Where the grammar needs something else first (a required key, a digit),
            // that stays allowed.
            if !closes.is_zero() {
                mask = closes;
            }
        }
        mask.iter_unset_entries(|i| {
            if let Some(l) = logits.get_mut(i) {
                *l = f32::NEG_INFINITY;
            }
        });
        Ok(())
    }

    /// Advances the grammar past a sampled token.
    pub fn commit(&mut self, token: u32) -> Result<(), RuntimeError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| RuntimeError::InvalidRequest(format!("constrained decoding: {e}")))?;
        self.json.advance(self.env.tok_trie().token(token));
        Ok(())
    }

    /// The answer is complete and nothing can follow it.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_window_is_the_last_48_tokens_or_a_quarter_of_short_budgets() {
        assert!(!closing(49, 300));
        assert!(closing(48, 300));
        assert!(closing(0, 300));
        assert!(!closing(11, 40));
        assert!(closing(10, 40));
        assert!(!closing(1, 3));
    }

    #[test]
    fn scan_counts_number_runs_outside_strings_only() {
        let mut s = JsonScan::default();
        s.advance(br#"{"zip": "627041234567890123456789012345", "n": 1.25"#);
        assert_eq!(s.number_run, 4);
        assert!(!s.in_string);
        s.advance(br#", "q": "a\"b 1234"#);
        assert!(s.in_string, "an escaped quote does not end the string");
        s.advance(br#"", "x": -1.000000000000000000000000"#);
        assert!(s.number_is_full());
        s.advance(b"}");
        assert!(!s.number_is_full());
    }
}
