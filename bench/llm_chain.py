"""The LLM chain's own overhead: time to first token through ``LLMChain`` vs straight to the provider.

    .venv/bin/python -m bench.llm_chain [--requests 50] [--latency 0.35]

Starts two ``FakeOpenAI`` servers (first token after ``--latency`` s), then measures, per request,
the time from calling ``chat.completions.create`` to the first content token:

- direct:   the ``openai`` client straight to the primary fake (what a bare Pipecat service does);
- chain:    ``LLMChain.stream`` with the primary healthy (the chain's bookkeeping is the difference);
- failover: primary answering 500 on every request, secondary answering;
- hang:     primary hanging, secondary answering after ``llm_first_token_timeout`` (0.5 s here).

Prints a markdown table of p50/p95 in ms. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import openai
from tests.fakes.openai import FakeOpenAI

from phone_agent.brain.llm import LLMChain
from phone_agent.config import load_settings

MESSAGES = [{"role": "user", "content": "Are you open on Saturday?"}]


async def direct_ttft(client: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    elapsed = time.perf_counter() - started
    await stream.close()
    return elapsed


async def chain_ttft(chain: LLMChain, answered_by: list[str] | None = None) -> float:
    started = time.perf_counter()
    stream = await chain.stream(messages=MESSAGES)
    if answered_by is not None:
        answered_by.append(stream.provider)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    elapsed = time.perf_counter() - started
    await stream.close()
    return elapsed


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"| {name} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | {p95 * 1000:.1f} |"


async def main(requests: int, latency: float) -> None:
    primary = FakeOpenAI(first_token_latency=latency)
    secondary = FakeOpenAI(api_key="sk-secondary", first_token_latency=latency)
    await asyncio.to_thread(primary.start)
    await asyncio.to_thread(secondary.start)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "config.json").write_text("{}")
    settings = load_settings(
        {
            "OPENAI_API_KEY": primary.api_key,
            "PHONE_AGENT_LLM_BASE_URL": primary.url + "/v1",
            "PHONE_AGENT_LLM_SECONDARY_BASE_URL": secondary.url + "/v1",
            "PHONE_AGENT_LLM_SECONDARY_API_KEY": secondary.api_key,
            "PHONE_AGENT_LLM_FIRST_TOKEN_TIMEOUT": "0.5",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        },
        config_path=tmp / "config.json",
    )
    client = openai.AsyncOpenAI(api_key=primary.api_key, base_url=primary.url + "/v1", max_retries=0)
    chain = LLMChain.from_settings(settings)
    results: dict[str, list[float]] = {"direct": [], "chain": [], "failover (primary 500)": [], "hang": []}
    providers: dict[str, list[str]] = {name: [] for name in results}
    try:
        for _ in range(3):  # warm the connection pools
            await direct_ttft(client)
            await chain_ttft(chain)
        for _ in range(requests):
            results["direct"].append(await direct_ttft(client))
            results["chain"].append(await chain_ttft(chain, providers["chain"]))
            providers["direct"].append("primary")
        for _ in range(requests):
            primary.fail_next(1, status=500)
            results["failover (primary 500)"].append(
                await chain_ttft(chain, providers["failover (primary 500)"])
            )
        for _ in range(max(3, requests // 10)):
            primary.hang_next()
            results["hang"].append(await chain_ttft(chain, providers["hang"]))
    finally:
        await client.close()
        await chain.aclose()
        await asyncio.to_thread(primary.stop)
        await asyncio.to_thread(secondary.stop)
    print(f"LLM first token through the chain; provider first-token latency {latency * 1000:.0f} ms\n")
    print("| path | n | p50 ms | p95 ms | answered by |")
    print("|---|---|---|---|---|")
    for name, samples in results.items():
        print(row(name, samples) + f" {', '.join(sorted(set(providers[name])))} |")
    overhead = statistics.median(results["chain"]) - statistics.median(results["direct"])
    print(f"\nchain overhead (p50 chain - p50 direct): {overhead * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.35)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.latency))
