//! Client and provider wire formats as serde types plus pure conversion functions to
//! and from `crate::canonical`. No I/O here: translation is unit-testable.

pub mod anthropic;
pub mod openai;
pub mod sse;
