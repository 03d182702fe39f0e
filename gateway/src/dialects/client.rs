//! The client side of every dialect behind one type: `ClientSide` is what reading a
//! request in its dialect produced besides the canonical request (for the Responses API,
//! the turn its answer renders into), and it renders answers, errors and streams back.
//! The request path and the other handlers never match on the dialect themselves.

use serde_json::Value;

use super::{anthropic, gemini, openai, responses};
use crate::canonical::{ChatRequest, ChatResponse, Dialect, GatewayError, StreamEvent};

/// Which client API a request came in on (Gemini's URL also names the model and
/// whether to stream).
#[derive(Debug, Clone)]
pub enum Endpoint {
    OpenAiChat,
    AnthropicMessages,
    Responses,
    Gemini(gemini::Call),
}

impl Endpoint {
    pub fn dialect(&self) -> Dialect {
        match self {
            Endpoint::OpenAiChat => Dialect::OpenAi,
            Endpoint::AnthropicMessages => Dialect::Anthropic,
            Endpoint::Responses => Dialect::Responses,
            Endpoint::Gemini(_) => Dialect::Gemini,
        }
    }
}

/// How answers go back to this client.
#[derive(Debug, Clone)]
pub enum ClientSide {
    OpenAi { include_usage: bool },
    Anthropic,
    Responses(Box<responses::Turn>),
    Gemini,
}

/// A client's request body on its endpoint → the canonical request and its client side.
pub fn parse_request(
    endpoint: &Endpoint,
    body: &[u8],
) -> Result<(ChatRequest, ClientSide), GatewayError> {
    match endpoint {
        Endpoint::OpenAiChat => {
            let request = openai::parse_request(body)?;
            let include_usage = request.include_usage;
            Ok((request, ClientSide::OpenAi { include_usage }))
        }
        Endpoint::AnthropicMessages => Ok((anthropic::parse_request(body)?, ClientSide::Anthropic)),
        Endpoint::Responses => {
            let (request, turn) = responses::parse_request(body)?;
            Ok((request, ClientSide::Responses(Box::new(turn))))
        }
        Endpoint::Gemini(call) => Ok((gemini::parse_request(call, body)?, ClientSide::Gemini)),
    }
}

/// An error body as the client's dialect writes it.
pub fn render_error(dialect: Dialect, err: &GatewayError) -> Value {
    match dialect {
        Dialect::OpenAi => openai::render_error(err),
        Dialect::Anthropic => anthropic::render_error(err),
        Dialect::Responses => responses::render_error(err),
        Dialect::Gemini => gemini::render_error(err),
    }
}

impl ClientSide {
    /// A complete answer as the client's dialect writes it.
    pub fn render_response(&self, response: &ChatResponse) -> Value {
        match self {
            ClientSide::OpenAi { .. } => openai::render_response(response),
            ClientSide::Anthropic => anthropic::render_response(response),
            ClientSide::Responses(turn) => responses::render_response(turn, response),
            ClientSide::Gemini => gemini::render_response(response),
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
            ClientSide::Gemini => StreamEncoder::Gemini(gemini::StreamEncoder::new()),
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
    Gemini(gemini::StreamEncoder),
}

impl StreamEncoder {
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode(ev, out),
            StreamEncoder::Anthropic(e) => e.encode(ev, out),
            StreamEncoder::Responses(e) => e.encode(ev, out),
            StreamEncoder::Gemini(e) => e.encode(ev, out),
        }
    }

    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode_error(err, out),
            StreamEncoder::Anthropic(e) => e.encode_error(err, out),
            StreamEncoder::Responses(e) => e.encode_error(err, out),
            StreamEncoder::Gemini(e) => e.encode_error(err, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.finish(out),
            StreamEncoder::Anthropic(e) => e.finish(out),
            StreamEncoder::Responses(e) => e.finish(out),
            StreamEncoder::Gemini(e) => e.finish(out),
        }
    }
}
