//! Google's Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`) both as a client dialect (`client.rs`: requests become
//! canonical chat requests, so every backend serves them; answers become
//! `GenerateContentResponse`s, streamed as SSE chunks of the same shape) and as a backend
//! (`upstream.rs`: the `gemini` provider's request bodies and the parsing of its answers).
//! Pure: no I/O.
//!
//! Supported: `contents` with `text`, `inlineData` / `fileData` images, `functionCall`
//! and `functionResponse` parts; `systemInstruction`; `tools[].functionDeclarations`
//! (`parameters` in Gemini's OpenAPI subset, or `parametersJsonSchema`); `toolConfig`;
//! `generationConfig` (temperature, topP, topK, maxOutputTokens, stopSequences, seed,
//! `responseMimeType: application/json` with `responseSchema` / `responseJsonSchema`).
//! Field names are accepted in camelCase (what the SDKs send) and snake_case (what the
//! API also accepts). Built-in tools (Google Search, code execution), cached contents and
//! more than one candidate are a clear 400.
//!
//! Backend side: system messages become `systemInstruction`; consecutive turns of one
//! role are merged; tools are sent with `parametersJsonSchema` (JSON Schema as it is, no
//! lossy OpenAPI conversion); a tool result becomes a `functionResponse` named after its
//! call, with the text under `output` (`error` when it failed); function calls Gemini
//! returns without an id get `call_<responseId>_<n>`. Thinking parts and Anthropic-only
//! fields are not sent. `thoughtsTokenCount` is billed as output.

mod client;
mod upstream;

#[cfg(test)]
mod tests;

pub use client::*;
pub use upstream::*;
