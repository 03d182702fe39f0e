//! The in-process open model (local-runtime) as just another provider. Requests
//! served here never leave the process.

use futures::future::BoxFuture;
use futures::StreamExt;
use local_runtime::tools::{forced_call_schema, parse_tool_calls, ForcedTool, ToolCallSplitter};
use local_runtime::{
    ChatMessage, FinishReason, GenerateEvent, GenerateRequest, LocalModel, OutputConstraint,
    RuntimeError, SamplingParams, ToolSpec,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ResponseFormat, Role,
    StopReason, StreamEvent, ToolChoice, Usage,
};

use super::{Call, Provider};
use crate::canonical::EventStream;

pub struct LocalProvider {
    model: LocalModel,
    /// Busy time per finished response id, until accounting takes it. Bounded: entries
    /// nobody takes (a client gone mid-way) are dropped wholesale past the cap.
    compute: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>,
}

const MAX_UNTAKEN_COMPUTE: usize = 10_000;

fn note_compute(
    map: &std::sync::Mutex<std::collections::HashMap<String, f64>>,
    id: &str,
    busy_ms: f64,
) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= MAX_UNTAKEN_COMPUTE {
            m.clear();
        }
        m.insert(id.to_string(), busy_ms);
    }
}

impl LocalProvider {
    pub fn new(model: LocalModel) -> Self {
        LocalProvider {
            model,
            compute: Default::default(),
        }
    }

    pub fn model(&self) -> &LocalModel {
        &self.model
    }
}

/// Flattens canonical messages to the plain-text chat the model's template expects.
/// Earlier tool calls and results are written the way tool-tuned open models read them
/// (Hermes / Qwen `<tool_call>` and `<tool_response>` blocks); images are refused rather
/// than silently dropped.
pub fn to_chat_messages(req: &ChatRequest) -> Result<Vec<ChatMessage>, GatewayError> {
    let mut out = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let mut text = String::new();
        for part in &m.content {
            match part {
                ContentPart::Text { text: t, .. } => push_text(&mut text, t),
                ContentPart::ToolCall {
                    name, arguments, ..
                } => {
                    let args = serde_json::from_str::<serde_json::Value>(arguments)
                        .unwrap_or_else(|_| serde_json::Value::String(arguments.clone()));
                    let call = serde_json::json!({"name": name, "arguments": args});
                    push_text(&mut text, &format!("<tool_call>\n{call}\n</tool_call>"));
                }
                ContentPart::ToolResult { content, .. } => {
                    let mut result = String::new();
                    for inner in content {
                        if let ContentPart::Text { text: t, .. } = inner {
                            push_text(&mut result, t);
                        }
                    }
                    push_text(
                        &mut text,
                        &format!("<tool_response>\n{result}\n</tool_response>"),
                    );
                }
                ContentPart::Image { .. } => {
                    return Err(GatewayError::InvalidRequest(
                        "the local model does not accept images".into(),
                    ))
                }
                // Another model's signed reasoning: not part of the conversation this
                // model continues (chat templates drop earlier reasoning too).
                ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => {}
            }
        }
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        out.push(ChatMessage {
            role: role.to_string(),
            content: text,
        });
    }
    Ok(out)
}

fn push_text(buf: &mut String, t: &str) {
    if !buf.is_empty() {
        buf.push('\n');
    }
    buf.push_str(t);
}

/// Temperature of local requests that set none: greedy. Measured on the default 135M
/// model, sampling at OpenAI's default of 1.0 turned usable answers into fluent
/// nonsense (docs/local-runtime.md, "Defaults"); a client that wants variety asks for it.
pub const DEFAULT_LOCAL_TEMPERATURE: f32 = 0.0;

fn sampling(req: &ChatRequest) -> SamplingParams {
    let s = &req.sampling;
    SamplingParams {
        max_tokens: s.max_tokens,
        temperature: s.temperature.unwrap_or(DEFAULT_LOCAL_TEMPERATURE),
        top_p: s.top_p.unwrap_or(1.0),
        top_k: s.top_k,
        repetition_penalty: 1.0,
        seed: s.seed,
        stop: s.stop.clone(),
    }
}

