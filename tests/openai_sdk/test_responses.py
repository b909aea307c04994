"""Responses API through the official openai SDK: plain and streamed
responses, the event sequence, reasoning effort, function calls with
function_call_output, previous_response_id, errors."""

import openai
import pytest

WEATHER = [{"type": "function", "name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_create(client, model):
    r = client.responses.create(model=model, input="Say hi.", max_output_tokens=16, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert isinstance(r.output_text, str) and "<|" not in r.output_text
    assert r.usage.output_tokens <= 16
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert client.responses.retrieve(r.id).id == r.id


def test_stream_event_sequence(client, model):
    kw = dict(model=model, input=[{"role": "user", "content": "Count to three."}], instructions="Be brief.",
              max_output_tokens=24, temperature=0)
    events = list(client.responses.create(stream=True, **kw))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[1] == "response.in_progress"
    assert types[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    # every added item is done, in order
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    done = [e.output_index for e in events if e.type == "response.output_item.done"]
    assert added == done == list(range(len(final.output)))
    # same request without streaming: same output text
    assert client.responses.create(**kw).output_text == final.output_text


def test_reasoning_effort(client, model):
    for effort in ["low", "medium", "high"]:
        r = client.responses.create(model=model, input="Hi", reasoning={"effort": effort}, max_output_tokens=4)
        assert r.reasoning.effort == effort
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="Hi", reasoning={"effort": "extreme"})
    assert e.value.body["param"] == "reasoning.effort"


def test_previous_response_id(client, model):
    r1 = client.responses.create(model=model, input="My name is Ada.", instructions="Remember names.",
                                 max_output_tokens=8, temperature=0)
    r2 = client.responses.create(model=model, input="What is my name?", previous_response_id=r1.id,
                                 max_output_tokens=8, temperature=0)
    assert r2.previous_response_id == r1.id
    assert r2.instructions == "Remember names."
    # the second prompt holds the first exchange
    assert r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens // 2
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, input="x", previous_response_id="resp_does_not_exist")


def test_function_call_round_trip(client, model):
    r = client.responses.create(model=model, input="Weather in Paris?", tools=WEATHER, max_output_tokens=12,
                                tool_choice={"type": "function", "name": "get_weather"}, temperature=0)
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    r2 = client.responses.create(model=model, previous_response_id=r.id, tools=WEATHER, max_output_tokens=8,
                                 input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "21 C"}])
    assert r2.status in ("completed", "incomplete")
    # the same round trip without the store: items carry the call
    r3 = client.responses.create(model=model, tools=WEATHER, max_output_tokens=8, store=False, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "21 C"}])
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r3.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=model, input=[{"type": "function_call_output", "call_id": "nope", "output": "x"}])


def test_streamed_function_call(client, model):
    events = list(client.responses.create(model=model, input="Weather?", tools=WEATHER, max_output_tokens=10,
                                          tool_choice={"type": "function", "name": "get_weather"}, stream=True))
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and done[0].arguments == args
    item = [o for o in events[-1].response.output if o.type == "function_call"][0]
    assert item.arguments == args and item.name == "get_weather"
