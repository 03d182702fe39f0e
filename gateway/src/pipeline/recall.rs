//! Stage 1b, recall: a Responses request with `previous_response_id` continues a stored
//! turn of this tenant — its conversation goes in after this turn's instructions (which,
//! as with OpenAI, are not carried over) and before this turn's input. It runs before
//! classification, so the policy decides on the whole conversation that will be sent.
//! When the turn is to be stored, the conversation as the client sent it is kept.

use super::RequestCtx;
use crate::canonical::{ChatRequest, GatewayError};
use crate::conversations;

pub(super) async fn earlier_turns(
    ctx: &mut RequestCtx,
    mut request: ChatRequest,
) -> Result<ChatRequest, GatewayError> {
    let Some(turn) = ctx.client.turn() else {
        return Ok(request);
    };
    let at = turn.instruction_messages.min(request.messages.len());
    if let Some(previous) = &turn.previous_response_id {
        let stored = ctx
            .state
            .conversations
            .load(&ctx.tenant, previous)
            .await?
            .ok_or_else(|| conversations::not_found(previous))?;
        request.messages.splice(at..at, stored.messages);
    }
    if turn.store {
        ctx.conversation = Some(request.messages[at..].to_vec());
    }
    Ok(request)
}
