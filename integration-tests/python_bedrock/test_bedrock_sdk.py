"""The official OpenAI and Anthropic Python SDKs against Switchyard with AWS Bedrock as the
backend (the Bedrock mock of integration-tests/src/bedrock_mock.rs, which checks every
SigV4 signature with botocore). Run by integration-tests/tests/bedrock.rs, which sets
SWITCHYARD_BASE_URL (http://GATEWAY).
"""

import json
import os

import anthropic
import openai

BASE = os.environ["SWITCHYARD_BASE_URL"]
KEY = "sk-client-python"
MODEL = "claude-sonnet-4-5"
PARIS = {"location": "Paris", "unit": "celsius"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def oa():
    return openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0)


def an():
    return anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0)


def test_openai_chat():
    r = oa().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello from python"}],
    )
    assert r.choices[0].message.content == "Echo: hello from python"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 6 and r.usage.completion_tokens == 4


def test_openai_stream_with_usage():
    chunks = list(
        oa().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "stream from python"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream from python"
    assert chunks[-1].usage.completion_tokens == 4


def test_openai_tool_round_trip():
    client = oa()
    messages = [{"role": "user", "content": "TOOL_CALL weather please"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == PARIS
    messages.append(r.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL])
    assert r.choices[0].message.content == "Tool result: sunny"


def test_anthropic_messages_and_stream():
    client = an()
    m = client.messages.create(
        model=MODEL, max_tokens=100, system="You are terse.", messages=[{"role": "user", "content": "hi anthropic"}]
    )
    assert m.content[0].text == "Echo: hi anthropic"
    assert m.stop_reason == "end_turn"
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "TOOL_CALL go"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    ) as s:
        final = s.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather" and tool.input == PARIS
    assert final.stop_reason == "tool_use"


def test_throttling_reaches_the_sdk_as_a_rate_limit_error():
    try:
        oa().chat.completions.create(model="mock-throttle", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError as e:
        assert e.status_code == 429
    else:
        raise AssertionError("expected a 429")
