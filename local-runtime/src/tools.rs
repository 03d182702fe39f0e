//! Tool calls for local models: how tools reach the prompt, the schema that forces a
//! call, and parsing calls out of the model's text.
//!
//! Wire format of a call: the Hermes / Qwen 2.5 convention that most tool-tuned open
//! models and their chat templates use, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
//! (Llama 3.1 writes `"parameters"` instead of `"arguments"`; both are read). A forced
//! call is decoded under [`forced_call_schema`] and is then the bare JSON object.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

impl ToolSpec {
    /// The shape Hugging Face chat templates expect in their `tools` variable.
    pub(crate) fn template_value(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name,
            "description": self.description.clone().unwrap_or_default(),
            "parameters": self.parameters,
        }})
    }
}

/// Which call the answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedTool<'a> {
    /// Any of the tools (OpenAI `required`, Anthropic `any`).
    Any,
    /// This one (OpenAI named function, Anthropic `{type: tool}`).
    Named(&'a str),
}

/// The JSON schema of a call: `{"name": <tool>, "arguments": <its parameters>}`, one
/// alternative per allowed tool, so both the name and the arguments are constrained.
pub fn forced_call_schema(tools: &[ToolSpec], which: ForcedTool<'_>) -> Result<Value, String> {
    let allowed: Vec<&ToolSpec> = match which {
        ForcedTool::Any => tools.iter().collect(),
        ForcedTool::Named(n) => tools.iter().filter(|t| t.name == n).collect(),
    };
    if allowed.is_empty() {
        return Err(match which {
            ForcedTool::Named(n) => format!("tool_choice names {n:?}, which is not in tools"),
            ForcedTool::Any => "tool_choice requires a tool call but no tools were given".into(),
        });
    }
    // A tool's `$defs` (pydantic's nested models) are referenced from its own root
    // (`#/$defs/X`); nested under `arguments` they would dangle, so they move to the
    // root of the call schema, prefixed per tool so two tools' names cannot collide.
    let mut defs = serde_json::Map::new();
    let alternatives: Vec<Value> = allowed
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut params = if t.parameters.is_object() {
                t.parameters.clone()
            } else {
                json!({"type": "object"})
            };
            hoist_defs(&mut params, &format!("t{i}_"), &mut defs);
            json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let mut schema = match alternatives.len() {
        1 => alternatives.into_iter().next().unwrap_or_default(),
        _ => json!({"anyOf": alternatives}),
    };
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    Ok(schema)
}

/// Moves `$defs` / `definitions` out of `schema` into `into` (names prefixed) and rewrites
/// the local `$ref`s that point at them.
fn hoist_defs(schema: &mut Value, prefix: &str, into: &mut serde_json::Map<String, Value>) {
    let mut local = Vec::new();
    if let Some(obj) = schema.as_object_mut() {
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(d)) = obj.remove(key) {
                local.extend(d.into_iter().map(|(k, v)| (key, k, v)));
            }
        }
    }
    fn rewrite(v: &mut Value, prefix: &str) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => {
                            for from in ["#/$defs/", "#/definitions/"] {
                                if let Some(name) = r.strip_prefix(from) {
                                    *r = format!("#/$defs/{prefix}{name}");
                                    break;
                                }
                            }
                        }
                        (_, x) => rewrite(x, prefix),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, prefix)),
            _ => {}
        }
    }
    rewrite(schema, prefix);
    for (_, name, mut def) in local {
        rewrite(&mut def, prefix);
        into.insert(format!("{prefix}{name}"), def);
    }
}

/// System-prompt text describing the tools, for chat templates that do not render
/// `tools` themselves (the wording of Qwen 2.5's template).
pub(crate) fn tools_system_text(tools: &[ToolSpec]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        s.push('\n');
        s.push_str(&t.template_value().to_string());
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    s
}

/// One call parsed from the model's output.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedToolCall {
    pub name: String,
    /// Always a JSON object.
    pub arguments: Value,
}

