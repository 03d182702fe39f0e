//! Constrained decoding on the real SmolLM2-135M-Instruct: whatever the 135M model would
//! have said, the answer parses and matches the schema (needs scripts/setup-models.sh).

mod common;

use local_runtime::tools::{forced_call_schema, parse_tool_calls, ForcedTool};
use local_runtime::{
    model_names, ChatMessage, FinishReason, GenerateEvent, GenerateRequest, LocalModel,
    LocalModelConfig, ModelCatalog, OutputConstraint, RuntimeError, SamplingParams, ToolSpec,
};
use serde_json::{json, Value};

fn load() -> LocalModel {
    let mut cfg = LocalModelConfig::new(
        "local/smollm2-135m-instruct",
        common::model_dir(model_names::SMOLLM2_135M),
        ModelCatalog::smollm2_135m(),
    );
    cfg.max_batch = 8;
    LocalModel::load(&common::runtime(), cfg).expect("load SmolLM2")
}

/// The subset of JSON schema the tests use, checked independently of the engine.
fn validate(v: &Value, s: &Value, path: &str) -> Result<(), String> {
    let fail = |m: &str| Err(format!("{path}: {m} (value {v})"));
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return fail("not in enum");
        }
    }
    if let Some(c) = s.get("const") {
        if v != c {
            return fail("not the const");
        }
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let o = v
                .as_object()
                .ok_or("not an object")
                .map_err(|m| format!("{path}: {m}"))?;
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap_or_default();
                if !o.contains_key(r) {
                    return fail(&format!("missing required {r}"));
                }
            }
            for (k, x) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => validate(x, ps, &format!("{path}.{k}"))?,
                    None if s.get("additionalProperties") == Some(&json!(false)) => {
                        return fail(&format!("unexpected property {k}"))
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let a = v.as_array().ok_or(format!("{path}: not an array"))?;
            if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
                if (a.len() as u64) < n {
                    return fail("too few items");
                }
            }
            if let Some(n) = s.get("maxItems").and_then(Value::as_u64) {
                if (a.len() as u64) > n {
                    return fail("too many items");
                }
            }
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter().enumerate() {
                    validate(x, items, &format!("{path}[{i}]"))?;
                }
            }
        }
        Some("string") if !v.is_string() => return fail("not a string"),
        Some("integer") if !(v.is_i64() || v.is_u64()) => return fail("not an integer"),
        Some("number") if !v.is_number() => return fail("not a number"),
        Some("boolean") if !v.is_boolean() => return fail("not a boolean"),
        _ => {}
    }
    if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            return fail("below minimum");
        }
    }
    if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if x > max {
            return fail("above maximum");
        }
    }
    Ok(())
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "role": {"type": "string", "enum": ["doctor", "patient", "nurse"]},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 30}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"],
                "additionalProperties": false
            },
            "conditions": {"type": "array", "items": {"type": "string", "maxLength": 30}, "minItems": 1, "maxItems": 3},
            "hba1c": {"type": "number"},
            "insured": {"type": "boolean"}
        },
        "required": ["name", "age", "role", "address", "conditions", "hba1c", "insured"],
        "additionalProperties": false
    })
}

fn constrained(prompt: &str, c: OutputConstraint, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        constraint: Some(c),
        ..GenerateRequest::new(
            vec![ChatMessage::user(prompt)],
            SamplingParams::greedy(max_tokens),
        )
    }
}

