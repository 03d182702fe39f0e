//! Switchyard: a hybrid model-routing LLM gateway.
//!
//! The request path is `pipeline::handle`: intake → decide (classify, policy, redact) →
//! cache → admit → dispatch along the fallback chain → respond (restore, encode in the
//! client's dialect) → account. docs/ARCHITECTURE.md is the map.

pub mod access;
pub mod accounting;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod canonical;
pub mod catalog;
pub mod config;
pub mod console;
pub mod conversations;
pub mod dashboard;
pub mod dialects;
pub mod limits;
pub mod ner;
pub mod oidc;
pub mod pipeline;
pub mod policy_runtime;
pub mod privacy;
pub mod providers;
pub mod routing;
pub mod sentence_head;
pub mod server;
pub mod shadow;
pub mod startup;
pub mod store;
pub mod team_limits;
pub mod telemetry;
pub mod tls;
pub mod volume;
