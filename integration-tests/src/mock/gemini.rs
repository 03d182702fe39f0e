//! The Gemini API routes of the mock upstream, on the same port as the others:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
//! `:countTokens`, the key in `x-goog-api-key` ([`MockConfig::gemini_key`]).
//!
//! Answers follow the same rules as the other dialects (the body is read as the
//! equivalent chat request: `Echo: …`, `Tool result: …`, `TOOL_CALL`, `maxOutputTokens`,
//! `stopSequences`, `mock-say-WORD`), written as Gemini writes them: function calls without
//! ids, the finish reason and full usage on the last stream chunk, chunks ended by CRLF.
//! What Gemini rejects, the mock rejects with Google's error shape: a wrong or missing key,
//! unknown fields at the top level and in `generationConfig`, empty `contents` or
//! `parts`, a role other than `user` or `model`, a `functionResponse` without a name, and a
//! stream request without `alt=sse` (Gemini would answer one JSON array, not events).
//! Model-name triggers: `mock-429`, `mock-500`, `mock-503`, `mock-truncate`, `mock-slow-MS`.
//!
//! Vertex AI: the same methods under
//! `/v1/projects/{p}/locations/{l}/publishers/google/models/{model}`, authorized by
//! `Authorization: Bearer` with a token from `POST /token`, Google's OAuth endpoint for
//! the JWT bearer grant: the assertion must be an RS256 JWT signed with
//! [`TEST_PRIVATE_KEY`], issued by [`TEST_SERVICE_ACCOUNT`] for the cloud-platform scope,
//! its audience the endpoint and its lifetime at most an hour — as Google checks it.

use axum::extract::Path;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::*;

/// The test service account's e-mail.
pub const TEST_SERVICE_ACCOUNT: &str = "switchyard-test@switchyard-test.iam.gserviceaccount.com";

/// A throwaway RSA key made for these tests (`openssl genrsa 2048`); it signs nothing
/// anywhere else.
pub const TEST_PRIVATE_KEY: &str = concat!(
    "-----BEGIN PRIVATE KEY-----\n",
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDOWOodwCqlwTm6\n",
    "sgYiQVKGFnga23wrDfDGzFx3DgG6bYh4KPqC2FZOmqUMnqcM/pm5RrVsomgZR/h2\n",
    "9M03/iH2CfFzs374L24u4Qf9VDrdta/HvAYr9SzGmcRZTkGcbQJFYDadevVk/q2y\n",
    "TqB9Yl/E2z9ECxrjKD2sKdhmftsuDmwTBhWnZ/fG+hdZtWC9OS3nllejplUXBevE\n",
    "bZd+toYTc1MJNVs/yEUzBDpUsub7i+axblXan8tefnhlIRZT9PJ8pvXEtTt/kUo4\n",
    "rmBxQcUA9RGoWR8PsbCOhJn05pcvsZl5W/Slqv/giNvC0+vfTdhzSZPyBGxjqaxZ\n",
    "XDqmU+uhAgMBAAECggEADBzOCVcJaddw0xO2JnadKH/TJwhxPnnAA3tlhhuNYGsj\n",
    "kqIdKmcWkeCkBZyeg7XCQkzzQ2A5Khq+bAUssre5OJ8WzEriDiGCnz/YXzd9iRws\n",
    "KFZSKmxm53WJQBDG6y6+7mGacx4Pn5EPkyLoatPGeWDBUvYv6tum2x9Ns56IsShO\n",
    "lgp5ayByqG2hyblPGfuK0JKCBHK3Sy4m9f+fVXiJ/aH9fqLbDGW0rExgHav2ps4b\n",
    "U4LTOtTi7VACfOfMymoFRNhCVMrp8Ko7GRDjLJ+94Z57er4m/5/6hIFTlxytNEpX\n",
    "KWPL1yywh0dfpEBPjTkl2aBURpCiuCqxZXgCW4RsjQKBgQDmuYh9UKDBNtOSJ2Un\n",
    "WcaBfMpcNEP86HF94qLQF6txbHVYlJIx26TgH4lQe1gxsXnn+X3BbR5mFHBudzPx\n",
    "sNa6iefgmeQ2mcSEoRSPyRm7kWazNu44Eej7fX6o+hCpxKmMYZ1tLoZuiya/rw+b\n",
    "vqIHoiGfWmTxTr0pgQsAZF1bowKBgQDk870dhdWq9YvawAxtEybCPIa8Wl+iHul2\n",
    "/Rp6Z0BaUFnvgCBawEDep3lJ7/l2wImAcNv3zYXNwJOKxFD7O1Hg+37JxJYk7xrY\n",
    "Z59jjhOB294mdqHz2XOnIFbJn1FqIFTQfOVgVrMxtb9YU2Mrffzc8Xw1WROEWD2G\n",
    "oJeC0tjP6wKBgBB0dvmJAI4HHPu1d49g5blibwQ4bgjhgwaZXUc+COoj9BKHNg38\n",
    "PjwFw8NLqLSSlcEnmAJth9d76bDXK4s3M3lGUJVCJHaIbO2Ql2jRzNYFvq9VYZP6\n",
    "IwWco6Xlf7672eO7KoEY6lmD7xWIpLJU3DVzKLa2ubBED1WgcGpsvgPFAoGBAIwk\n",
    "EYcnq6DoigGM+k4todTU3ZgfLVh72WXnCTURTFe7xUEPST6jXVGsa1ZxmF4y/jdr\n",
    "XYlx+Mv3a5hOEE+ngLfY2UPBnDHhVapOy0ZR6ejb3z/l773mRZ9v8Q+bAGeYgLHZ\n",
    "MUHl7+umlwgGirZNeOD4w5GYA5VHuelVFUiTrPifAoGBANIsVcbyomMeSTdApJ6V\n",
    "s62StKqSrRp62wWpas6yoSKuqDuZo3JkR3nYfxx4lNegwdhPwLB8A7YLU3fa6Lek\n",
    "+PplJQBmh4ayuOsKKeEtW82dnI3TPXgI3cNAZQQwpJ0NGgXmieX3+zQapzxkk4O2\n",
    "3wGD/9RcGoyNskQIRlx66A5V\n",
    "-----END PRIVATE KEY-----\n"
);