fn map_error(model: &str, e: RuntimeError) -> GatewayError {
    match e {
        RuntimeError::QueueFull { .. } => GatewayError::Overloaded(format!(
            "{model}: the local model's queue is full; retry shortly"
        )),
        RuntimeError::ContextOverflow { .. } | RuntimeError::InvalidRequest(_) => {
            GatewayError::InvalidRequest(format!("{model}: {e}"))
        }
        other => GatewayError::Internal(format!("{model}: {other}")),
    }
}

fn stop_reason(finish: FinishReason, stop_sequence: Option<String>) -> StopReason {
    match (finish, stop_sequence) {
        (FinishReason::Length, _) => StopReason::MaxTokens,
        (FinishReason::Stop, Some(sequence)) => StopReason::StopSequence {
            sequence: Some(sequence),
        },
        (FinishReason::Stop, None) => StopReason::EndTurn,
    }
}

fn now_secs() -> u64 {
    crate::store::time::now_s()
}

/// How the model's text becomes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Plain text (or JSON under `response_format`).
    Text,
    /// Text that may contain `<tool_call>` blocks (`tool_choice` auto).
    MaybeTools,
    /// Exactly one call, decoded under the tools' schema (`tool_choice` forced).
    ForcedTool,
}

/// The tools the answer may call, and how many calls it may hold.
struct Calls {
    tools: Vec<ToolSpec>,
    /// `parallel_tool_calls: false` (Anthropic `disable_parallel_tool_use`): the first
    /// call only.
    single: bool,
}

impl Calls {
    fn parse(&self, text: &str) -> local_runtime::tools::ParsedOutput {
        let mut parsed = parse_tool_calls(text, &self.tools);
        if self.single {
            parsed.calls.truncate(1);
        }
        parsed
    }
}

/// The tools offered to the model (none when `tool_choice` is `none`).
fn offered_tools(req: &ChatRequest) -> Vec<ToolSpec> {
    if matches!(req.tool_choice, Some(ToolChoice::None)) {
        return Vec::new();
    }
    req.tools
        .iter()
        .map(|t| ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
        })
        .collect()
}

/// The schema inside an OpenAI `json_schema` response format (`{name, schema, strict}`;
/// without `schema` any JSON value is allowed).
fn response_schema(format: &serde_json::Value) -> serde_json::Value {
    match format.get("schema") {
        Some(s) => s.clone(),
        None => serde_json::json!({}),
    }
}

/// The generation request for a canonical request: prompt, sampling, tools, and the
/// constraint that makes structured answers valid by construction.
fn generate_request(req: &ChatRequest) -> Result<(GenerateRequest, Output, Calls), GatewayError> {
    let tools = offered_tools(req);
    let forced = match &req.tool_choice {
        Some(ToolChoice::Required) => Some(ForcedTool::Any),
        Some(ToolChoice::Tool { name }) => Some(ForcedTool::Named(name)),
        _ => None,
    };
    let (constraint, output) = match forced {
        Some(which) => {
            let schema = forced_call_schema(&tools, which).map_err(GatewayError::InvalidRequest)?;
            (
                Some(OutputConstraint::JsonSchema { schema }),
                Output::ForcedTool,
            )
        }
        None => {
            let constraint = match &req.response_format {
                None | Some(ResponseFormat::Text) => None,
                Some(ResponseFormat::JsonObject) => Some(OutputConstraint::JsonObject),
                Some(ResponseFormat::JsonSchema { schema }) => Some(OutputConstraint::JsonSchema {
                    schema: response_schema(schema),
                }),
            };
            let output = if tools.is_empty() || constraint.is_some() {
                Output::Text
            } else {
                Output::MaybeTools
            };
            (constraint, output)
        }
    };
    let request = GenerateRequest {
        messages: to_chat_messages(req)?,
        params: sampling(req),
        tools: tools.clone(),
        constraint,
    };
    let calls = Calls {
        tools,
        single: req.parallel_tool_calls == Some(false),
    };
    Ok((request, output, calls))
}

