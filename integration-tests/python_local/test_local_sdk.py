"""The official OpenAI and Anthropic SDKs against the in-process local model.

Run by integration-tests/tests/local_model.rs with SWITCHYARD_OPENAI_BASE_URL and
SWITCHYARD_ANTHROPIC_BASE_URL pointing at a gateway that serves SmolLM2 locally.
"""
# anthropic 2.x no longer takes `temperature` as an argument; it still travels in the body.
import os

import anthropic
import openai

MODEL = "local/smollm2-135m-instruct"
QUESTION = "What is the capital of France?"
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
