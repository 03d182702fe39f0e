"""The official OpenAI and Anthropic SDKs against the in-process local model.

Run by integration-tests/tests/local_model.rs with SWITCHYARD_OPENAI_BASE_URL and
SWITCHYARD_ANTHROPIC_BASE_URL pointing at a gateway that serves SmolLM2 locally.
"""
# anthropic 2.x no longer takes `temperature` as an argument; it still travels in the body.
import os

import anthropic
import openai

MODEL = "local/smollm2-135m-instruct"
QUESTION = "Name the capital of France."
ANSWER = "The capital of France is Paris."


def oai():
    return openai.OpenAI(base_url=os.environ["SWITCHYARD_OPENAI_BASE_URL"], api_key="unused")


def claude():
    return anthropic.Anthropic(base_url=os.environ["SWITCHYARD_ANTHROPIC_BASE_URL"], api_key="unused")


def test_openai_chat_greedy():
    r = oai().chat.completions.create(
        model=MODEL, temperature=0, messages=[{"role": "user", "content": QUESTION}]
    )
    assert r.choices[0].message.content == ANSWER
    assert r.choices[0].finish_reason == "stop"
    assert r.model == MODEL
    assert r.usage.prompt_tokens > 5 and r.usage.completion_tokens == 8


def test_openai_stream_with_usage():
    chunks = list(
        oai().chat.completions.create(
            model=MODEL,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": QUESTION}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[-1].usage.completion_tokens == 8


def test_openai_max_tokens_gives_length():
    r = oai().chat.completions.create(
        model=MODEL, temperature=0, max_tokens=3, messages=[{"role": "user", "content": QUESTION}]
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_anthropic_message_greedy():
    m = claude().messages.create(
        model=MODEL, max_tokens=64, extra_body={"temperature": 0}, messages=[{"role": "user", "content": QUESTION}]
    )
    assert m.content[0].text == ANSWER
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 8


def test_anthropic_stream():
    with claude().messages.stream(
        model=MODEL, max_tokens=64, extra_body={"temperature": 0}, messages=[{"role": "user", "content": QUESTION}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == ANSWER
    assert final.stop_reason == "end_turn"


def test_models_list_shows_licence():
    models = {m.id: m for m in oai().models.list().data}
    assert MODEL in models
    extra = models[MODEL].model_extra["switchyard"]
    assert extra["license"] == "Apache-2.0" and extra["commercial_use"] is True


# --- Structured output and tool calls: constrained decoding makes even the 135M model's
# answers parse and match the schema (enums, nesting, required fields, arrays, numbers).

import json
from typing import List, Literal

import pydantic

PATIENT = (
    "Patient John Miller, 54, lives at 12 Oak St, Springfield 62704. "
    "Type 2 diabetes, HbA1c 8.2, insured. Give his record as JSON."
)


class Address(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    city: str = pydantic.Field(max_length=30)
    zip: str = pydantic.Field(pattern=r"^[0-9]{5}$")


class Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(max_length=40)
    age: int = pydantic.Field(ge=0, le=150)
    role: Literal["doctor", "patient", "nurse"]
    address: Address
    conditions: List[str] = pydantic.Field(min_length=1, max_length=3)
    hba1c: float
    insured: bool


class Weather(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    city: str = pydantic.Field(max_length=40)
    unit: Literal["celsius", "fahrenheit"]


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"], "additionalProperties": False}}},
]


def test_openai_parse_pydantic_schema_with_nesting_enum_and_refs():
    # The SDK sends a strict json_schema with $defs/$ref for the nested model and
    # validates the answer with pydantic.
    r = oai().chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": PATIENT}], response_format=Record, max_tokens=300)
    rec = r.choices[0].message.parsed
    assert isinstance(rec, Record), r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def test_openai_json_schema_streaming():
    # The SDK's streaming helper sends the strict schema and parses the streamed answer.
    pieces = 0
    with oai().chat.completions.stream(
        model=MODEL, max_tokens=300, messages=[{"role": "user", "content": PATIENT}], response_format=Record
    ) as s:
        for event in s:
            if event.type == "content.delta":
                pieces += 1
        final = s.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Record), final.choices[0].message.content
    assert pieces > 5, "streamed in pieces"


def test_openai_json_object():
    r = oai().chat.completions.create(
        model=MODEL, max_tokens=120, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Return a JSON object with the keys name and age for Alice, who is 30."}],
    )
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_openai_forced_tool_calls():
    for choice in ["required", {"type": "function", "function": {"name": "get_weather"}}]:
        r = oai().chat.completions.create(
            model=MODEL, max_tokens=80, tools=OPENAI_TOOLS, tool_choice=choice,
            messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        )
        msg = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls", msg
        assert len(msg.tool_calls) == 1
        call = msg.tool_calls[0]
        assert call.id.startswith("call_")
        args = json.loads(call.function.arguments)
        if call.function.name == "get_weather":
            Weather.model_validate(args)
        else:
            assert call.function.name == "get_time" and isinstance(args["city"], str)
        if choice != "required":
            assert call.function.name == "get_weather"


def test_openai_forced_tool_call_streaming_and_round_trip():
    chunks = list(
        oai().chat.completions.create(
            model=MODEL, max_tokens=80, stream=True, tools=OPENAI_TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        )
    )
    calls = {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            if tc.function and tc.function.name:
                entry["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason == "tool_calls"
    assert len(calls) == 1 and calls[0]["name"] == "get_weather"
    Weather.model_validate_json(calls[0]["arguments"])
    # The result goes back to the model, which answers in text.
    r = oai().chat.completions.create(
        model=MODEL, max_tokens=40, tools=OPENAI_TOOLS,
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"id": calls[0]["id"], "type": "function", "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18 degrees, sunny"},
        ],
    )
    assert r.choices[0].message.content or r.choices[0].message.tool_calls


ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Current weather for a city", "input_schema": WEATHER_SCHEMA},
    {"name": "record_patient", "description": "Store a patient record", "input_schema": Record.model_json_schema()},
]


def test_anthropic_forced_tool_use_is_structured_output():
    # Anthropic's way to get structured output: force a tool whose input schema is the shape.
    for choice, name in [({"type": "tool", "name": "record_patient"}, "record_patient"), ({"type": "any"}, None)]:
        m = claude().messages.create(
            model=MODEL, max_tokens=300, tools=ANTHROPIC_TOOLS, tool_choice=choice,
            messages=[{"role": "user", "content": PATIENT}],
        )
        assert m.id.startswith("msg_"), m.id
        assert m.stop_reason == "tool_use"
        blocks = [b for b in m.content if b.type == "tool_use"]
        assert len(blocks) == 1
        assert blocks[0].id.startswith("toolu_")
        if name:
            assert blocks[0].name == name
        if blocks[0].name == "record_patient":
            Record.model_validate(blocks[0].input)
        else:
            Weather.model_validate(blocks[0].input)


def test_anthropic_forced_tool_use_streaming():
    with claude().messages.stream(
        model=MODEL, max_tokens=80, tools=ANTHROPIC_TOOLS, tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
    ) as s:
        final = s.get_final_message()
    assert final.id.startswith("msg_")
    assert final.stop_reason == "tool_use"
    (block,) = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    Weather.model_validate(block.input)


# --- Honest defaults: no temperature means greedy; stop, seed and max_tokens in both dialects.


def test_default_temperature_is_greedy_in_both_dialects():
    msgs = [{"role": "user", "content": "Write one sentence about the sea."}]
    greedy = oai().chat.completions.create(model=MODEL, temperature=0, max_tokens=24, messages=msgs).choices[0].message.content
    for _ in range(2):
        r = oai().chat.completions.create(model=MODEL, max_tokens=24, messages=msgs)
        assert r.choices[0].message.content == greedy
    m = claude().messages.create(model=MODEL, max_tokens=24, messages=msgs)
    assert m.content[0].text == greedy
    assert m.id.startswith("msg_")


def test_stop_sequences_and_seed_in_both_dialects():
    r = oai().chat.completions.create(model=MODEL, max_tokens=64, stop=["Paris"], messages=[{"role": "user", "content": QUESTION}])
    assert r.choices[0].message.content == ANSWER.split("Paris")[0]
    assert r.choices[0].finish_reason == "stop"
    m = claude().messages.create(model=MODEL, max_tokens=64, stop_sequences=["Paris"], messages=[{"role": "user", "content": QUESTION}])
    assert m.content[0].text == ANSWER.split("Paris")[0]
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "Paris"
    msgs = [{"role": "user", "content": "Write a short poem about the sea."}]
    a = oai().chat.completions.create(model=MODEL, temperature=1.0, seed=7, max_tokens=24, messages=msgs).choices[0].message.content
    b = oai().chat.completions.create(model=MODEL, temperature=1.0, seed=7, max_tokens=24, messages=msgs).choices[0].message.content
    assert a == b