/// Response and tool-call ids in the client's dialect (`msg_…`/`toolu_…` for Anthropic,
/// `chatcmpl-…`/`call_…` for OpenAI), as the real services issue them.
fn response_id(dialect: Dialect) -> String {
    let u = uuid::Uuid::new_v4().simple();
    match dialect {
        Dialect::Anthropic => format!("msg_{u}"),
        // The Responses and Gemini dialects render their own response ids.
        Dialect::OpenAi | Dialect::Responses | Dialect::Gemini => format!("chatcmpl-{u}"),
    }
}

fn tool_call_id(dialect: Dialect) -> String {
    let u = uuid::Uuid::new_v4().simple();
    match dialect {
        Dialect::Anthropic => format!("toolu_{u}"),
        Dialect::OpenAi | Dialect::Responses | Dialect::Gemini => format!("call_{u}"),
    }
}

/// The answer's content parts from the model's text.
fn content_parts(
    text: String,
    output: Output,
    calls: &Calls,
    dialect: Dialect,
) -> (Vec<ContentPart>, bool) {
    if output == Output::Text {
        return (vec![ContentPart::text(text)], false);
    }
    let parsed = calls.parse(&text);
    if parsed.calls.is_empty() {
        return (vec![ContentPart::text(text)], false);
    }
    let mut parts = Vec::new();
    if !parsed.text.is_empty() {
        parts.push(ContentPart::text(parsed.text));
    }
    for call in parsed.calls {
        parts.push(ContentPart::ToolCall {
            id: tool_call_id(dialect),
            name: call.name,
            arguments: call.arguments.to_string(),
        });
    }
    (parts, true)
}

