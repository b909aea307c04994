"""The official `ollama` Python client, unchanged, against `gpt-oss serve`'s
Ollama API (`/api/*`). The served checkpoint has random weights: the tests
check the protocol and the client's own parsing, not the answers."""

import json

import ollama
import pytest

from conftest import API_KEY, MODEL_NAME

OPTIONS = {"temperature": 0, "num_predict": 24}


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server, headers={"Authorization": f"Bearer {API_KEY}"})


def test_list_show_ps(client):
    models = client.list().models
    assert [m.model for m in models] == [MODEL_NAME]
    m = models[0]
    assert m.details.family == "gpt-oss"
    assert m.details.quantization_level == "MXFP4"
    assert m.modified_at is not None and m.digest.startswith("sha256:")
    assert m.size > 0

    info = client.show(MODEL_NAME)
    assert info.modelinfo["general.architecture"] == "gpt-oss"
    assert info.modelinfo["gpt-oss.context_length"] > 0
    assert set(info.capabilities) >= {"completion", "tools", "thinking"}
    assert client.show(f"{MODEL_NAME}:latest").details.family == "gpt-oss"
    with pytest.raises(ollama.ResponseError) as e:
        client.show("llama3.2")
    assert e.value.status_code == 404

    running = client.ps().models
    assert [p.model for p in running] == [MODEL_NAME]
    assert running[0].context_length == 65536
    assert running[0].expires_at is not None


def test_version_is_new_enough_for_codex(server):
    import httpx

    version = httpx.get(f"{server}/api/version", headers={"Authorization": f"Bearer {API_KEY}"}).json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 13, 4)


def test_chat(client):
    r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Say hi"}], options=OPTIONS, think="low")
    assert r.done is True and r.done_reason in ("stop", "length")
    assert r.message.role == "assistant"
    assert isinstance(r.message.content, str)
    assert "<|" not in r.message.content and "<|" not in (r.message.thinking or "")
    assert r.eval_count > 0 and r.prompt_eval_count > 0
    assert r.total_duration >= r.eval_duration > 0


def test_chat_stream(client):
    parts = list(client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Count to 3"}],
                             options=OPTIONS, stream=True))
    assert len(parts) >= 2
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    last = parts[-1]
    assert last.done_reason in ("stop", "length")
    assert last.eval_count > 0
    text = "".join(p.message.content or "" for p in parts)
    thinking = "".join(p.message.thinking or "" for p in parts)
    assert "<|" not in text and "<|" not in thinking
    # Every streamed chunk carries at most one piece of the answer.
    assert all(p.message.role == "assistant" for p in parts)


def test_chat_logprobs(client):
    r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Hi"}], options=OPTIONS,
                    logprobs=True, top_logprobs=2)
    assert "".join(lp.token for lp in r.logprobs or []) == r.message.content
    assert all(lp.logprob <= 0 and len(lp.top_logprobs) == 2 for lp in r.logprobs or [])


def test_chat_think_false_returns_no_thinking(client):
    r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Hi"}], options=OPTIONS, think=False)
    assert r.message.thinking is None


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
      city: The city name

    Returns:
      The weather
    """
    return f"sunny in {city}"


def test_chat_with_tools(client):
    messages = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    r = client.chat(model=MODEL_NAME, messages=messages, tools=[get_weather],
                    options={"temperature": 0, "num_predict": 64})
    assert r.done
    for call in r.message.tool_calls or []:
        # The client already parsed them into its own types: arguments are a mapping.
        assert call.function.name == "get_weather"
        assert isinstance(call.function.arguments, dict)
    # A tool result goes back in Ollama's shape (tool_name) whether or not the
    # random model called the tool.
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": get_weather("Paris")},
    ]
    r = client.chat(model=MODEL_NAME, messages=messages, tools=[get_weather], options=OPTIONS)
    assert r.done and r.message.role == "assistant"


def test_chat_format_json(client):
    r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Give me a JSON object"}],
                    format={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                    think="low", options={"temperature": 0, "num_predict": 64})
    # `content` is the final message alone, decoded under the schema (a
    # preamble goes to `thinking`); the random model may spend the whole
    # budget before it.
    if r.message.content:
        assert isinstance(json.loads(r.message.content)["name"], str)
    else:
        assert r.done_reason == "length"


def test_generate(client):
    r = client.generate(model=MODEL_NAME, prompt="Once upon a time", system="Be brief.", options=OPTIONS)
    assert r.done and isinstance(r.response, str) and "<|" not in r.response
    assert r.eval_count > 0
    parts = list(client.generate(model=MODEL_NAME, prompt="Hello", options=OPTIONS, stream=True))
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=MODEL_NAME, prompt="def f(", suffix="return 1")
    assert e.value.status_code == 400


def test_pull(client):
    assert client.pull(MODEL_NAME).status == "success"
    assert [p.status for p in client.pull(MODEL_NAME, stream=True)][-1] == "success"
    with pytest.raises(ollama.ResponseError) as e:
        client.pull("llama3.2:1b")
    assert e.value.status_code == 404


def test_embed_is_a_clear_error(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.embed(model=MODEL_NAME, input="hello")
    assert "embeddings" in str(e.value)


def test_missing_key_is_refused(server):
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=server).list()
    assert e.value.status_code == 401
