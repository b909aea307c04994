"""`previous_response_id` across a restart of the real binary, through the
pinned `openai` SDK: with `--store FILE` a new server on the same SQLite file
continues the conversation; with `--store none` the follow-up is a 404."""

import openai
import pytest

from conftest import API_KEY, MODEL_NAME, start_server, stop_server

FIRST = "My name is Ada Lovelace and I wrote the first published program for an engine."
FOLLOW_UP = "What is my name?"


def client_for(base):
    return openai.OpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def first_turn(store):
    proc, base, log = start_server(["--store", store])
    try:
        r1 = client_for(base).responses.create(
            model=MODEL_NAME, input=FIRST, instructions="Remember names.",
            reasoning={"effort": "low"}, max_output_tokens=16, temperature=0)
    finally:
        stop_server(proc, log)
    assert r1.id.startswith("resp_") and r1.store is True
    return r1


def test_restart_keeps_the_conversation(tmp_path):
    store = str(tmp_path / "responses.sqlite3")
    r1 = first_turn(store)

    proc, base, log = start_server(["--store", store])
    try:
        client = client_for(base)
        again = client.responses.retrieve(r1.id)
        assert again.id == r1.id and again.output_text == r1.output_text
        assert again.usage.total_tokens == r1.usage.total_tokens

        r2 = client.responses.create(model=MODEL_NAME, input=FOLLOW_UP, previous_response_id=r1.id,
                                     reasoning={"effort": "low"}, max_output_tokens=16, temperature=0)
        assert r2.previous_response_id == r1.id
        assert r2.instructions == "Remember names."
        # The same question with the same instructions but no history: the
        # difference is the stored first exchange (at least its user message).
        alone = client.responses.create(model=MODEL_NAME, input=FOLLOW_UP, instructions="Remember names.",
                                        reasoning={"effort": "low"}, max_output_tokens=16, temperature=0)
        assert r2.usage.input_tokens >= alone.usage.input_tokens + 15, (r2.usage, alone.usage)
        assert r2.usage.input_tokens > r1.usage.input_tokens
    finally:
        stop_server(proc, log)


def test_store_none_forgets_at_exit():
    r1 = first_turn("none")
    proc, base, log = start_server(["--store", "none"])
    try:
        with pytest.raises(openai.NotFoundError) as e:
            client_for(base).responses.create(model=MODEL_NAME, input=FOLLOW_UP, previous_response_id=r1.id,
                                              max_output_tokens=16)
        assert e.value.status_code == 404
        assert e.value.body["code"] == "previous_response_not_found"
        assert e.value.body["param"] == "previous_response_id"
    finally:
        stop_server(proc, log)