impl LocalProvider {
    async fn start(
        &self,
        req: &ChatRequest,
    ) -> Result<(tokio::sync::mpsc::Receiver<GenerateEvent>, Output, Calls), GatewayError> {
        let (request, output, calls) = generate_request(req)
            .map_err(|e| GatewayError::InvalidRequest(format!("{}: {e}", self.model.name())))?;
        let rx = if request.constraint.is_some() {
            // Compiling a schema is CPU work (and the model's first one builds the
            // vocabulary trie, ~1 s): keep it off the async workers.
            let model = self.model.clone();
            tokio::task::spawn_blocking(move || model.generate(request))
                .await
                .map_err(|e| {
                    GatewayError::Internal(format!(
                        "{}: schema compilation: {e}",
                        self.model.name()
                    ))
                })?
        } else {
            self.model.generate(request)
        }
        .map_err(|e| map_error(self.model.name(), e))?;
        Ok((rx, output, calls))
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn is_external(&self) -> bool {
        false
    }

    fn take_compute(&self, response_id: &str) -> Option<(f64, bool)> {
        let busy = self.compute.lock().ok()?.remove(response_id)?;
        Some((busy, self.model.execution_provider() == "cuda"))
    }

    fn chat<'a>(
        &'a self,
        _endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>> {
        Box::pin(async move {
            let dialect = call.request.extra_dialect;
            let (mut rx, output, calls) = self.start(call.request).await?;
            let mut text = String::new();
            let mut usage = Usage::default();
            while let Some(ev) = rx.recv().await {
                match ev {
                    GenerateEvent::Started { prompt_tokens, .. } => {
                        usage.input_tokens = prompt_tokens
                    }
                    GenerateEvent::Text(t) => text.push_str(&t),
                    GenerateEvent::Done {
                        finish,
                        stop_sequence,
                        prompt_tokens,
                        completion_tokens,
                        busy_ms,
                    } => {
                        usage.input_tokens = prompt_tokens;
                        usage.output_tokens = completion_tokens;
                        let id = response_id(dialect);
                        note_compute(&self.compute, &id, busy_ms);
                        let (content, called) = content_parts(text, output, &calls, dialect);
                        return Ok(ChatResponse {
                            id,
                            model: self.model.name().to_string(),
                            content,
                            stop_reason: if called {
                                StopReason::ToolUse
                            } else {
                                stop_reason(finish, stop_sequence)
                            },
                            usage,
                            created: now_secs(),
                        });
                    }
                    GenerateEvent::Error(message) => {
                        return Err(GatewayError::Internal(format!(
                            "{}: generation failed: {message}",
                            self.model.name()
                        )))
                    }
                }
            }
            Err(GatewayError::Internal(format!(
                "{}: generation ended without a result",
                self.model.name()
            )))
        })
    }

    fn stream<'a>(
        &'a self,
        _endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
        Box::pin(async move {
            let dialect = call.request.extra_dialect;
            let (rx, output, calls) = self.start(call.request).await?;
            let name = self.model.name().to_string();
            let id = response_id(dialect);
            let created = now_secs();
            let compute = self.compute.clone();
            let mut answer = StreamedAnswer {
                output,
                calls,
                dialect,
                splitter: ToolCallSplitter::new(),
                text_open: false,
            };
            let events = ReceiverStream::new(rx).flat_map(move |ev| {
                let out: Vec<Result<StreamEvent, GatewayError>> = match ev {
                    GenerateEvent::Started { prompt_tokens, .. } => vec![Ok(StreamEvent::Start {
                        id: id.clone(),
                        model: name.clone(),
                        created,
                        usage: Some(Usage {
                            input_tokens: prompt_tokens,
                            ..Usage::default()
                        }),
                    })],
                    GenerateEvent::Text(text) => answer.text(&text).into_iter().map(Ok).collect(),
                    GenerateEvent::Done {
                        finish,
                        stop_sequence,
                        prompt_tokens,
                        completion_tokens,
                        busy_ms,
                    } => {
                        note_compute(&compute, &id, busy_ms);
                        let usage = Usage {
                            input_tokens: prompt_tokens,
                            output_tokens: completion_tokens,
                            ..Usage::default()
                        };
                        answer
                            .finish(stop_reason(finish, stop_sequence), usage)
                            .into_iter()
                            .map(Ok)
                            .collect()
                    }
                    GenerateEvent::Error(message) => vec![Err(GatewayError::Internal(format!(
                        "{name}: generation failed: {message}"
                    )))],
                };
                futures::stream::iter(out)
            });
            Ok(Box::pin(events) as EventStream)
        })
    }

    fn count_tokens<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<u32, GatewayError>> {
        Box::pin(async move {
            let messages = to_chat_messages(call.request)?;
            self.model
                .count_prompt_tokens(&messages, &offered_tools(call.request))
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .map_err(|e| map_error(self.model.name(), e))
        })
    }
}

/// Turns the model's streamed text into canonical stream events: text as it comes,
/// except what belongs to a tool call, which is sent as a call once it is complete.
struct StreamedAnswer {
    output: Output,
    calls: Calls,
    dialect: Dialect,
    splitter: ToolCallSplitter,
    /// A text part (index 0) has been started.
    text_open: bool,
}

impl StreamedAnswer {
    fn text(&mut self, text: &str) -> Option<StreamEvent> {
        let shown = match self.output {
            Output::Text => text.to_string(),
            // The whole answer is the call: nothing to show until it is complete.
            Output::ForcedTool => {
                self.splitter.push(text);
                return None;
            }
            Output::MaybeTools => self.splitter.push(text),
        };
        if shown.is_empty() {
            return None;
        }
        self.text_open = true;
        Some(StreamEvent::TextDelta {
            index: 0,
            text: shown,
        })
    }

