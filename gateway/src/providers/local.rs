//! The in-process open model (local-runtime) as just another provider. Requests
//! served here never leave the process.

use futures::future::BoxFuture;
use futures::StreamExt;
use local_runtime::{
    ChatMessage, FinishReason, GenerateEvent, GenerateRequest, LocalModel, RuntimeError,
    SamplingParams,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, GatewayError, Role, StopReason, StreamEvent, Usage,
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
/// Tool calls and results become readable text, since small open models here are not
/// tool-tuned; images are refused rather than silently dropped.
pub fn to_chat_messages(req: &ChatRequest) -> Result<Vec<ChatMessage>, GatewayError> {
    let mut out = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let mut text = String::new();
        for part in &m.content {
            match part {
                ContentPart::Text { text: t, .. } => push_text(&mut text, t),
                ContentPart::ToolCall {
                    name, arguments, ..
                } => push_text(&mut text, &format!("[call {name}({arguments})]")),
                ContentPart::ToolResult { content, .. } => {
                    for inner in content {
                        if let ContentPart::Text { text: t, .. } = inner {
                            push_text(&mut text, &format!("[tool result] {t}"));
                        }
                    }
                }
                ContentPart::Image { .. } => {
                    return Err(GatewayError::InvalidRequest(
                        "the local model does not accept images".into(),
                    ))
                }
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

fn sampling(req: &ChatRequest) -> SamplingParams {
    let s = &req.sampling;
    SamplingParams {
        max_tokens: s.max_tokens,
        // OpenAI's default temperature is 1.0; keep the same meaning here.
        temperature: s.temperature.unwrap_or(1.0),
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
        RuntimeError::ContextOverflow { .. } => {
            GatewayError::InvalidRequest(format!("{model}: {e}"))
        }
        other => GatewayError::Internal(format!("{model}: {other}")),
    }
}

fn stop_reason(finish: FinishReason) -> StopReason {
    match finish {
        FinishReason::Length => StopReason::MaxTokens,
        FinishReason::Stop => StopReason::EndTurn,
    }
}

fn now_secs() -> u64 {
    crate::store::time::now_s()
}

impl LocalProvider {
    fn start(
        &self,
        req: &ChatRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<GenerateEvent>, GatewayError> {
        if matches!(
            req.tool_choice,
            Some(crate::canonical::ToolChoice::Required)
                | Some(crate::canonical::ToolChoice::Tool { .. })
        ) {
            return Err(GatewayError::InvalidRequest(format!(
                "{}: the local model cannot be forced to call tools",
                self.model.name()
            )));
        }
        let request = GenerateRequest {
            messages: to_chat_messages(req)?,
            params: sampling(req),
        };
        self.model
            .generate(request)
            .map_err(|e| map_error(self.model.name(), e))
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
            let mut rx = self.start(call.request)?;
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
                        prompt_tokens,
                        completion_tokens,
                        busy_ms,
                    } => {
                        usage.input_tokens = prompt_tokens;
                        usage.output_tokens = completion_tokens;
                        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
                        note_compute(&self.compute, &id, busy_ms);
                        return Ok(ChatResponse {
                            id,
                            model: self.model.name().to_string(),
                            content: vec![ContentPart::text(text)],
                            stop_reason: stop_reason(finish),
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
            let rx = self.start(call.request)?;
            let name = self.model.name().to_string();
            let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
            let created = now_secs();
            let compute = self.compute.clone();
            let events = ReceiverStream::new(rx).map(move |ev| match ev {
                GenerateEvent::Started { prompt_tokens, .. } => Ok(StreamEvent::Start {
                    id: id.clone(),
                    model: name.clone(),
                    created,
                    usage: Some(Usage {
                        input_tokens: prompt_tokens,
                        ..Usage::default()
                    }),
                }),
                GenerateEvent::Text(text) => Ok(StreamEvent::TextDelta { index: 0, text }),
                GenerateEvent::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    busy_ms,
                } => {
                    note_compute(&compute, &id, busy_ms);
                    Ok(StreamEvent::Finish {
                        stop_reason: stop_reason(finish),
                        usage: Some(Usage {
                            input_tokens: prompt_tokens,
                            output_tokens: completion_tokens,
                            ..Usage::default()
                        }),
                    })
                }
                GenerateEvent::Error(message) => Err(GatewayError::Internal(format!(
                    "{name}: generation failed: {message}"
                ))),
            });
            Ok(Box::pin(events) as EventStream)
        })
    }

    fn count_tokens<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<u32, GatewayError>> {
        Box::pin(async move {
            let messages = to_chat_messages(call.request)?;
            self.model
                .count_prompt_tokens(&messages)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .map_err(|e| map_error(self.model.name(), e))
        })
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
