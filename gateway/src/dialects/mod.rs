//! Client and provider wire formats plus pure conversion functions to and from
//! `crate::canonical`. No I/O here: translation is unit-testable. `client` is the one
//! place that dispatches on the client's dialect.

pub mod anthropic;
pub mod bedrock;
pub mod client;
pub mod gemini;
pub mod json;
pub mod openai;
pub mod responses;
pub mod sse;
