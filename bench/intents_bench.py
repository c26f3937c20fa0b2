"""Intent model: held-out accuracy, and /model/parse latency and throughput."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.common import DATA, TESTS, BenchContext, latency_line
from intents.client import RasaClient
from intents.evaluate import evaluate, read_labelled


async def run(ctx: BenchContext) -> list[str]:
    """Accuracy on tests/fixtures/intents_heldout.csv (never trained on); latency sequential and 8-way."""
    lines = []
    async with aiohttp.ClientSession() as session:
        client = RasaClient(session, [ctx.rasa.url], ctx.rasa.token, timeout=10)
        for name, path in (("held-out", TESTS / "intents_heldout.csv"), ("dev", DATA / "intents_dev.csv")):
            report = await evaluate(client, read_labelled(path))
            lines.append(f"intents {name}: accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} n={report.n}")
        texts = [t for t, _ in read_labelled(TESTS / "intents_heldout.csv")]
        timings = []
        for text in texts:
            started = time.perf_counter()
            await client.parse(text)
            timings.append(time.perf_counter() - started)
        lines.append(latency_line("/model/parse sequential", timings))
        queue = list(texts * 3)
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                await client.parse(queue.pop())

        await asyncio.gather(*(worker() for _ in range(8)))
        elapsed = time.perf_counter() - started
        lines.append(f"/model/parse throughput (8 concurrent): {len(texts) * 3 / elapsed:.0f} req/s")
    return lines
