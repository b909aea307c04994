"""The OpenAI Agents SDK (openai-agents, pinned) against `gpt-oss serve`:
an agent with a function tool on the Responses model and on the Chat
Completions model, run to its final output, plain and streamed."""

import asyncio

from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner,
                    function_tool, set_tracing_disabled)
from openai import AsyncOpenAI

from conftest import API_KEY, MODEL_NAME

set_tracing_disabled(True)
CALLS = []


@function_tool
def get_weather(location: str) -> str:
    """Current weather for a location."""
    CALLS.append(location)
    return f"Sunny, 22 C in {location}"


def agent(server, kind):
    client = AsyncOpenAI(base_url=server + "/v1", api_key=API_KEY)
    model = (OpenAIResponsesModel if kind == "responses" else OpenAIChatCompletionsModel)(
        model=MODEL_NAME, openai_client=client)
    return Agent(name="weather", instructions="Answer weather questions with the tool.", model=model,
                 tools=[get_weather], model_settings=ModelSettings(max_tokens=256, temperature=0))


def check(result):
    assert isinstance(result.final_output, str)
    assert "<|" not in result.final_output
    for item in result.new_items:
        if item.type == "tool_call_item":
            # A call always names the declared tool (the server's constraint).
            assert item.raw_item.name == "get_weather"


def test_agent_with_a_tool_on_both_apis(server):
    for kind in ["responses", "chat"]:
        result = asyncio.run(Runner.run(agent(server, kind), "What is the weather in Paris?", max_turns=4))
        check(result)


def test_agent_streamed(server):
    async def run():
        result = Runner.run_streamed(agent(server, "responses"), "What is the weather in Oslo?", max_turns=4)
        kinds = set()
        async for event in result.stream_events():
            kinds.add(event.type)
        return result, kinds

    result, kinds = asyncio.run(run())
    check(result)
    assert "raw_response_event" in kinds