    fn finish(&mut self, mut stop: StopReason, usage: Usage) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.output != Output::Text {
            let parsed = self.calls.parse(self.splitter.full_text());
            if parsed.calls.is_empty() {
                // Not a call after all: what was held back is text.
                let rest = match self.output {
                    Output::ForcedTool => self.splitter.full_text().to_string(),
                    _ => self.splitter.unreleased().to_string(),
                };
                if !rest.is_empty() {
                    events.push(StreamEvent::TextDelta {
                        index: 0,
                        text: rest,
                    });
                }
            } else {
                // Calls follow the text part when there is one.
                for (index, call) in (u32::from(self.text_open)..).zip(parsed.calls) {
                    events.push(StreamEvent::ToolCallStart {
                        index,
                        id: tool_call_id(self.dialect),
                        name: call.name,
                    });
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: call.arguments.to_string(),
                    });
                }
                stop = StopReason::ToolUse;
            }
        }
        events.push(StreamEvent::Finish {
            stop_reason: stop,
            usage: Some(usage),
        });
        events
    }
}

/// A local model known to the configuration but not loaded in this process (offline
/// tools such as `switchyard policy explain`). Reports itself as local; refuses calls.
pub struct UnloadedLocal {
    pub model: String,
}

impl Provider for UnloadedLocal {
    fn name(&self) -> &str {
        "local"
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn is_external(&self) -> bool {
        false
    }

    fn chat<'a>(
        &'a self,
        _endpoint: usize,
        _call: Call<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>> {
        Box::pin(async move { Err(self.unloaded()) })
    }

    fn stream<'a>(
        &'a self,
        _endpoint: usize,
        _call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
        Box::pin(async move { Err(self.unloaded()) })
    }
}

impl UnloadedLocal {
    fn unloaded(&self) -> GatewayError {
        GatewayError::Overloaded(format!(
            "{} is not loaded in this process (run scripts/setup-models.sh)",
            self.model
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Tool};
    use serde_json::json;

    fn request(dialect: Dialect) -> ChatRequest {
        ChatRequest::new(
            "local/m",
            vec![Message::text(Role::User, "weather in Paris?")],
            dialect,
        )
    }

    fn weather() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            cache_control: None,
        }
    }

    #[test]
    fn no_temperature_means_greedy_and_a_set_one_is_kept() {
        let mut req = request(Dialect::OpenAi);
        assert_eq!(sampling(&req).temperature, 0.0);
        req.sampling.temperature = Some(0.7);
        assert_eq!(sampling(&req).temperature, 0.7);
    }

    #[test]
    fn response_format_becomes_the_constraint() {
        let mut req = request(Dialect::OpenAi);
        req.response_format = Some(ResponseFormat::JsonSchema {
            schema: json!({"name": "w", "strict": true, "schema": {"type": "object"}}),
        });
        let (g, output, _) = generate_request(&req).unwrap();
        assert_eq!(
            g.constraint,
            Some(OutputConstraint::JsonSchema {
                schema: json!({"type": "object"})
            })
        );
        assert_eq!(output, Output::Text);
        req.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(
            generate_request(&req).unwrap().0.constraint,
            Some(OutputConstraint::JsonObject)
        );
        req.response_format = Some(ResponseFormat::Text);
        assert_eq!(generate_request(&req).unwrap().0.constraint, None);
    }

    #[test]
    fn tool_choice_decides_tools_and_forcing() {
        let mut req = request(Dialect::Anthropic);
        req.tools = vec![weather()];
        let (g, output, _) = generate_request(&req).unwrap();
        assert_eq!(
            (g.tools.len(), output, g.constraint),
            (1, Output::MaybeTools, None)
        );
        req.tool_choice = Some(ToolChoice::None);
        let (g, output, _) = generate_request(&req).unwrap();
        assert_eq!((g.tools.len(), output), (0, Output::Text));
        req.tool_choice = Some(ToolChoice::Tool {
            name: "get_weather".into(),
        });
        let (g, output, _) = generate_request(&req).unwrap();
        assert_eq!(output, Output::ForcedTool);
        let Some(OutputConstraint::JsonSchema { schema }) = g.constraint else {
            panic!("forced call without a schema");
        };
        assert_eq!(schema["properties"]["name"]["const"], "get_weather");
        req.tool_choice = Some(ToolChoice::Tool {
            name: "nope".into(),
        });
        assert!(matches!(
            generate_request(&req),
            Err(GatewayError::InvalidRequest(m)) if m.contains("nope")
        ));
    }