/// The model's output split into prose and calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedOutput {
    /// Text outside the calls, trimmed.
    pub text: String,
    pub calls: Vec<ParsedToolCall>,
}

fn call_from_json(v: &Value, tools: &[ToolSpec]) -> Option<ParsedToolCall> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?;
    if !tools.iter().any(|t| t.name == name) {
        return None;
    }
    let arguments = match obj.get("arguments").or_else(|| obj.get("parameters")) {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        // Some models write the arguments as a JSON string.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return None,
        },
        None => json!({}),
        Some(_) => return None,
    };
    Some(ParsedToolCall {
        name: name.to_string(),
        arguments,
    })
}

/// Finds the calls in `text`: `<tool_call>` blocks (an unclosed last block runs to the
/// end), or, when the whole output is one JSON call (a forced call), that. Blocks
/// whose JSON is not a call of a known tool stay in the text: the client sees what the
/// model wrote rather than losing it.
pub fn parse_tool_calls(text: &str, tools: &[ToolSpec]) -> ParsedOutput {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            if let Some(call) = call_from_json(&v, tools) {
                return ParsedOutput {
                    text: String::new(),
                    calls: vec![call],
                };
            }
        }
    }
    let mut out = ParsedOutput::default();
    let mut prose = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        prose.push_str(&rest[..start]);
        let body_start = start + OPEN.len();
        let (body, next) = match rest[body_start..].find(CLOSE) {
            Some(end) => (
                &rest[body_start..body_start + end],
                &rest[body_start + end + CLOSE.len()..],
            ),
            None => (&rest[body_start..], ""),
        };
        match serde_json::from_str::<Value>(body.trim())
            .ok()
            .and_then(|v| call_from_json(&v, tools))
        {
            Some(call) => out.calls.push(call),
            None => prose.push_str(&rest[start..rest.len() - next.len()]),
        }
        rest = next;
    }
    prose.push_str(rest);
    out.text = prose.trim().to_string();
    out
}

/// Streams prose while holding back everything from the first `<tool_call>` on (and
/// any tail that could be the start of one), so a client sees text as it is generated
/// and calls once they are complete.
#[derive(Debug, Default)]
pub struct ToolCallSplitter {
    /// Everything pushed so far.
    all: String,
    /// Bytes of `all` already released as prose.
    released: usize,
    in_call: bool,
}

