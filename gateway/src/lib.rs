//! Switchyard: a hybrid model-routing LLM gateway.

pub mod canonical;
pub mod dialects;
