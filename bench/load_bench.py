"""The full path under load, open loop: pushes arrive at fixed rates, as WeChat delivers them.

``kefu serve`` runs as its own process in safe mode (AES) against the bench's Rasa server and a
local fake of the WeChat API. Pushes are sent at a fixed rate whether or not earlier ones were
answered (shoppers do not wait for each other); each waits at most 5 s for its HTTP answer, as
WeChat does, and a "success" answer waits for the reply through the customer-service API. The
rate steps up until p99 passes 1 s or a reply misses WeChat's 5-second window. Rasa's own
``/model/parse`` is driven the same way in the same run, so the two highest rates compare.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from bench.common import DATA, ROOT, TESTS, BenchContext, Served, push_xml, serve_shop
from intents.evaluate import read_labelled
from tests.pushes import encrypt_xml

STEP_SECONDS = 10.0
RATES = (4, 6, 8, 11, 15, 20, 26, 34, 44, 57, 74, 96, 125, 162, 210)  # messages (or parses) per second
P99_LIMIT = 1.0
REFINE = 2  # bisection steps between the last rate held and the first lost
WECHAT_WINDOW = 5.0
# Messages that hand off leave the shopper queued, and queued shoppers skip the NLU: keep the bot's own path.
HANDOFF = {"human_agent", "complaint", "change_order", "cancel_order"}


@dataclass
class Step:
    """One fixed-rate step: what was sent and how it went."""

    rate: float
    sent: int
    latencies: list[float]
    missed: int  # no reply within WeChat's window (HTTP answer or API message)
    achieved: float  # the rate the sender really kept up

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99)) if self.latencies else float("inf")

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies, 50)) if self.latencies else float("inf")

    @property
    def sustained(self) -> bool:
        return self.missed == 0 and self.p99 <= P99_LIMIT and self.achieved >= 0.95 * self.rate

    def line(self, what: str) -> str:
        return (
            f"{what} at {self.rate:g}/s: sent {self.sent} ({self.achieved:.1f}/s kept), p50 {1000 * self.p50:.0f} ms, "
            f"p99 {1000 * self.p99:.0f} ms, missed 5 s window {self.missed}{'' if self.sustained else '  <- not sustained'}"
        )


async def open_loop(rate: float, seconds: float, one: Callable[[int], Coroutine[Any, Any, float | None]]) -> Step:
    """Call ``one(i)`` at ``rate`` per second for ``seconds``; it returns a latency, or None if missed."""
    count = int(rate * seconds)
    tasks = []
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    sending = time.perf_counter() - started
    results = await asyncio.gather(*tasks)
    latencies = [r for r in results if r is not None]
    achieved = count / sending * (count - 1) / count if sending > 0 and count > 1 else rate
    return Step(rate, count, latencies, sum(r is None or r > WECHAT_WINDOW for r in results), achieved)


async def ramp(name: str, one: Callable[[int], Coroutine[Any, Any, float | None]], lines: list[str]) -> float:
    """Step the rate up until it is no longer sustained, then halve the gap between the last rate held
    and the first one lost REFINE times (the steps are 30 % apart, too coarse for a ratio); the highest
    sustained rate (0 if none)."""
    best, lost = 0.0, 0.0
    for rate in RATES:
        step = await open_loop(rate, STEP_SECONDS, one)
        lines.append(step.line(name))
        await asyncio.sleep(2.0)  # let the queues drain between steps
        if not step.sustained:
            lost = float(rate)
            break
        best = float(rate)
    for _ in range(REFINE if best and lost else 0):
        rate = round((best + lost) / 2, 1)
        step = await open_loop(rate, STEP_SECONDS, one)
        lines.append(step.line(name))
        await asyncio.sleep(2.0)
        best, lost = (rate, lost) if step.sustained else (best, rate)
    return best


def pusher(
    http: aiohttp.ClientSession, served: Served, texts: list[str], ids: Iterator[int], prefix: str
) -> Callable[[int], Coroutine[Any, Any, float | None]]:
    """One AES push from a new shopper per call; its latency until the reply (in the HTTP answer, or
    through the customer-service API after "success"), or None if it missed WeChat's window."""

    async def push(i: int) -> float | None:
        n = next(ids)
        openid = f"{prefix}{n}"
        body, query = encrypt_xml(push_xml(openid, texts[n % len(texts)], n), int(time.time()))
        served.delivered[openid] = asyncio.Event()
        started = time.perf_counter()
        try:
            async with http.post(
                served.url + "/wechat", params=query, data=body.encode(), timeout=aiohttp.ClientTimeout(total=WECHAT_WINDOW)
            ) as resp:
                answer = await resp.text()
            if answer == "success":  # the reply comes through the customer-service API
                await asyncio.wait_for(served.delivered[openid].wait(), 3 * WECHAT_WINDOW)
        except (TimeoutError, aiohttp.ClientError):
            return None
        finally:
            served.delivered.pop(openid, None)
        return time.perf_counter() - started

    return push


def shopper_texts() -> list[str]:
    """Thousands of distinct texts in a fixed shuffled order: a push seldom repeats an earlier text, so the
    encoder's cache of recent texts (which real traffic does use) flatters nothing."""
    traffic = sorted((ROOT / "intents" / "data" / "traffic").glob("*.csv"))
    paths = [DATA / "intents_dev.csv", TESTS / "intents_heldout.csv", *traffic]
    texts = sorted({t for path in paths for t, i in read_labelled(path) if i not in HANDOFF})
    random.Random(11).shuffle(texts)
    return texts


async def run(ctx: BenchContext) -> list[str]:
    """Rasa alone, then the full path, each stepped up; then the full path at 80 % of its best rate."""
    texts = shopper_texts()
    lines = [
        f"open-loop load: steps of {STEP_SECONDS:g} s at fixed rates, up to p99 {P99_LIMIT:g} s or a reply missing "
        f"WeChat's 5 s; {len(texts)} distinct texts, each push from a new shopper"
    ]
    ids = itertools.count(30_000_000)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def parse(i: int) -> float | None:
            started = time.perf_counter()
            try:
                async with http.post(
                    f"{ctx.rasa.url}/model/parse",
                    params={"token": ctx.rasa.token},
                    json={"text": texts[i % len(texts)]},
                    timeout=aiohttp.ClientTimeout(total=WECHAT_WINDOW),
                ) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return None
            return time.perf_counter() - started if ok else None

        rasa_best = await ramp("rasa /model/parse alone", parse, lines)

        async with serve_shop(ctx, ROOT / "kb" / "demo", mode="safe") as served:
            push = pusher(http, served, texts, ids, "oLoad")
            await open_loop(4, 3.0, push)  # warm-up: first-use costs are not load
            full_best = await ramp("full path", push, lines)
            p99_at_80 = 0.0
            if full_best:
                step = await open_loop(0.8 * full_best, STEP_SECONDS, push)
                lines.append(step.line("full path at 80 % of its best"))
                p99_at_80 = step.p99
    ratio = full_best / rasa_best if rasa_best else 0.0
    lines.append(
        f"full_path_rps={full_best:.1f} rasa_alone_rps={rasa_best:.1f} ratio={ratio:.2f} p99_ms_at_80pct={1000 * p99_at_80:.0f}"
    )
    return lines
