//! Mock upstreams and test harness for end-to-end tests.
//!
//! - [`mock`]: a deterministic OpenAI + Anthropic mock upstream that records requests.
//! - [`bedrock_mock`]: an AWS Bedrock Converse mock whose SigV4 check is botocore's.
//! - [`harness`]: starts a mock upstream and a Switchyard gateway wired to it.
//! - [`client`]: helpers for raw HTTP calls and SSE parsing in tests.
//! - [`loadgen`]: the closed-loop load generator of the `bench-*` binaries.

pub mod bedrock_mock;
pub mod client;
pub mod harness;
pub mod loadgen;
pub mod mock;
