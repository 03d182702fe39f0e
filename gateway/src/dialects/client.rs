//! The client side of every dialect behind one type: `ClientSide` is what reading a
//! request in its dialect produced besides the canonical request (for the Responses API,
//! the turn its answer renders into), and it renders answers, errors and streams back.
//! The request path and the other handlers never match on the dialect themselves.

use serde_json::Value;

use super::{anthropic, openai, responses};
use crate::canonical::{ChatRequest, ChatResponse, Dialect, GatewayError, StreamEvent};

/// How answers go back to this client.
#[derive(Debug, Clone)]
pub enum ClientSide {
    OpenAi { include_usage: bool },
    Anthropic,
    Responses(Box<responses::Turn>),
}

/// A client's request body in its dialect → the canonical request and its client side.
pub fn parse_request(
    dialect: Dialect,
    body: &[u8],
) -> Result<(ChatRequest, ClientSide), GatewayError> {
    match dialect {
        Dialect::OpenAi => {
            let request = openai::parse_request(body)?;
            let include_usage = request.include_usage;
            Ok((request, ClientSide::OpenAi { include_usage }))
        }
        Dialect::Anthropic => Ok((anthropic::parse_request(body)?, ClientSide::Anthropic)),
        Dialect::Responses => {
            let (request, turn) = responses::parse_request(body)?;
            Ok((request, ClientSide::Responses(Box::new(turn))))
        }
    }
}

/// An error body as the client's dialect writes it.
pub fn render_error(dialect: Dialect, err: &GatewayError) -> Value {
    match dialect {
        Dialect::OpenAi => openai::render_error(err),
        Dialect::Anthropic => anthropic::render_error(err),
        Dialect::Responses => responses::render_error(err),
    }
}

impl ClientSide {
    /// A complete answer as the client's dialect writes it.
    pub fn render_response(&self, response: &ChatResponse) -> Value {
        match self {
            ClientSide::OpenAi { .. } => openai::render_response(response),
            ClientSide::Anthropic => anthropic::render_response(response),
            ClientSide::Responses(turn) => responses::render_response(turn, response),
        }
    }

    pub fn stream_encoder(&self) -> StreamEncoder {
        match self {
            ClientSide::OpenAi { include_usage } => {
                StreamEncoder::OpenAi(openai::StreamEncoder::new(*include_usage))
            }
            ClientSide::Anthropic => StreamEncoder::Anthropic(anthropic::StreamEncoder::new()),
            ClientSide::Responses(turn) => {
                StreamEncoder::Responses(Box::new(responses::StreamEncoder::new((**turn).clone())))
            }
        }
    }

    /// The Responses turn, when this client speaks the Responses API.
    pub fn turn(&self) -> Option<&responses::Turn> {
        match self {
            ClientSide::Responses(turn) => Some(turn),
            _ => None,
        }
    }
}

/// Canonical stream events → the client's server-sent events.
pub enum StreamEncoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Responses(Box<responses::StreamEncoder>),
}

impl StreamEncoder {
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode(ev, out),
            StreamEncoder::Anthropic(e) => e.encode(ev, out),
            StreamEncoder::Responses(e) => e.encode(ev, out),
        }
    }

    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode_error(err, out),
            StreamEncoder::Anthropic(e) => e.encode_error(err, out),
            StreamEncoder::Responses(e) => e.encode_error(err, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.finish(out),
            StreamEncoder::Anthropic(e) => e.finish(out),
            StreamEncoder::Responses(e) => e.finish(out),
        }
    }
}
