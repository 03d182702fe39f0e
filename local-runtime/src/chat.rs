//! Chat templates (HF Jinja templates rendered with minijinja).

use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::tools::{tools_system_text, ToolSpec};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
}

/// ChatML, used when a model ships no template.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// The template renders a `tools` variable itself (Qwen 2.5, Llama 3.1, Hermes, ...).
    renders_tools: bool,
}

fn raise_exception(msg: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    pub fn new(
        template: Option<String>,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<Self, RuntimeError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        let src = template.unwrap_or_else(|| CHATML.to_string());
        let renders_tools = src.contains("tools");
        env.add_template_owned("chat", src)
            .map_err(|e| RuntimeError::Template(e.to_string()))?;
        Ok(ChatTemplate {
            env,
            bos: bos.unwrap_or_default(),
            eos: eos.unwrap_or_default(),
            renders_tools,
        })
    }

    /// Renders the prompt. Tools go to the template's own `tools` variable when it has
    /// one; otherwise their description joins the system message (one is added when the
    /// conversation has none), so every template can offer tools.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<String, RuntimeError> {
        if messages.is_empty() {
            return Err(RuntimeError::InvalidRequest("no messages".into()));
        }
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| RuntimeError::Template(e.to_string()))?;
        let with_tools;
        let (messages, tool_values) = if tools.is_empty() {
            (messages, None)
        } else if self.renders_tools {
            let values: Vec<serde_json::Value> =
                tools.iter().map(ToolSpec::template_value).collect();
            (messages, Some(values))
        } else {
            with_tools = messages_with_tool_prompt(messages, tools);
            (&with_tools[..], None)
        };
        tmpl.render(context! {
            messages => messages,
            tools => tool_values,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| RuntimeError::Template(e.to_string()))
    }
}

fn messages_with_tool_prompt(messages: &[ChatMessage], tools: &[ToolSpec]) -> Vec<ChatMessage> {
    let text = tools_system_text(tools);
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{text}", first.content);
        }
        _ => out.insert(0, ChatMessage::system(text)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }
    }

    #[test]
    fn template_with_tools_variable_renders_them_itself() {
        let src = "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }}{% endfor %}</tools>{% endif %}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
        let t = ChatTemplate::new(Some(src.into()), None, None).unwrap();
        let out = t.render(&[ChatMessage::user("hi")], &[tool()]).unwrap();
        assert_eq!(out, "<tools>get_weather</tools>[user]hi");
        assert_eq!(
            t.render(&[ChatMessage::user("hi")], &[]).unwrap(),
            "[user]hi"
        );
    }

    #[test]
    fn template_without_tools_gets_them_in_the_system_message() {
        let t = ChatTemplate::new(None, None, None).unwrap();
        let out = t.render(&[ChatMessage::user("hi")], &[tool()]).unwrap();
        assert!(out.starts_with("<|im_start|>system\n# Tools"), "{out}");
        assert!(out.contains("\"name\":\"get_weather\""), "{out}");
        let out = t
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("hi")],
                &[tool()],
            )
            .unwrap();
        assert!(
            out.starts_with("<|im_start|>system\nBe brief.\n\n# Tools"),
            "{out}"
        );
        assert_eq!(out.matches("<|im_start|>system").count(), 1);
    }
}
