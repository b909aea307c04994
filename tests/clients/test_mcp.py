"""The Responses API's hosted `mcp` tool against a REAL MCP server: the
reference Python SDK (`mcp`, its MCPServer, formerly FastMCP) on loopback
with the Streamable HTTP transport, driven through the openai SDK against
`gpt-oss serve --mcp on`. The MCP server writes every call it runs to a
file, so the tests see that a call really reached it (and that a call
waiting for approval did not).

The demo model's choices are random: `tool_choice` (required, or a named
MCP tool) forces the call; the checks are about the protocol, not the
model's judgement.

Run as a script (`python test_mcp.py PORT RECORD_FILE`), this file is the
MCP server itself."""

import json
import os
import socket
import subprocess
import sys
import time

import jsonschema
import pytest
from openai import OpenAI

from conftest import API_KEY, MODEL_NAME, free_port

TOOLS = {"add", "echo", "fail", "slow"}


def serve_mcp(port: int, record: str) -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("calc")

    def log(name, arguments):
        with open(record, "a") as f:
            f.write(json.dumps({"name": name, "arguments": arguments}) + "\n")

    @server.tool(description="Adds two integers.")
    def add(a: int, b: int) -> str:
        log("add", {"a": a, "b": b})
        return str(a + b)

    @server.tool(description="Returns the text unchanged.")
    def echo(text: str) -> str:
        log("echo", {"text": text})
        return text

    # No arguments: the random-weight model's arguments for an `int` were once a 22-digit
    # integer (schema-valid) that the SDK's own validation refused before the tool ran.
    @server.tool(description="Always fails.")
    def fail() -> str:
        log("fail", {})
        raise ToolError("refused on purpose")

    @server.tool(description="Answers after 10 seconds.")
    async def slow() -> str:
        import anyio

        log("slow", {})
        await anyio.sleep(10)
        return "late"

    server.run("streamable-http", host="127.0.0.1", port=port)


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory):
    record = str(tmp_path_factory.mktemp("mcp") / "calls.jsonl")
    port = free_port()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mcp-server-{port}.log"), "w+")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(port), record],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"MCP server exited early:\n{log.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("MCP server did not come up in 30 s")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp", record
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def calls(record):
    if not os.path.exists(record):
        return []
    with open(record) as f:
        return [json.loads(line) for line in f if line.strip()]


def client(base):
    return OpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def mcp_tool(url, **extra):
    return {"type": "mcp", "server_label": "calc", "server_url": url,
            "server_description": "A calculator.", **extra}


def items(response, kind):
    return [i for i in response.output if i.type == kind]


def listed(response):
    lists = items(response, "mcp_list_tools")
    assert len(lists) == 1, response.output
    assert lists[0].server_label == "calc"
    assert lists[0].error is None, lists[0].error
    return {t.name: t for t in lists[0].tools}


def check_call(call, tools, record, before):
    """The call names a declared tool, its arguments validate against the
    tool's schema, and the MCP server ran it with them and returned the
    output the item carries."""
    assert call.server_label == "calc"
    assert call.name in tools, call
    args = json.loads(call.arguments)
    jsonschema.validate(args, tools[call.name].input_schema)
    ran = [c for c in calls(record)[before:] if c["name"] == call.name]
    assert ran, f"the MCP server never saw {call.name}: {calls(record)}"
    expected = {"add": lambda a: str(a["a"] + a["b"]), "echo": lambda a: a["text"]}
    assert call.name in expected, call
    assert any(c["arguments"] == {k: args[k] for k in c["arguments"]} for c in ran), (ran, args)
    assert call.error is None, call.error
    assert call.status == "completed"
    assert call.output == expected[call.name](args)


def test_list_and_call(mcp_gpt_server, mcp_url):
    url, record = mcp_url
    before = len(calls(record))
    r = client(mcp_gpt_server).responses.create(
        model=MODEL_NAME, input="Add 2 and 3.", max_output_tokens=160,
        tools=[mcp_tool(url, require_approval="never", allowed_tools=["add"])],
        tool_choice="required")
    tools = listed(r)
    assert set(tools) == {"add"}, "allowed_tools filters the list"
    assert r.output[0].type == "mcp_list_tools", "tool lists come first"
    assert tools["add"].input_schema["properties"].keys() == {"a", "b"}
    assert tools["add"].description == "Adds two integers."
    mcp_calls = items(r, "mcp_call")
    assert mcp_calls, r.output
    check_call(mcp_calls[0], tools, record, before)
    assert not items(r, "function_call")
    assert [t.type for t in r.tools] == ["mcp"]
    assert getattr(r.tools[0], "authorization", None) is None


def test_every_tool_is_listed_and_a_named_choice_is_followed(mcp_gpt_server, mcp_url):
    url, record = mcp_url
    before = len(calls(record))
    r = client(mcp_gpt_server).responses.create(
        model=MODEL_NAME, input="Add 2 and 3.", max_output_tokens=160,
        tools=[mcp_tool(url, require_approval="never",
                        allowed_tools={"tool_names": ["add", "echo", "fail", "slow"]})],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"})
    tools = listed(r)
    assert set(tools) == TOOLS
    first = items(r, "mcp_call")[0]
    assert first.name == "add"
    check_call(first, tools, record, before)


def test_streaming_events_in_order(mcp_gpt_server, mcp_url):
    url, record = mcp_url
    before = len(calls(record))
    stream = client(mcp_gpt_server).responses.create(
        model=MODEL_NAME, input="Add 2 and 3.", max_output_tokens=160, stream=True,
        tools=[mcp_tool(url, require_approval="never")],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"})
    events = list(stream)
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:6] == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                          "response.mcp_list_tools.completed", "response.output_item.done"], kinds
    assert events[2].item.type == "mcp_list_tools" and events[5].item.type == "mcp_list_tools"
    assert {t.name for t in events[5].item.tools} == TOOLS
    assert kinds[-1] in ("response.completed", "response.incomplete")
    start = next(i for i, e in enumerate(events)
                 if e.type == "response.output_item.added" and e.item.type == "mcp_call")
    call_id = events[start].item.id
    mine = [e for e in events[start:] if getattr(e, "item_id", None) == call_id
            or getattr(getattr(e, "item", None), "id", None) == call_id]
    mine_kinds = [e.type for e in mine]
    deltas = [e for e in mine if e.type == "response.mcp_call_arguments.delta"]
    assert deltas, mine_kinds
    assert mine_kinds == (["response.output_item.added", "response.mcp_call.in_progress"]
                          + ["response.mcp_call_arguments.delta"] * len(deltas)
                          + ["response.mcp_call_arguments.done", "response.mcp_call.completed",
                             "response.output_item.done"]), mine_kinds
    done = mine[-1].item
    arguments = "".join(d.delta for d in deltas)
    assert mine[-3].arguments == arguments == done.arguments
    tools = {t.name: t for t in events[5].item.tools}
    check_call(done, tools, record, before)
    final = events[-1].response
    assert [i.id for i in final.output if i.type == "mcp_call"][0] == call_id


def test_approval_round_trip(mcp_gpt_server, mcp_url):
    url, record = mcp_url
    api = client(mcp_gpt_server)
    tools = [mcp_tool(url, require_approval="always")]
    before = len(calls(record))
    r1 = api.responses.create(
        model=MODEL_NAME, input="Add 2 and 3.", max_output_tokens=160, tools=tools,
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"})
    requests = items(r1, "mcp_approval_request")
    assert len(requests) == 1, r1.output
    request = requests[0]
    assert r1.output[-1].id == request.id, "the approval request ends the response"
    assert request.server_label == "calc" and request.name == "add"
    args = json.loads(request.arguments)
    assert isinstance(args["a"], int) and isinstance(args["b"], int)
    assert len(calls(record)) == before, "nothing runs before the approval"

    r2 = api.responses.create(
        model=MODEL_NAME, previous_response_id=r1.id, max_output_tokens=32, tools=tools,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}])
    assert not items(r2, "mcp_list_tools"), "the list of the previous response is reused"
    call = r2.output[0]
    assert call.type == "mcp_call", r2.output
    assert call.approval_request_id == request.id
    assert call.arguments == request.arguments
    assert call.output == str(args["a"] + args["b"])
    assert calls(record)[before:] == [{"name": "add", "arguments": {"a": args["a"], "b": args["b"]}}]
    assert r2.status in ("completed", "incomplete")
    # Two responses on, the list made by the first is still in the chain.
    r3 = api.responses.create(model=MODEL_NAME, previous_response_id=r2.id, input="Thanks.",
                              max_output_tokens=16, tools=tools)
    assert not items(r3, "mcp_list_tools"), r3.output


