//! Exact-cache keys: a SHA-256 over everything in a canonical request that can change
//! the answer, plus the tenant scope.

use std::fmt;
use std::io;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::{ChatRequest, Dialect, Message, ResponseFormat, Sampling, Tool, ToolChoice};

/// Bumped whenever the key material changes shape, so replicas running different
/// versions never read each other's entries under a key that means something else.
const KEY_VERSION: u32 = 1;

/// A 32-byte SHA-256 of the key material. Printing it shows hex only: it reveals
/// nothing about the request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What goes into the hash. Serialized as JSON (field order is fixed by the struct, and
/// `serde_json::Map` iterates in a stable order), so the same request always hashes the
/// same on every replica.
///
/// Left out on purpose: `stream` and `include_usage` (a cached answer can be replayed
/// either way), `user` and `metadata` (labels for the caller, they do not change the
/// answer; isolation comes from `tenant`), and the model the client asked for (the
/// served model is what produced the answer).
#[derive(Serialize)]
struct KeyMaterial<'a> {
    v: u32,
    /// `None` only when the operator chose to share entries across tenants.
    tenant: Option<&'a str>,
    model: &'a str,
    messages: &'a [Message],
    tools: &'a [Tool],
    tool_choice: &'a Option<ToolChoice>,
    parallel_tool_calls: Option<bool>,
    sampling: &'a Sampling,
    response_format: &'a Option<ResponseFormat>,
    /// Unknown fields reach only a backend of their dialect, where they may change the
    /// answer (`logprobs`, `n`, ...); the dialect only matters when there are some, so
    /// a plain request can be answered across dialects.
    extra: &'a Map<String, Value>,
    extra_dialect: Option<Dialect>,
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `tenant` is `None` when entries are shared across tenants. Returns `None` if the
/// request cannot be serialized (it always can; the guard keeps this path panic-free).
pub(crate) fn derive(
    req: &ChatRequest,
    served_model: &str,
    tenant: Option<&str>,
) -> Option<CacheKey> {
    let material = KeyMaterial {
        v: KEY_VERSION,
        tenant,
        model: served_model,
        messages: &req.messages,
        tools: &req.tools,
        tool_choice: &req.tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        sampling: &req.sampling,
        response_format: &req.response_format,
        extra: &req.extra,
        extra_dialect: (!req.extra.is_empty()).then_some(req.extra_dialect),
    };
    let mut hasher = Sha256::new();
    serde_json::to_writer(HashWriter(&mut hasher), &material).ok()?;
    Some(CacheKey(hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Role};

    fn req(text: &str) -> ChatRequest {
        let mut r = ChatRequest::new(
            "gpt-x",
            vec![Message::text(Role::User, text)],
            Dialect::OpenAi,
        );
        r.sampling.temperature = Some(0.0);
        r
    }

    #[test]
    fn every_answer_changing_field_changes_the_key() {
        let base = req("hi");
        let k = |r: &ChatRequest| derive(r, "m", Some("t"));
        let k0 = k(&base);
        assert!(k0.is_some());

        let mut r = base.clone();
        r.messages.push(Message::text(Role::User, "more"));
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.sampling.max_tokens = Some(5);
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.sampling.stop = vec!["x".into()];
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.tool_choice = Some(ToolChoice::Required);
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.response_format = Some(ResponseFormat::JsonObject);
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.tools.push(Tool {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            cache_control: None,
        });
        assert_ne!(k(&r), k0);
        let mut r = base.clone();
        r.extra.insert("logprobs".into(), Value::Bool(true));
        assert_ne!(k(&r), k0);

        assert_ne!(derive(&base, "other-model", Some("t")), k0);
        assert_ne!(derive(&base, "m", Some("u")), k0);
        assert_ne!(derive(&base, "m", None), k0);
    }

    #[test]
    fn labels_and_delivery_do_not_change_the_key() {
        let base = req("hi");
        let k0 = derive(&base, "m", Some("t"));
        let mut r = base.clone();
        r.stream = true;
        r.include_usage = true;
        r.user = Some("end-user-7".into());
        r.model = "alias-the-client-used".into();
        r.extra_dialect = Dialect::Anthropic;
        assert_eq!(derive(&r, "m", Some("t")), k0);
    }

    #[test]
    fn tenant_boundaries_are_unambiguous() {
        // A naive concatenation would make ("ab", "c…") and ("a", "bc…") collide.
        let r = req("hi");
        assert_ne!(derive(&r, "bm", Some("a")), derive(&r, "m", Some("ab")));
    }

    #[test]
    fn debug_shows_hex_only() {
        let k = CacheKey([0xab; 32]);
        assert_eq!(format!("{k:?}"), format!("CacheKey({})", "ab".repeat(32)));
    }
}
