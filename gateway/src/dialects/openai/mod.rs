//! OpenAI Chat Completions: the client side (`POST /v1/chat/completions` requests,
//! responses, errors and `chat.completion.chunk` streams) and the backend side (calling
//! an OpenAI-compatible upstream).
//!
//! Translation choices:
//! - `developer` messages become `Role::System` and are sent upstream as `system`
//!   (OpenAI maps `system` to `developer` itself for models that want it).
//! - `max_completion_tokens` wins over `max_tokens` when a client sends both. Upstream
//!   requests carry `max_tokens` for breadth: every OpenAI-compatible server (vLLM,
//!   Ollama, llama.cpp, Groq, ...) knows it, while only OpenAI itself knows
//!   `max_completion_tokens` (its reasoning models reject `max_tokens`: a known gap).
//! - `top_k` has no OpenAI field and is dropped upstream; `seed` and the penalties have
//!   no Anthropic field and are dropped there.
//! - Tool `strict` flags are not kept (the canonical tool has no such field).
//! - A tool result's `is_error` and images have no OpenAI equivalent: the flag is
//!   dropped, images inside tool results are dropped.
//! - Tool results mixed with other user content are sent as `tool` messages first, then
//!   a `user` message with the rest, because OpenAI wants tool messages right after
//!   the assistant message that called them.
//! - An upstream `refusal` becomes text and turns a `stop` finish into `ContentFilter`.
//! - Text parts of a response are concatenated without separator, exactly as a
//!   streaming client would concatenate the deltas.
//!
//! `client.rs` is the client side, `upstream.rs` the backend side; tests that cross them
//! (round trips, translation) are in `tests.rs`.

mod client;
mod upstream;

#[cfg(test)]
pub(super) mod tests;

pub use client::*;
pub use upstream::*;
