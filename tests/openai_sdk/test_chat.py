"""Chat Completions through the official openai SDK: plain and streamed
answers, reasoning fields, reasoning effort, tool-call round trip, usage,
structured-output requests, errors."""

import json

import urllib.error
import urllib.request
import openai
import pytest

from conftest import API_KEY

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def ask(client, model, **kw):
    base = dict(model=model, messages=[{"role": "user", "content": "What is 2 + 2?"}], max_tokens=16, temperature=0)
    base.update(kw)
    return client.chat.completions.create(**base)


def assemble(stream):
    content, reasoning, finish, usage, calls = "", "", None, None, {}
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        d = choice.delta
        content += d.content or ""
        r = getattr(d, "reasoning_content", None)
        if r:
            assert getattr(d, "reasoning", None) == r
            reasoning += r
        for tc in d.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                entry["id"] = tc.id
            if tc.function and tc.function.name:
                entry["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
        if choice.finish_reason:
            finish = choice.finish_reason
    return content, reasoning, finish, usage, [calls[i] for i in sorted(calls)]


def test_models_list(client, model):
    assert model == "gpt-oss-test"
    assert client.models.retrieve(model).id == model


def test_chat_non_stream(client, model):
    r = ask(client, model, seed=3)
    assert r.object == "chat.completion"
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert "<|" not in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens_details.reasoning_tokens >= 0


@pytest.mark.parametrize("seed", [1, 2])
def test_stream_matches_non_stream(client, model, seed):
    kw = dict(seed=seed, temperature=0.9, max_tokens=24,
              messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a fact."}])
    r = ask(client, model, **kw)
    content, reasoning, finish, usage, _ = assemble(
        ask(client, model, stream=True, stream_options={"include_usage": True}, **kw))
    m = r.choices[0].message
    assert content == (m.content or "")
    assert reasoning == (getattr(m, "reasoning_content", None) or "")
    assert finish == r.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens


def test_reasoning_effort(client, model):
    tokens = {}
    for effort in ["low", "medium", "high", "none"]:
        r = ask(client, model, reasoning_effort=effort, max_tokens=4)
        tokens[effort] = r.usage.prompt_tokens
    # none opens the final channel in the prompt: <|channel|>final<|message|>
    assert tokens["none"] == tokens["low"] + 3
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, reasoning_effort="extreme")
    assert e.value.body["param"] == "reasoning_effort"


def test_previous_reasoning_is_accepted_under_every_name(client, model):
    for key in ["reasoning_content", "reasoning", "thinking"]:
        r = ask(client, model, max_tokens=4, messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", key: "The user said hi."},
            {"role": "user", "content": "Bye"}])
        assert r.choices[0].message.role == "assistant"


def test_tool_call_round_trip(client, model):
    r = ask(client, model, tools=WEATHER, max_tokens=12,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
    m = r.choices[0].message
    assert m.tool_calls and m.tool_calls[0].function.name == "get_weather"
    call = m.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    # streamed: the call's name arrives first, then its arguments as deltas
    _, _, _, _, calls = assemble(ask(client, model, tools=WEATHER, max_tokens=12, stream=True,
                                      tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert calls and calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert calls[0]["arguments"] == call.function.arguments
    # round trip: send the call and its result back
    r2 = ask(client, model, tools=WEATHER, max_tokens=8, messages=[
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})}])
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_structured_output_requests_are_accepted(client, model):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = ask(client, model, response_format={"type": "json_schema", "json_schema": {"name": "math", "schema": schema}})
    assert r.choices[0].message.role == "assistant"
    r = ask(client, model, response_format={"type": "json_object"})
    assert r.choices[0].message.role == "assistant"


ANSWER = {"type": "object", "additionalProperties": False, "required": ["answer", "unit", "note"],
          "properties": {"answer": {"type": "integer"}, "unit": {"enum": ["cm", "km"]}, "note": {"type": "string"}}}


def check_answer(content):
    v = json.loads(content)
    assert set(v) == {"answer", "unit", "note"}, content
    assert isinstance(v["answer"], int) and not isinstance(v["answer"], bool), content
    assert v["unit"] in ("cm", "km") and isinstance(v["note"], str), content


def test_structured_output_is_enforced(client, model):
    # Random weights never end an answer by themselves: the constraint both
    # keeps every token valid for the schema and closes the JSON before
    # max_tokens, and says so (finish_reason "length": the answer was cut
    # short to fit). Effort none opens the final channel at once.
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": ANSWER}}
    for kw in [dict(temperature=0), dict(temperature=1, seed=1), dict(temperature=1, seed=2, top_p=0.9)]:
        r = ask(client, model, response_format=fmt, reasoning_effort="none", max_tokens=30, **kw)
        check_answer(r.choices[0].message.content)
        assert r.choices[0].finish_reason == "length"
    # streamed deltas assemble into the same kind of answer
    content, _, finish, _, _ = assemble(ask(client, model, response_format=fmt, reasoning_effort="none",
                                             max_tokens=30, temperature=1, seed=3, stream=True))
    check_answer(content)
    assert finish == "length"
    # any JSON object
    r = ask(client, model, response_format={"type": "json_object"}, reasoning_effort="none", max_tokens=24,
            temperature=1, seed=4)
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_strict_tool_arguments_are_enforced(client, model):
    tool = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city", "strict": True,
        "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                       "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}}}}]
    for seed in (1, 2):
        r = ask(client, model, tools=tool, max_tokens=24, temperature=1, seed=seed,
                tool_choice={"type": "function", "function": {"name": "get_weather"}})
        call = r.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        args = json.loads(call.function.arguments)
        assert set(args) == {"city", "unit"} and isinstance(args["city"], str), args
        assert args["unit"] in ("celsius", "fahrenheit"), args


def test_uncompilable_schema_is_400(client, model):
    with pytest.raises(openai.BadRequestError):
        ask(client, model, response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"$ref": "#/$defs/missing"}}})


def test_stop_and_max_tokens(client, model):
    r = ask(client, model, max_completion_tokens=5)
    assert r.usage.completion_tokens <= 5
    r = ask(client, model, stop=["\n", "."], max_tokens=8)
    assert "." not in (r.choices[0].message.content or "")


def test_errors(client, model, server):
    with pytest.raises(openai.NotFoundError) as e:
        ask(client, "gpt-4o")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, n=9)
    assert e.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}])
    assert e.value.body["param"] == "tools[0].function.parameters"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, messages=[{"role": "user", "content": "word " * 3000}])
    assert "2048" in e.value.body["message"] and e.value.body["code"] == "context_length_exceeded"
    bad = openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    # malformed JSON and wrong types, straight over HTTP
    status, body = post_raw(server + "/v1/chat/completions", b"{oops")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    payload = {"model": model, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}
    status, body = post_raw(server + "/v1/chat/completions", json.dumps(payload).encode())
    assert status == 400 and body["error"]["param"] == "temperature"
    # health is open, and the server is still up after all of that
    with urllib.request.urlopen(server + "/health") as r:
        assert json.load(r)["status"] == "ok"


def post_raw(url, data):
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_n_choices_and_logprobs(client, model):
    r = ask(client, model, n=2, logprobs=True, top_logprobs=2, max_tokens=64)
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        assert c.message.content is not None or c.message.tool_calls
        if c.message.content:
            assert c.logprobs is not None and c.logprobs.content
            assert "".join(t.token for t in c.logprobs.content) == c.message.content
            assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in c.logprobs.content)