def test_refused_approval_stateless(mcp_gpt_server, mcp_url):
    """Items passed back instead of previous_response_id; a refusal runs
    nothing."""
    url, record = mcp_url
    api = client(mcp_gpt_server)
    tools = [mcp_tool(url, require_approval={"never": {"tool_names": ["echo"]}})]
    r1 = api.responses.create(
        model=MODEL_NAME, input="Add 2 and 3.", max_output_tokens=160, tools=tools, store=False,
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"})
    request = items(r1, "mcp_approval_request")[0]
    before = len(calls(record))
    passed_back = [i.model_dump(exclude_none=True) for i in r1.output]
    r2 = api.responses.create(
        model=MODEL_NAME, max_output_tokens=32, tools=tools, store=False,
        input=[{"role": "user", "content": "Add 2 and 3."}, *passed_back,
               {"type": "mcp_approval_response", "approval_request_id": request.id,
                "approve": False, "reason": "not now"}])
    assert not items(r2, "mcp_list_tools"), "the passed-back list is reused"
    assert not items(r2, "mcp_call") or all(c.approval_request_id is None for c in items(r2, "mcp_call"))
    assert [c for c in calls(record)[before:] if c["name"] == "add"] == []


def test_failures_are_items_not_errors(mcp_gpt_server, mcp_url):
    url, record = mcp_url
    api = client(mcp_gpt_server)
    # A tool that raises: a failed call whose error the model reads.
    r = api.responses.create(
        model=MODEL_NAME, input="Fail.", max_output_tokens=160,
        tools=[mcp_tool(url, require_approval="never")],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "fail"})
    call = items(r, "mcp_call")[0]
    assert call.name == "fail" and call.status == "failed"
    assert call.error.type == "mcp_tool_execution_error", call.error
    assert "refused on purpose" in json.dumps(call.error.content)
    # A tool slower than --mcp-timeout: a timeout, not a hung request.
    stream = api.responses.create(
        model=MODEL_NAME, input="Wait.", max_output_tokens=48, stream=True,
        tools=[mcp_tool(url, require_approval="never")],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "slow"})
    timed = [(time.monotonic(), e) for e in stream]
    asked = next(t for t, e in timed if e.type == "response.mcp_call_arguments.done")
    failed = next(t for t, e in timed if e.type == "response.mcp_call.failed")
    assert 2.5 < failed - asked < 8, "the call gave up at --mcp-timeout (3 s), not after 10 s"
    call = next(e.item for _, e in timed
                if e.type == "response.output_item.done" and e.item.type == "mcp_call")
    assert call.name == "slow" and call.status == "failed"
    assert call.error.type == "mcp_protocol_error", call
    assert "timed out" in call.error.message
    assert timed[-1][1].type in ("response.completed", "response.incomplete")


