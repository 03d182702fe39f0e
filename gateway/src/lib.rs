//! Switchyard: a hybrid model-routing LLM gateway.
//!
//! The request path (see `server::handle_chat`): decode dialect → canonical request →
//! route → provider → stream back in the client's dialect.

pub mod canonical;
pub mod config;
pub mod dialects;
pub mod providers;
pub mod routing;
pub mod server;
