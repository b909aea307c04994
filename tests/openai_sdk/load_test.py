"""Bounded loopback load test and throughput benchmark for `gpt-oss serve`
(run by `LOAD=1 run.sh`, or directly with GPT_OSS_BIN and MODEL_DIR set).

1. 32 concurrent streaming clients, each with its own prompt, greedy: every
   stream must complete with [DONE] and equal the answer the same request
   gets when it runs alone (so no stream got another's tokens).
2. Aggregate decode throughput (completion tokens / wall time) with 1 request
   and with 8 concurrent requests, interleaved over 3 rounds, with the load
   average. Prints numbers; never fails on speed.
"""

import asyncio
import os
import signal
import sys
import time

import openai

from conftest import API_KEY, start_server

N_CLIENTS = 32
MAX_TOKENS = 24


async def stream_one(client, model, prompt, max_tokens):
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
        temperature=0, stream=True, stream_options={"include_usage": True})
    content, reasoning, finish, usage = "", "", None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            content += c.delta.content or ""
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
            finish = c.finish_reason or finish
    assert finish is not None, "stream ended without a finish_reason"
    return content, reasoning, usage.completion_tokens


async def throughput(client, model, n, max_tokens):
    prompts = [f"Benchmark request {i}." for i in range(n)]
    t0 = time.perf_counter()
    results = await asyncio.gather(*(stream_one(client, model, p, max_tokens) for p in prompts))
    dt = time.perf_counter() - t0
    tokens = sum(r[2] for r in results)
    return tokens / dt, tokens, dt


async def main():
    proc, base = start_server(["--max-queue", "64"])
    try:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0, timeout=600)
        model = (await client.models.list()).data[0].id
        prompts = [f"Request number {i}: describe the number {i * 7919} in {i % 5 + 1} words." for i in range(N_CLIENTS)]

        t0 = time.perf_counter()
        alone = [await stream_one(client, model, p, MAX_TOKENS) for p in prompts]
        t_alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        together = await asyncio.gather(*(stream_one(client, model, p, MAX_TOKENS) for p in prompts))
        t_together = time.perf_counter() - t0
        mixed = [i for i in range(N_CLIENTS) if alone[i][:2] != together[i][:2]]
        print(f"load: {N_CLIENTS} concurrent streams completed in {t_together:.2f} s "
              f"(one at a time: {t_alone:.2f} s); mismatches: {len(mixed)}")
        if mixed:
            print(f"FAILED: streams {mixed} differ from their solo runs")
            return 1

        # 1 and 8 interleaved round by round, so background load hits both alike.
        ratios = []
        for rnd in range(3):
            load_before = os.getloadavg()
            tps1, n1, d1 = await throughput(client, model, 1, 128)
            tps8, n8, d8 = await throughput(client, model, 8, 128)
            ratios.append(tps8 / tps1)
            print(f"bench round {rnd + 1}: 1 request : {tps1:8.1f} tok/s ({n1} tokens in {d1:.2f} s)")
            print(f"bench round {rnd + 1}: 8 requests: {tps8:8.1f} tok/s aggregate ({n8} tokens in {d8:.2f} s); "
                  f"ratio {tps8 / tps1:.2f}x; loadavg {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
        print(f"bench: median ratio 8 vs 1 concurrent requests: {sorted(ratios)[1]:.2f}x")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
