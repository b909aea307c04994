"""The Conversations API through the pinned `openai` SDK against the real
binary: a conversation made with items, responses in it (each sees the
earlier turns and adds its input and output), items listed, paged, fetched
and deleted, metadata updated, errors as the SDK's exceptions."""

import openai
import pytest

from conftest import API_KEY, MODEL_NAME


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def ask(client, conv_id, text):
    return client.responses.create(model=MODEL_NAME, conversation=conv_id, input=text,
                                   reasoning={"effort": "low"}, max_output_tokens=16, temperature=0)


def test_responses_in_a_conversation(client):
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada Lovelace."}],
        metadata={"topic": "names"})
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    assert conv.metadata == {"topic": "names"}

    r1 = ask(client, conv.id, "What is my name?")
    assert r1.conversation is not None and r1.conversation.id == conv.id
    items = client.conversations.items.list(conv.id, order="asc")
    data = list(items)
    # The first item, the question, then every output item of the response.
    assert len(data) == 2 + len(r1.output), data
    assert data[0].type == "message" and data[0].content[0].text == "My name is Ada Lovelace."
    assert data[1].role == "user" and data[1].content[0].text == "What is my name?"
    assert [i.id for i in data[2:]] == [o.id for o in r1.output]

    # The next turn sees the earlier ones: more input tokens than the same
    # question alone.
    r2 = ask(client, conv.id, "Say it again.")
    alone = client.responses.create(model=MODEL_NAME, input="Say it again.", reasoning={"effort": "low"},
                                    max_output_tokens=16, temperature=0)
    assert r2.usage.input_tokens > r1.usage.input_tokens > alone.usage.input_tokens, (r1.usage, r2.usage)

    # Newest first by default; paging with limit/after walks every item once.
    newest = client.conversations.items.list(conv.id, limit=1)
    assert newest.data[0].id == r2.output[-1].id and newest.has_more
    seen = [i.id for i in client.conversations.items.list(conv.id, limit=2, order="asc")]
    assert len(seen) == len(set(seen)) == 3 + len(r1.output) + len(r2.output)

    # Items added by hand, fetched, deleted.
    added = client.conversations.items.create(
        conv.id, items=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Noted."}]}])
    item_id = added.data[0].id
    assert client.conversations.items.retrieve(item_id, conversation_id=conv.id).content[0].text == "Noted."
    back = client.conversations.items.delete(item_id, conversation_id=conv.id)
    assert back.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(item_id, conversation_id=conv.id)

    updated = client.conversations.update(conv.id, metadata={"topic": "done"})
    assert client.conversations.retrieve(conv.id).metadata == updated.metadata == {"topic": "done"}
    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_conversation_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        ask(client, "conv_does_not_exist", "hi")
    assert e.value.body["param"] == "conversation"
    conv = client.conversations.create()
    r = ask(client, conv.id, "hi")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL_NAME, conversation=conv.id, previous_response_id=r.id,
                                input="again", max_output_tokens=16)
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(conv.id, items=[{"type": "message", "role": "wizard", "content": "x"}])