impl ToolCallSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds generated text; returns the prose that can be shown now.
    pub fn push(&mut self, text: &str) -> String {
        self.all.push_str(text);
        if self.in_call {
            return String::new();
        }
        let pending = &self.all[self.released..];
        if let Some(i) = pending.find(OPEN) {
            self.in_call = true;
            let out = pending[..i].to_string();
            self.released += i;
            return out;
        }
        // Hold back the longest suffix that is a prefix of the opening tag.
        let mut keep = 0;
        for k in (1..OPEN.len()).rev() {
            if pending.len() >= k
                && pending.is_char_boundary(pending.len() - k)
                && OPEN.starts_with(&pending[pending.len() - k..])
            {
                keep = k;
                break;
            }
        }
        let n = pending.len() - keep;
        let out = pending[..n].to_string();
        self.released += n;
        out
    }

    /// Everything the model wrote (for parsing the calls at the end).
    pub fn full_text(&self) -> &str {
        &self.all
    }

    /// The text not yet released (held-back tail or the calls).
    pub fn unreleased(&self) -> &str {
        &self.all[self.released..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Whatever the chunking, released prose + held-back text is the input, and no
        // released prose contains (the start of) a call.
        #[test]
        fn splitter_loses_nothing_and_never_releases_a_call(
            pieces in proptest::collection::vec(
                prop_oneof!["[a-z <>_/]{0,6}", Just("<tool_call>".to_string()), Just("<tool".to_string())],
                0..12,
            )
        ) {
            let mut s = ToolCallSplitter::new();
            let mut shown = String::new();
            for p in &pieces {
                shown.push_str(&s.push(p));
            }
            let all: String = pieces.concat();
            prop_assert_eq!(format!("{shown}{}", s.unreleased()), all.clone());
            prop_assert!(!shown.contains(OPEN));
            if let Some(i) = all.find(OPEN) {
                prop_assert_eq!(shown.len(), i);
            }
        }
    }

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            },
            ToolSpec {
                name: "add".into(),
                description: None,
                parameters: json!({"type": "object"}),
            },
        ]
    }

    #[test]
    fn parses_tagged_calls_and_keeps_prose() {
        let t = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"add\", \"parameters\": {\"a\": 1}}</tool_call>";
        let p = parse_tool_calls(t, &tools());
        assert_eq!(p.text, "Let me check.");
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0].name, "get_weather");
        assert_eq!(p.calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(p.calls[1].arguments, json!({"a": 1}));
    }

    #[test]
    fn bare_json_call_and_string_arguments() {
        let p = parse_tool_calls(
            " {\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 2}\"} ",
            &tools(),
        );
        assert_eq!(
            p.calls,
            vec![ParsedToolCall {
                name: "add".into(),
                arguments: json!({"a": 2})
            }]
        );
        assert!(p.text.is_empty());
    }

    #[test]
    fn unknown_tools_and_broken_json_stay_text() {
        let t =
            "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call> and <tool_call>{oops";
        let p = parse_tool_calls(t, &tools());
        assert!(p.calls.is_empty());
        assert_eq!(p.text, t);
        let p = parse_tool_calls("{\"city\": \"Paris\"}", &tools());
        assert!(p.calls.is_empty());
    }

    #[test]
    fn forced_schema_constrains_name_and_arguments() {
        let s = forced_call_schema(&tools(), ForcedTool::Named("get_weather")).unwrap();
        assert_eq!(s["properties"]["name"]["const"], "get_weather");
        assert_eq!(s["properties"]["arguments"]["required"], json!(["city"]));
        let s = forced_call_schema(&tools(), ForcedTool::Any).unwrap();
        assert_eq!(s["anyOf"].as_array().map(Vec::len), Some(2));
        assert!(forced_call_schema(&tools(), ForcedTool::Named("nope")).is_err());
        // Nested models' definitions move to the root and their references follow.
        let nested = ToolSpec {
            name: "record".into(),
            description: None,
            parameters: json!({"type": "object",
                "properties": {"a": {"$ref": "#/$defs/Address"}, "b": {"items": {"$ref": "#/definitions/B"}}},
                "$defs": {"Address": {"type": "object", "properties": {"c": {"$ref": "#/$defs/City"}}}, "City": {"type": "string"}},
                "definitions": {"B": {"type": "integer"}}}),
        };
        let s = forced_call_schema(&[nested], ForcedTool::Any).unwrap();
        let args = &s["properties"]["arguments"];
        assert_eq!(args["properties"]["a"]["$ref"], "#/$defs/t0_Address");
        assert_eq!(args["properties"]["b"]["items"]["$ref"], "#/$defs/t0_B");
        assert!(args.get("$defs").is_none());
        assert_eq!(
            s["$defs"]["t0_Address"]["properties"]["c"]["$ref"],
            "#/$defs/t0_City"
        );
        assert_eq!(s["$defs"]["t0_B"], json!({"type": "integer"}));
        assert!(forced_call_schema(&[], ForcedTool::Any).is_err());
    }

    #[test]
    fn splitter_streams_prose_and_holds_calls() {
        let mut s = ToolCallSplitter::new();
        let mut shown = String::new();
        for piece in [
            "Sure",
            ", one moment <",
            "tool",
            "_call>{\"name\"",
            ": \"add\"}</tool_call>",
        ] {
            shown.push_str(&s.push(piece));
        }
        assert_eq!(shown, "Sure, one moment ");
        assert!(s.unreleased().starts_with("<tool_call>"));
        // A '<' that turns out not to open a call is released.
        let mut s = ToolCallSplitter::new();
        assert_eq!(s.push("a <"), "a ");
        assert_eq!(s.push("b"), "<b");
        assert_eq!(s.unreleased(), "");
    }
}