const TEST_PUBLIC_KEY: &str = concat!(
    "-----BEGIN PUBLIC KEY-----\n",
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzljqHcAqpcE5urIGIkFS\n",
    "hhZ4Gtt8Kw3wxsxcdw4Bum2IeCj6gthWTpqlDJ6nDP6ZuUa1bKJoGUf4dvTNN/4h\n",
    "9gnxc7N++C9uLuEH/VQ63bWvx7wGK/UsxpnEWU5BnG0CRWA2nXr1ZP6tsk6gfWJf\n",
    "xNs/RAsa4yg9rCnYZn7bLg5sEwYVp2f3xvoXWbVgvTkt55ZXo6ZVFwXrxG2XfraG\n",
    "E3NTCTVbP8hFMwQ6VLLm+4vmsW5V2p/LXn54ZSEWU/TyfKb1xLU7f5FKOK5gcUHF\n",
    "APURqFkfD7GwjoSZ9OaXL7GZeVv0par/4IjbwtPr303Yc0mT8gRsY6msWVw6plPr\n",
    "oQIDAQAB\n",
    "-----END PUBLIC KEY-----\n"
);

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
        &[],
    )
}

/// `POST /token`: checks the assertion as Google does and issues a token.
pub(super) async fn google_token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, raw.clone());
    let form = url_form(&raw);
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return finish(
            &shared,
            &req,
            oauth_error("unsupported_grant_type", "Invalid grant_type: "),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return finish(
            &shared,
            &req,
            oauth_error("invalid_request", "Missing required parameter: assertion"),
        );
    };
    let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).expect("test public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!(
        "http://{}/token",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
    )]);
    validation.set_issuer(&[TEST_SERVICE_ACCOUNT]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(d) => d.claims,
        Err(e) => {
            return finish(
                &shared,
                &req,
                oauth_error("invalid_grant", &format!("Invalid JWT: {e}")),
            )
        }
    };
    let lifetime = claims["exp"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(claims["iat"].as_u64().unwrap_or(0));
    if lifetime > 3600 {
        return finish(&shared, &req, oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."));
    }
    if !claims["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/cloud-platform")
    }) {
        return finish(
            &shared,
            &req,
            oauth_error(
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            ),
        );
    }
    let token = format!("ya29.mock-{}", req.seq);
    shared.issued_tokens.lock().unwrap().push(token.clone());
    finish(
        &shared,
        &req,
        json_response(
            StatusCode::OK,
            &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
            &[],
        ),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`: Entra ID's client credentials grant, with its
/// AADSTS errors.
pub(super) async fn entra_token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, raw.clone());
    let form = url_form(&raw);
    let field = |k: &str| form.get(k).map(String::as_str);
    let (id, secret) = &shared.cfg.entra_client;
    let refuse = |status: StatusCode, error: &str, description: &str| {
        json_response(
            status,
            &json!({"error": error, "error_description": description, "error_codes": [7000215]}),
            &[],
        )
    };
    let resp = if field("grant_type") != Some("client_credentials") {
        refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        )
    } else if field("client_id") != Some(id.as_str()) {
        refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application was not found in the directory.",
        )
    } else if field("client_secret") != Some(secret.as_str()) {
        refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        )
    } else if field("scope") != Some("https://cognitiveservices.azure.com/.default") {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        )
    } else {
        let token = format!("eyJ0eXAiOiJKV1QifQ.mock-{}", req.seq);
        shared.issued_tokens.lock().unwrap().push(token.clone());
        json_response(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
            &[],
        )
    };
    finish(&shared, &req, resp)
}

fn url_form(raw: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// Vertex AI's model routes: a token the token endpoint issued, then as the Gemini API.
pub(super) async fn vertex_call(
    State(shared): State<Arc<Shared>>,
    Path((_project, _location, target)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, raw);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "));
    let known = token.is_some_and(|t| shared.issued_tokens.lock().unwrap().iter().any(|k| k == t));
    if !known {
        return finish(
            &shared,
            &req,
            google_error(
                StatusCode::UNAUTHORIZED,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            ),
        );
    }
    serve(shared.clone(), req, &target, &uri).await
}

const TOP_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "model",
];

const GENERATION_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
];

fn google_error(status: StatusCode, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    json_response(status, &body, &[])
}

fn bad(message: impl AsRef<str>) -> Response {
    google_error(StatusCode::BAD_REQUEST, message.as_ref())
}

fn unknown_field(obj: &serde_json::Map<String, Value>, known: &[&str], at: &str) -> Option<String> {
    obj.keys().find(|k| !known.contains(&k.as_str())).map(|k| {
        format!("Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field.")
    })
}

/// The text of a Content's text parts.
fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the request as Gemini would and reads it as the equivalent chat request, so
/// the shared answer rules apply.
fn as_chat(body: &Value, model: &str) -> Result<Value, Response> {
    let Some(obj) = body.as_object() else {
        return Err(bad("Invalid JSON payload received."));
    };
    if let Some(m) = unknown_field(obj, TOP_FIELDS, "") {
        return Err(bad(m));
    }
    let contents = match obj.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(bad(
                "* GenerateContentRequest.contents: contents is not specified",
            ))
        }
    };
    let mut messages = Vec::new();
    if let Some(sys) = obj.get("systemInstruction") {
        let parts = sys
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        messages.push(json!({"role": "system", "content": parts_text(&parts)}));
    }
    for (i, c) in contents.iter().enumerate() {
        let role = match c.get("role").and_then(Value::as_str) {
            None | Some("user") => "user",
            Some("model") => "assistant",
            Some(other) => {
                return Err(bad(format!(
                    "Please use a valid role: user, model. Got '{other}' at contents[{i}]."
                )))
            }
        };
        let parts = match c.get("parts").and_then(Value::as_array) {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(bad(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )))
            }
        };
        for p in parts {
            if let Some(fr) = p.get("functionResponse") {
                if fr
                    .get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(bad(format!(
                        "* GenerateContentRequest.contents[{i}].parts.function_response.name: Name cannot be empty."
                    )));
                }
                let response = fr.get("response").cloned().unwrap_or(Value::Null);
                let text = ["output", "error", "result"]
                    .iter()
                    .find_map(|k| response.get(*k).and_then(Value::as_str))
                    .map_or_else(|| response.to_string(), str::to_string);
                messages.push(json!({"role": "tool", "content": text}));
            }
        }
        let text = parts_text(parts);
        if !text.is_empty() || role == "assistant" {
            messages.push(json!({"role": role, "content": text}));
        }
    }
    let mut chat = json!({"model": model, "messages": messages});
    if let Some(g) = obj.get("generationConfig") {
        let Some(g) = g.as_object() else {
            return Err(bad(
                "Invalid JSON payload received. generationConfig is not an object.",
            ));
        };
        if let Some(m) = unknown_field(g, GENERATION_FIELDS, "generation_config") {
            return Err(bad(m));
        }
        if let Some(n) = g.get("maxOutputTokens") {
            chat["max_tokens"] = n.clone();
        }
        if let Some(s) = g.get("stopSequences") {
            chat["stop"] = s.clone();
        }
    }
    let names: Vec<Value> = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").cloned())
        .map(|name| json!({"type": "function", "function": {"name": name}}))
        .collect();
    if !names.is_empty() {
        chat["tools"] = Value::Array(names);
    }
    Ok(chat)
}

fn usage(a: &Answer) -> Value {
    json!({
        "promptTokenCount": a.input_tokens,
        "candidatesTokenCount": a.output_tokens,
        "totalTokenCount": a.input_tokens + a.output_tokens,
    })
}

fn finish_reason(r: Reason) -> &'static str {
    match r {
        Reason::MaxTokens => "MAX_TOKENS",
        Reason::End | Reason::StopSequence | Reason::ToolUse => "STOP",
    }
}

fn call_parts(a: &Answer) -> Vec<Value> {
    a.tool_calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
            json!({"functionCall": {"name": c.name, "args": args}})
        })
        .collect()
}

fn chunk(parts: Vec<Value>, finish: Option<&str>, usage: Value, model: &str, id: &str) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    let body = json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": id,
    });
    format!("data: {body}\r\n\r\n")
}

pub(super) async fn gemini_call(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, raw);
    let done = |r: Response| finish(&shared, &req, r);
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        None => {
            return done(google_error(
                StatusCode::FORBIDDEN,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ))
        }
        Some(k) if k != shared.cfg.gemini_key => {
            return done(bad("API key not valid. Please pass a valid API key."))
        }
        Some(_) => {}
    }
    serve(shared.clone(), req, &target, &uri).await
}

/// One model call after authorization, the same on both ways in.
async fn serve(shared: Arc<Shared>, req: Req, target: &str, uri: &Uri) -> Response {
    let done = |r: Response| finish(&shared, &req, r);
    let Some((model, call)) = target.rsplit_once(':') else {
        return done(google_error(
            StatusCode::NOT_FOUND,
            "Requested entity was not found.",
        ));
    };
    let model = model.to_string();
    let Some(body) = req.body.clone() else {
        return done(bad("Invalid JSON payload received."));
    };
    if call == "countTokens" {
        let inner = body.get("generateContentRequest").unwrap_or(&body);
        return done(match as_chat(inner, &model) {
            Ok(chat) => {
                let n = input_tokens(Dialect::OpenAi, &chat);
                json_response(StatusCode::OK, &json!({"totalTokens": n}), &[])
            }
            Err(r) => r,
        });
    }
    let stream = match call {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return done(google_error(
                StatusCode::NOT_FOUND,
                &format!("Method {call} is not found for models/{model}."),
            ))
        }
    };
    let sse = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    if stream && !sse {
        return done(bad(
            "mock-strict: streamGenerateContent without alt=sse answers one JSON array, not server-sent events",
        ));
    }
    let chat = match as_chat(&body, &model) {
        Ok(c) => c,
        Err(r) => return done(r),
    };
    let trigger = trigger_name(&shared, &model);
    for (code, status, message) in [
        ("mock-429", StatusCode::TOO_MANY_REQUESTS, "Resource has been exhausted (e.g. check quota)."),
        ("mock-500", StatusCode::INTERNAL_SERVER_ERROR, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
        ("mock-503", StatusCode::SERVICE_UNAVAILABLE, "The model is overloaded. Please try again later."),
    ] {
        if trigger.contains(code) {
            return done(google_error(status, message));
        }
    }
    let guard = OutcomeGuard {
        shared: shared.clone(),
        idx: req.idx,
        armed: true,
    };
    let a = answer(Dialect::OpenAi, &chat);
    let id = format!("gresp_mock{}", req.seq);
    let delay = slow_delay(&trigger);
    if !stream {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut parts = Vec::new();
        if !a.text.is_empty() {
            parts.push(json!({"text": a.text}));
        }
        parts.extend(call_parts(&a));
        let body = json!({
            "candidates": [{
                "content": {"role": "model", "parts": parts},
                "finishReason": finish_reason(a.reason),
                "index": 0,
            }],
            "usageMetadata": usage(&a),
            "modelVersion": model,
            "responseId": id,
        });
        guard.finish(Outcome::Completed);
        return json_response(StatusCode::OK, &body, &[]);
    }
    let prompt_only =
        json!({"promptTokenCount": a.input_tokens, "totalTokenCount": a.input_tokens});
    let mut frames: Vec<String> = pieces(&a.text)
        .into_iter()
        .map(|p| {
            chunk(
                vec![json!({"text": p})],
                None,
                prompt_only.clone(),
                &model,
                &id,
            )
        })
        .collect();
    for c in call_parts(&a) {
        frames.push(chunk(vec![c], None, prompt_only.clone(), &model, &id));
    }
    frames.push(chunk(
        vec![json!({"text": ""})],
        Some(finish_reason(a.reason)),
        usage(&a),
        &model,
        &id,
    ));
    let truncate_after = trigger
        .contains("mock-truncate")
        .then(|| 2.min(frames.len() - 1));
    sse_response(
        guard,
        StreamPlan {
            frames,
            delay,
            truncate_after,
            stall_after: None,
        },
        Vec::new(),
    )
}