async fn answer(m: &LocalModel, req: GenerateRequest) -> (String, FinishReason) {
    let (text, events) = common::collect(m.generate(req).expect("request accepted")).await;
    let finish = events
        .iter()
        .find_map(|e| match e {
            GenerateEvent::Done { finish, .. } => Some(*finish),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Done event: {events:?}"));
    (text, finish)
}

const PATIENT: &str = "Patient John Miller, 54, lives at 12 Oak St, Springfield 62704. Type 2 diabetes, HbA1c 8.2, insured. Give his record as JSON.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_answers_always_parse_and_match_even_when_batched() {
    let m = load();
    let schema = person_schema();
    let c = OutputConstraint::JsonSchema {
        schema: schema.clone(),
    };
    // Unconstrained, the 135M model does not write this JSON by itself.
    let (free, _) = answer(
        &m,
        GenerateRequest::new(
            vec![ChatMessage::user(PATIENT)],
            SamplingParams::greedy(200),
        ),
    )
    .await;
    let free_ok = serde_json::from_str::<Value>(free.trim())
        .ok()
        .is_some_and(|v| validate(&v, &schema, "$").is_ok());
    assert!(
        !free_ok,
        "the test needs a prompt the model fails unconstrained: {free}"
    );

    // Constrained: solo, then four at once (greedy and sampled rows mixed with a free one
    // in one batch, each row with its own mask).
    let (solo, finish) = answer(&m, constrained(PATIENT, c.clone(), 300)).await;
    assert_eq!(finish, FinishReason::Stop, "{solo}");
    let v: Value = serde_json::from_str(&solo).unwrap_or_else(|e| panic!("{e}: {solo}"));
    validate(&v, &schema, "$").unwrap();

    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let m = m.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = constrained(PATIENT, c, 300);
            if i > 0 {
                req.params.temperature = 1.0;
                req.params.seed = Some(i);
            }
            answer(&m, req).await
        }));
    }
    let free_task = {
        let m = m.clone();
        tokio::spawn(async move {
            answer(
                &m,
                GenerateRequest::new(
                    vec![ChatMessage::user(PATIENT)],
                    SamplingParams::greedy(200),
                ),
            )
            .await
        })
    };
    for (i, t) in tasks.into_iter().enumerate() {
        let (text, finish) = t.await.unwrap();
        assert_eq!(finish, FinishReason::Stop, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        validate(&v, &schema, "$").unwrap_or_else(|e| panic!("{e}: {text}"));
        if i == 0 {
            assert_eq!(text, solo, "batched greedy equals solo greedy");
        }
    }
    assert_eq!(
        free_task.await.unwrap().0,
        free,
        "a free row in the batch is unaffected"
    );
    assert!(m.stats().max_batch_seen > 1, "{:?}", m.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_and_bad_schemas() {
    let m = load();
    let (text, _) = answer(
        &m,
        constrained("List three fruits.", OutputConstraint::JsonObject, 120),
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v.is_object(), "{text}");

    // A schema the engine cannot satisfy is refused up front, not generated against.
    let bad = OutputConstraint::JsonSchema {
        schema: json!({"type": "integer", "minimum": 5, "maximum": 1}),
    };
    match m.generate(constrained("x", bad, 8)) {
        Err(RuntimeError::InvalidRequest(msg)) => assert!(msg.contains("schema"), "{msg}"),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_call_is_valid_for_the_tiny_model() {
    let m = load();
    let tools = vec![
        ToolSpec {
            name: "get_weather".into(),
            description: Some("Current weather for a city".into()),
            parameters: json!({"type": "object",
                "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"], "additionalProperties": false}),
        },
        ToolSpec {
            name: "book_table".into(),
            description: Some("Book a restaurant table".into()),
            parameters: json!({"type": "object",
                "properties": {"people": {"type": "integer", "minimum": 1, "maximum": 20}, "time": {"type": "string", "maxLength": 10}},
                "required": ["people", "time"], "additionalProperties": false}),
        },
    ];
    for which in [ForcedTool::Any, ForcedTool::Named("book_table")] {
        let schema = forced_call_schema(&tools, which.clone()).unwrap();
        let req = GenerateRequest {
            tools: tools.clone(),
            constraint: Some(OutputConstraint::JsonSchema { schema }),
            ..GenerateRequest::new(
                vec![ChatMessage::user("What's the weather in Paris?")],
                SamplingParams::greedy(80),
            )
        };
        let (text, finish) = answer(&m, req).await;
        assert_eq!(finish, FinishReason::Stop, "{text}");
        let parsed = parse_tool_calls(&text, &tools);
        assert_eq!(parsed.calls.len(), 1, "{text}");
        let call = &parsed.calls[0];
        let tool = tools.iter().find(|t| t.name == call.name).unwrap();
        validate(&call.arguments, &tool.parameters, "$.arguments").unwrap();
        if let ForcedTool::Named(n) = which {
            assert_eq!(call.name, n);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_would_outrun_max_tokens_is_closed_in_time() {
    // The schema the OpenAI SDK sends for a pydantic model whose `conditions` items have no
    // length limit. Greedy, the model loops inside the third item
    // ("type_1_diabetes_type_1_disease_name_…") until max_tokens would cut the JSON off;
    // the closing window ends that string, writes the remaining required fields and the
    // answer parses.
    let m = load();
    let schema = json!({
        "$defs": {"Address": {"additionalProperties": false, "type": "object",
            "properties": {"city": {"maxLength": 30, "type": "string"},
                           "zip": {"pattern": "^[0-9]{5}$", "type": "string"}},
            "required": ["city", "zip"]}},
        "type": "object", "additionalProperties": false,
        "properties": {
            "name": {"maxLength": 40, "type": "string"},
            "age": {"maximum": 150, "minimum": 0, "type": "integer"},
            "role": {"enum": ["doctor", "patient", "nurse"], "type": "string"},
            "address": {"$ref": "#/$defs/Address"},
            "conditions": {"items": {"type": "string"}, "maxItems": 3, "minItems": 1, "type": "array"},
            "hba1c": {"type": "number"},
            "insured": {"type": "boolean"}
        },
        "required": ["name", "age", "role", "address", "conditions", "hba1c", "insured"]
    });
    let (text, finish) = answer(
        &m,
        constrained(PATIENT, OutputConstraint::JsonSchema { schema }, 300),
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(finish, FinishReason::Stop, "{text}");
    assert_eq!(v["insured"], true, "{text}");
    assert_eq!(v["role"], "patient", "{text}");
}