def test_unreachable_server_is_an_error_item(mcp_gpt_server):
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    raw = client(mcp_gpt_server).responses.with_raw_response.create(
        model=MODEL_NAME, input="Hi.", max_output_tokens=16,
        tools=[{"type": "mcp", "server_label": "gone", "server_url": closed}],
        tool_choice="required")
    assert raw.http_response.status_code == 200
    r = raw.parse()
    lists = items(r, "mcp_list_tools")
    assert len(lists) == 1 and lists[0].server_label == "gone"
    assert lists[0].tools == [] and "cannot reach" in lists[0].error
    assert not items(r, "mcp_call")
    assert r.status in ("completed", "incomplete")


def test_off_by_default_leaves_the_tool_out(server, mcp_url):
    url, record = mcp_url
    before = len(calls(record))
    raw = client(server).responses.with_raw_response.create(
        model=MODEL_NAME, input="Hi.", max_output_tokens=16,
        tools=[mcp_tool(url, require_approval="never")])
    assert raw.http_response.status_code == 200
    warning = raw.http_response.headers.get("x-gpt-oss-warning", "")
    assert "mcp" in warning and "--mcp on" in warning, warning
    r = raw.parse()
    assert not [i for i in r.output if i.type.startswith("mcp_")]
    assert r.tools == []
    assert len(calls(record)) == before


if __name__ == "__main__":
    serve_mcp(int(sys.argv[1]), sys.argv[2])
