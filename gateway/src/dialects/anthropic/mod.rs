//! Anthropic Messages: the client side (`POST /v1/messages` and
//! `/v1/messages/count_tokens` requests, responses, errors and event streams) and the
//! backend side (calling an Anthropic upstream).
//!
//! Translation choices:
//! - `system` (string or text blocks) becomes one leading `Role::System` message; when
//!   building upstream requests, every system message, wherever it sits, is moved to
//!   the top-level `system` in order (a string for one plain block, else text blocks so
//!   `cache_control` survives).
//! - Anthropic requires alternating roles: consecutive same-role messages are merged,
//!   messages left without content (e.g. empty text, which Anthropic rejects) are
//!   dropped, and `tool_result` blocks are moved to the front of their user message as
//!   the API demands. OpenAI's message `name` has no equivalent and is dropped.
//! - `max_tokens` is required upstream: [`DEFAULT_MAX_TOKENS`] when the client gave
//!   none (OpenAI clients usually do not).
//! - `response_format` json_object / json_schema have no Anthropic field: an
//!   instruction (with the schema) is appended to the system prompt.
//! - `temperature` is clamped to Anthropic's 0..=1 (OpenAI allows up to 2); `top_p` of
//!   1 or more is a no-op and omitted, because newer Claude models reject requests
//!   that set both `temperature` and `top_p` and OpenAI clients often send `top_p: 1`.
//!   `seed` and the penalties are dropped.
//! - Tool arguments are JSON text canonically; Anthropic wants an object. Empty text
//!   becomes `{}`; text that is not a JSON object (models emit truncated JSON at
//!   `max_tokens`) becomes `{"_raw_arguments": "<text>"}` so nothing is silently lost
//!   and the tool executor reports a schema error the model can see. Streams pass the
//!   fragments through verbatim.
//! - Usage: Anthropic's `input_tokens` excludes cache reads and writes, canonical
//!   `input_tokens` includes them; converted both ways.
//! - Extended thinking (`thinking` with its `signature`, `redacted_thinking`) is kept in
//!   order as canonical thinking parts, responses and streams alike, and sent back to
//!   Anthropic backends untouched (the signature covers the text); other dialects and
//!   backends skip it.
//! - Blocks the canonical model has no place for (server tools, `document`, ...) are
//!   rejected in requests with a precise error and skipped in upstream responses and
//!   streams; `cache_control` on `tool_use` blocks is dropped.
//!
//! `client.rs` is the client side, `upstream.rs` the backend side; tests that cross them
//! (round trips, translation) are in `tests.rs`.

mod client;
mod upstream;

#[cfg(test)]
pub(super) mod tests;

pub use client::*;
pub use upstream::*;
