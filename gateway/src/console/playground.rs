//! The policy playground: a pasted request (either dialect) through the same engine as
//! `POST /v1/route/explain` (`server::explain_json`), and the texts the classifier read so
//! that findings can be shown in place. The request is only classified and planned: it
//! is never sent anywhere, stored or logged.

use std::sync::Arc;

use policies::policy::Facts;

use crate::canonical::Dialect;
use crate::dialects::{anthropic, openai};
use crate::server::AppState;

/// What the playground shows: each text with its role, and the explain document.
#[derive(Debug, Clone)]
pub struct Explained {
    pub texts: Vec<(String, String)>,
    pub explain: serde_json::Value,
}

/// Explains a request body for a team (the console's playground).
pub type Explainer =
    Arc<dyn Fn(Dialect, &[u8], Option<String>) -> Result<Explained, String> + Send + Sync>;

/// The explainer of a running gateway: its live policy, classifier and providers.
pub fn explainer(state: Arc<AppState>) -> Explainer {
    Arc::new(move |dialect, body, team| {
        let request = match dialect {
            Dialect::OpenAi => openai::parse_request(body),
            Dialect::Anthropic => anthropic::parse_count_tokens_request(body),
            Dialect::Responses => {
                crate::dialects::responses::parse_request(body).map(|(request, _)| request)
            }
            Dialect::Gemini => Err(crate::canonical::GatewayError::InvalidRequest(
                "the playground reads openai, anthropic or responses bodies".into(),
            )),
        }
        .map_err(|e| e.to_string())?;
        let texts = crate::privacy::text_segments(&request)
            .into_iter()
            .map(|(role, text, _)| (format!("{role:?}").to_lowercase(), text.to_string()))
            .collect();
        let facts = Facts {
            team,
            model: Some(request.model.clone()),
            dialect: Some(dialect),
            stream: request.stream,
            ..Facts::default()
        };
        Ok(Explained {
            texts,
            explain: crate::server::explain_json(&state.router, request, facts),
        })
    })
}

/// One text with its findings marked: `<mark>` around each span, titled with the
/// finding's category, type and detector. Spans are byte offsets into the text; one that
/// does not fall on character boundaries (it cannot, from the classifier) is skipped.
pub fn highlight(text: &str, spans: &[(usize, usize, String)]) -> String {
    let esc = crate::dashboard::render::esc;
    let mut spans: Vec<_> = spans
        .iter()
        .filter(|(s, e, _)| s < e && *e <= text.len())
        .filter(|(s, e, _)| text.is_char_boundary(*s) && text.is_char_boundary(*e))
        .collect();
    spans.sort_by_key(|(s, e, _)| (*s, std::cmp::Reverse(*e)));
    let mut out = String::new();
    let mut at = 0;
    for (s, e, title) in spans {
        if *s < at {
            continue; // overlapping: the outer span is already marked
        }
        out.push_str(&esc(&text[at..*s]));
        out.push_str(&format!(
            "<mark title=\"{}\">{}</mark>",
            esc(title),
            esc(&text[*s..*e])
        ));
        at = *e;
    }
    out.push_str(&esc(&text[at..]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_marked_in_place_and_escaped() {
        let text = "card <4539 5780 1234 5671> ok";
        let h = highlight(text, &[(6, 25, "pii/card (checksum)".into())]);
        assert_eq!(
            h,
            "card &lt;<mark title=\"pii/card (checksum)\">4539 5780 1234 5671</mark>&gt; ok"
        );
        // Out of range, reversed and overlapping spans are left out, not a panic.
        let h = highlight("abc", &[(2, 9, "x".into()), (2, 1, "y".into())]);
        assert_eq!(h, "abc");
        let h = highlight("abcdef", &[(0, 4, "a".into()), (2, 3, "b".into())]);
        assert_eq!(h, "<mark title=\"a\">abcd</mark>ef");
        let h = highlight("é1", &[(1, 3, "x".into())]);
        assert_eq!(h, "é1");
    }
}