    #[test]
    fn ids_follow_the_client_dialect() {
        assert!(response_id(Dialect::Anthropic).starts_with("msg_"));
        assert!(response_id(Dialect::OpenAi).starts_with("chatcmpl-"));
        assert!(tool_call_id(Dialect::Anthropic).starts_with("toolu_"));
        assert!(tool_call_id(Dialect::OpenAi).starts_with("call_"));
    }

    fn spec() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object"}),
        }]
    }

    #[test]
    fn streamed_prose_then_call() {
        let mut a = StreamedAnswer {
            output: Output::MaybeTools,
            calls: Calls {
                tools: spec(),
                single: false,
            },
            dialect: Dialect::OpenAi,
            splitter: ToolCallSplitter::new(),
            text_open: false,
        };
        let mut events: Vec<StreamEvent> = Vec::new();
        for t in [
            "Checking",
            ". <tool",
            "_call>{\"name\": \"get_weather\", ",
            "\"arguments\": {\"city\": \"Paris\"}}</tool_call>",
        ] {
            events.extend(a.text(t));
        }
        events.extend(a.finish(StopReason::EndTurn, Usage::default()));
        assert_eq!(
            events[0],
            StreamEvent::TextDelta {
                index: 0,
                text: "Checking".into()
            }
        );
        assert_eq!(
            events[1],
            StreamEvent::TextDelta {
                index: 0,
                text: ". ".into()
            }
        );
        assert!(
            matches!(&events[2], StreamEvent::ToolCallStart { index: 1, name, .. } if name == "get_weather")
        );
        assert_eq!(
            events[3],
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"city\":\"Paris\"}".into()
            }
        );
        assert!(matches!(
            &events[4],
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                ..
            }
        ));
    }

    #[test]
    fn no_parallel_calls_keeps_the_first() {
        let text = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}</tool_call>\
                    <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}</tool_call>";
        let many = Calls {
            tools: spec(),
            single: false,
        };
        let (parts, called) =
            content_parts(text.into(), Output::MaybeTools, &many, Dialect::OpenAi);
        assert!(called);
        assert_eq!(parts.len(), 2);
        let one = Calls {
            tools: spec(),
            single: true,
        };
        let (parts, _) = content_parts(text.into(), Output::MaybeTools, &one, Dialect::OpenAi);
        assert!(
            matches!(&parts[..], [ContentPart::ToolCall { arguments, .. }] if arguments.contains("\"A\""))
        );
    }

    #[test]
    fn streamed_text_that_only_looked_like_a_call_is_released() {
        let mut a = StreamedAnswer {
            output: Output::MaybeTools,
            calls: Calls {
                tools: spec(),
                single: false,
            },
            dialect: Dialect::Anthropic,
            splitter: ToolCallSplitter::new(),
            text_open: false,
        };
        let mut events: Vec<StreamEvent> = a.text("a <tool").into_iter().collect();
        events.extend(a.finish(StopReason::EndTurn, Usage::default()));
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "a <tool");
        assert!(matches!(
            events.last(),
            Some(StreamEvent::Finish {
                stop_reason: StopReason::EndTurn,
                ..
            })
        ));
    }

    #[test]
    fn earlier_calls_and_results_are_written_as_hermes_blocks() {
        let mut req = request(Dialect::OpenAi);
        req.messages.push(Message {
            role: Role::Assistant,
            content: vec![ContentPart::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            }],
            name: None,
        });
        req.messages.push(Message {
            role: Role::User,
            content: vec![ContentPart::ToolResult {
                call_id: "call_1".into(),
                content: vec![ContentPart::text("18C")],
                is_error: false,
                cache_control: None,
            }],
            name: None,
        });
        let m = to_chat_messages(&req).unwrap();
        assert_eq!(
            m[1].content,
            "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"
        );
        assert_eq!(m[2].content, "<tool_response>\n18C\n</tool_response>");
    }
}
