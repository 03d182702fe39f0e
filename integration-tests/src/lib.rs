//! Mock upstreams and test harness for end-to-end tests.
//!
//! - [`mock`]: a deterministic OpenAI + Anthropic mock upstream that records requests.
//! - [`harness`]: starts a mock upstream and a Switchyard gateway wired to it.
//! - [`client`]: helpers for raw HTTP calls and SSE parsing in tests.

pub mod client;
pub mod harness;
pub mod mock;
