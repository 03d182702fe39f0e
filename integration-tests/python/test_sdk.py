"""The official OpenAI and Anthropic Python SDKs, unchanged except for base_url, against
Switchyard in front of the mock upstream (see integration-tests/src/mock.rs for its
deterministic behaviour: "Echo: <text>", usage in words, model-name triggers).

Run by integration-tests/tests/sdk_python.rs, which starts the stack and sets
SWITCHYARD_OPENAI_BASE_URL (http://GATEWAY/v1) and SWITCHYARD_ANTHROPIC_BASE_URL
(http://GATEWAY).
"""

import json
import os

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

OPENAI_BASE = os.environ.get("SWITCHYARD_OPENAI_BASE_URL")
ANTHROPIC_BASE = os.environ.get("SWITCHYARD_ANTHROPIC_BASE_URL")
# The Google Gen AI SDK's base URL is the gateway root (it adds /v1beta/models/...).
GEMINI_BASE = ANTHROPIC_BASE
if not OPENAI_BASE or not ANTHROPIC_BASE:
    raise RuntimeError(
        "set SWITCHYARD_OPENAI_BASE_URL and SWITCHYARD_ANTHROPIC_BASE_URL "
        "(cargo test -p switchyard-integration-tests --test sdk_python does it)"
    )

# The gateway ignores client keys (no virtual keys yet); these must not reach the upstream.
CLIENT_KEY = "sk-client-python"
GPT = "gpt-4o-mini"
CLAUDE = "claude-echo"
BACKENDS = [GPT, CLAUDE]  # OpenAI backend, Anthropic backend
SYSTEM = "You are terse."
TEXT = "hello from the test"
ECHO = "Echo: hello from the test"
PARIS = {"location": "Paris", "unit": "celsius"}
SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["location"],
}


def trigger(model: str, trig: str) -> str:
    """Model name reaching the same backend as `model` with a mock trigger."""
    return f"claude-{trig}" if model.startswith("claude") else trig


@pytest.fixture(scope="module")
def oai():
    return openai.OpenAI(base_url=OPENAI_BASE, api_key=CLIENT_KEY, max_retries=0, timeout=20)


@pytest.fixture(scope="module")
def gem():
    return genai.Client(
        api_key=CLIENT_KEY,
        http_options=genai_types.HttpOptions(base_url=GEMINI_BASE, timeout=20_000),
    )


@pytest.fixture(scope="module")
def ant():
    return anthropic.Anthropic(base_url=ANTHROPIC_BASE, api_key=CLIENT_KEY, max_retries=0, timeout=20)


# --------------------------------------------------------------------------------------
# OpenAI SDK


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_chat(oai, model):
    r = oai.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEXT}],
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == ECHO
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (7, 5, 12)


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_stream(oai, model):
    stream = oai.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEXT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == ECHO
    assert finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (7, 5)


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_stream_helper_final_completion(oai, model):
    with oai.chat.completions.stream(
        model=model, messages=[{"role": "user", "content": TEXT}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == ECHO


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_tools_round_trip(oai, model):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}]
    msgs = [{"role": "user", "content": "weather? TOOL_CALL"}]
    r = oai.chat.completions.create(model=model, messages=msgs, tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == PARIS
    msgs.append(choice.message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "22 degrees"})
    r2 = oai.chat.completions.create(model=model, messages=msgs, tools=tools)
    assert r2.choices[0].message.content == "Tool result: 22 degrees"


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_stream_tools(oai, model):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
    with oai.chat.completions.stream(
        model=model, messages=[{"role": "user", "content": "TOOL_CALL"}], tools=tools
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == PARIS
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_errors_are_typed(oai, model):
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model=trigger(model, "mock-429"), messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers.get("retry-after") == "7"
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model=trigger(model, "mock-500"), messages=[{"role": "user", "content": "x"}])


