//! Switchyard: a hybrid model-routing LLM gateway.
//!
//! The request path (see `server::handle_chat`): decode dialect → canonical request →
//! classify → policy decision → (redact) → provider along the fallback chain →
//! (restore) → encode in the client's dialect.

pub mod canonical;
pub mod config;
pub mod dialects;
pub mod policy_runtime;
pub mod privacy;
pub mod providers;
pub mod routing;
pub mod server;
pub mod volume;
