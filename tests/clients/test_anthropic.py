"""The official `anthropic` Python SDK (pinned in requirements.txt), unchanged,
against `gpt-oss serve` (Messages API). The served checkpoint has random
weights: answers are gibberish, so the tests check what the SDK parses
(message objects, block types, stream accumulation, errors), not the text."""

import anthropic
import pytest

from conftest import API_KEY, MODEL_NAME

CLAUDE_MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server, api_key=API_KEY, max_retries=0, timeout=120)


def check_message(msg, max_tokens):
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert msg.model == CLAUDE_MODEL  # the request's id is echoed
    assert msg.stop_reason in ("end_turn", "max_tokens", "tool_use", "stop_sequence")
    assert msg.usage.input_tokens > 0
    assert 0 < msg.usage.output_tokens <= max_tokens
    for block in msg.content:
        assert block.type in ("thinking", "text", "tool_use"), block
        if block.type == "thinking":
            assert block.signature.startswith("gptoss1.")
            assert block.thinking


def test_messages_create(client):
    msg = client.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=24,
        system="You are terse.",
        messages=[{"role": "user", "content": "Say hi"}],
    )
    check_message(msg, 24)


def test_tool_use_round_trip(client):
    msg = client.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=32,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    check_message(msg, 32)
    calls = [b for b in msg.content if b.type == "tool_use"]
    assert len(calls) == 1, msg
    assert calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict)
    assert calls[0].id.startswith("toolu_")
    # The SDK's own objects go back as the assistant turn, thinking included.
    again = client.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=16,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": msg.content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18 C, sunny"}]},
        ],
    )
    check_message(again, 16)


def test_messages_stream(client):
    with client.messages.stream(
        model=CLAUDE_MODEL,
        max_tokens=24,
        messages=[{"role": "user", "content": "Count to three"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check_message(final, 24)
    assert text == "".join(b.text for b in final.content if b.type == "text")
    assert final.stop_reason is not None


def test_stream_with_forced_tool(client):
    with client.messages.stream(
        model=CLAUDE_MODEL,
        max_tokens=32,
        tools=[WEATHER],
        # Named, the call is opened by the server; with "any" the random
        # weights pick the name (a constraint to declared names is coming).
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    calls = [b for b in final.content if b.type == "tool_use"]
    assert len(calls) == 1, final
    assert calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict)
    assert final.stop_reason in ("tool_use", "max_tokens")


def test_count_tokens(client):
    short = client.messages.count_tokens(
        model=CLAUDE_MODEL, messages=[{"role": "user", "content": "Hi"}])
    long = client.messages.count_tokens(
        model=CLAUDE_MODEL,
        system="You are a helpful assistant.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Hi, what is the weather in Paris today?"}],
    )
    assert 0 < short.input_tokens < long.input_tokens


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_NAME]
    assert models.data[0].type == "model"


def test_errors(server, client):
    bad = anthropic.Anthropic(base_url=server, api_key="wrong-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model=CLAUDE_MODEL, max_tokens=8,
                            messages=[{"role": "user", "content": "Hi"}])
    assert e.value.status_code == 401
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=CLAUDE_MODEL, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ]}])
    assert "images not supported" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=CLAUDE_MODEL, max_tokens=8, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"