def test_openai_unknown_model_is_not_found(oai):
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_stream_error_mid_stream_raises(oai, model):
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(
            model=trigger(model, "mock-stream-error"), messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


def test_openai_models_list(oai):
    ids = {m.id for m in oai.models.list()}
    assert {GPT, CLAUDE} <= ids


# --------------------------------------------------------------------------------------
# OpenAI SDK, Responses API (translated to chat for both backends)

WEATHER_TOOL = [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": SCHEMA}]


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_responses_create_retrieve_continue(oai, model):
    r = oai.responses.create(model=model, instructions=SYSTEM, input=TEXT)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.output_text == ECHO
    assert r.usage.input_tokens == 7 and r.usage.output_tokens == 5
    assert oai.responses.retrieve(r.id).output_text == ECHO
    r2 = oai.responses.create(model=model, input="and again", previous_response_id=r.id)
    assert r2.previous_response_id == r.id
    assert r2.output_text == "Echo: and again"
    oai.responses.delete(r2.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(r2.id)


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_responses_stream(oai, model):
    with oai.responses.stream(model=model, input=TEXT) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == ECHO
    assert final.output_text == ECHO
    assert final.usage is not None and final.usage.output_tokens == 5
    # Streamed turns are stored too.
    assert oai.responses.retrieve(final.id).output_text == ECHO


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_responses_function_call_round_trip(oai, model):
    r = oai.responses.create(model=model, input="weather? TOOL_CALL", tools=WEATHER_TOOL)
    call = next(item for item in r.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == PARIS
    r2 = oai.responses.create(
        model=model,
        tools=WEATHER_TOOL,
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 degrees"}],
    )
    assert r2.output_text == "Tool result: 22 degrees"


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_responses_stream_function_call(oai, model):
    with oai.responses.stream(model=model, input="TOOL_CALL", tools=WEATHER_TOOL) as stream:
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == PARIS


def test_openai_responses_unknown_previous_id_is_bad_request(oai):
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model=GPT, input="x", previous_response_id="resp_nope")


# --------------------------------------------------------------------------------------
# Google Gen AI SDK (Gemini API, translated to chat for both backends)


@pytest.mark.parametrize("model", BACKENDS)
def test_gemini_generate_content(gem, model):
    r = gem.models.generate_content(
        model=model,
        contents=TEXT,
        config=genai_types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=50),
    )
    assert r.text == ECHO
    assert r.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count == 7
    assert r.usage_metadata.candidates_token_count == 5


@pytest.mark.parametrize("model", BACKENDS)
def test_gemini_stream(gem, model):
    text, last = "", None
    for chunk in gem.models.generate_content_stream(model=model, contents=TEXT):
        text += chunk.text or ""
        last = chunk
    assert text == ECHO
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count == 5


@pytest.mark.parametrize("model", BACKENDS)
def test_gemini_function_call_round_trip(gem, model):
    tool = genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(name="get_weather", description="Weather", parameters_json_schema=SCHEMA)
        ]
    )
    config = genai_types.GenerateContentConfig(
        tools=[tool],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    question = genai_types.Content(role="user", parts=[genai_types.Part(text="weather? TOOL_CALL")])
    r = gem.models.generate_content(model=model, contents=[question], config=config)
    call = r.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == PARIS
    answer = genai_types.Part.from_function_response(name="get_weather", response={"output": "22 degrees"})
    r2 = gem.models.generate_content(
        model=model,
        contents=[question, r.candidates[0].content, genai_types.Content(role="user", parts=[answer])],
        config=config,
    )
    assert r2.text == "Tool result: 22 degrees"


@pytest.mark.parametrize("model", BACKENDS)
def test_gemini_errors_are_typed(gem, model):
    with pytest.raises(genai_errors.ClientError) as e:
        gem.models.generate_content(model=trigger(model, "mock-429"), contents="x")
    assert e.value.code == 429


# --------------------------------------------------------------------------------------
# Anthropic SDK


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_messages(ant, model):
    r = ant.messages.create(model=model, max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": TEXT}])
    assert r.type == "message"
    assert r.role == "assistant"
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == ECHO
    assert r.stop_reason == "end_turn"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 5)


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_stream(ant, model):
    with ant.messages.stream(
        model=model, max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": TEXT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ECHO
    assert final.content[0].text == ECHO
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_raw_stream_events(ant, model):
    stream = ant.messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": TEXT}], stream=True
    )
    types = [ev.type for ev in stream]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "message_delta" in types
    assert "content_block_delta" in types


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_tools_round_trip(ant, model):
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}]
    msgs = [{"role": "user", "content": "weather? TOOL_CALL"}]
    r = ant.messages.create(model=model, max_tokens=100, messages=msgs, tools=tools)
    assert r.stop_reason == "tool_use"
    uses = [b for b in r.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == PARIS
    msgs.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]})
    msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "22 degrees"}]})
    r2 = ant.messages.create(model=model, max_tokens=100, messages=msgs, tools=tools)
    assert r2.content[0].text == "Tool result: 22 degrees"


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_stream_tools(ant, model):
    tools = [{"name": "get_weather", "input_schema": SCHEMA}]
    with ant.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "TOOL_CALL"}], tools=tools
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    assert uses[0].input == PARIS
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_errors_are_typed(ant, model):
    with pytest.raises(anthropic.RateLimitError) as e:
        ant.messages.create(model=trigger(model, "mock-429"), max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers.get("retry-after") == "7"
    with pytest.raises(anthropic.InternalServerError):
        ant.messages.create(model=trigger(model, "mock-500"), max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_anthropic_unknown_model_is_not_found(ant):
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_stream_error_mid_stream_raises(ant, model):
    with pytest.raises(anthropic.APIError):
        with ant.messages.stream(
            model=trigger(model, "mock-stream-error"), max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass


def test_anthropic_count_tokens(ant):
    r = ant.messages.count_tokens(model=CLAUDE, system=SYSTEM, messages=[{"role": "user", "content": TEXT}])
    assert r.input_tokens == 7
