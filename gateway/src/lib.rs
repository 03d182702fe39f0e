//! Switchyard: a hybrid model-routing LLM gateway.
//!
//! The request path (see `server::handle_chat`): decode dialect → canonical request →
//! classify → policy decision → (redact) → provider along the fallback chain →
//! (restore) → encode in the client's dialect.

pub mod access;
pub mod accounting;
pub mod admin;
pub mod auth;
pub mod cache;
pub mod canonical;
pub mod catalog;
pub mod config;
pub mod dashboard;
pub mod dialects;
pub mod limits;
pub mod ner;
pub mod outcome;
pub mod policy_runtime;
pub mod privacy;
pub mod providers;
pub mod routing;
pub mod sentence_head;
pub mod server;
pub mod shadow;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod volume;
