//! Keeps a Responses turn the client asked to store (`store`, the default): the
//! conversation as the client sent it plus this answer as the client saw it
//! (placeholders restored), and the rendered Response for `GET /v1/responses/{id}`.
//! The write is awaited before the answer's last part goes out, so a client that
//! continues at once with `previous_response_id` finds it. A failed write is logged and
//! the answer still delivered: the client has paid for it.

use std::sync::Arc;

use futures::StreamExt;

use crate::cache::StreamAccumulator;
use crate::canonical::{ChatResponse, ContentPart, EventStream, Message, Role, StreamEvent};
use crate::conversations::Conversations;
use crate::dialects::responses::{self, Turn};

/// What storing one turn needs.
pub(super) struct Keep {
    pub conversations: Arc<Conversations>,
    pub tenant: String,
    pub turn: Turn,
    pub conversation: Vec<Message>,
}

impl Keep {
    pub(super) async fn save(self, response: &ChatResponse) {
        let mut messages = self.conversation;
        let content: Vec<ContentPart> = response
            .content
            .iter()
            .filter(|p| matches!(p, ContentPart::Text { .. } | ContentPart::ToolCall { .. }))
            .cloned()
            .collect();
        if !content.is_empty() {
            messages.push(Message {
                role: Role::Assistant,
                content,
                name: None,
            });
        }
        let rendered = responses::render_response(&self.turn, response);
        if let Err(e) = self
            .conversations
            .save(&self.tenant, &self.turn.id, &messages, &rendered)
            .await
        {
            tracing::warn!(id = %self.turn.id, error = %e, "response not stored");
        }
    }
}

/// The stream, with the turn stored when its final event arrives (before it is passed
/// on). A stream that fails or is cut off stores nothing.
pub(super) fn stream(events: EventStream, keep: Keep) -> EventStream {
    let state = (events, Some((StreamAccumulator::new(), keep)));
    Box::pin(futures::stream::unfold(
        state,
        |(mut events, mut pending)| async move {
            let next = events.next().await?;
            match &next {
                Ok(ev) => {
                    if let Some((acc, _)) = pending.as_mut() {
                        acc.push(ev);
                    }
                    if matches!(ev, StreamEvent::Finish { .. }) {
                        if let Some((acc, keep)) = pending.take() {
                            if let Some(response) = acc.finish() {
                                keep.save(&response).await;
                            }
                        }
                    }
                }
                Err(_) => pending = None,
            }
            Some((next, (events, pending)))
        },
    ))
}
