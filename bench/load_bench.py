"""The full path under load: signed, encrypted WeChat pushes from simulated shoppers.

``kefu serve`` runs as its own process in safe mode against the bench's Rasa server and a
local fake of the WeChat API; shoppers each wait for their reply before the next message.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from bench.common import DATA, ROOT, BenchContext, latency_line, push_xml, serve_shop
from intents.evaluate import read_labelled
from tests.pushes import encrypt_xml

SHOPPERS = 20
MESSAGES_EACH = 10


async def run(ctx: BenchContext) -> list[str]:
    """Start the server, drive it with SHOPPERS concurrent shoppers, and report latencies."""
    # Messages that hand off would leave the shopper queued, and queued shoppers skip the NLU:
    # keep the bot's own path under load.
    handoff = {"human_agent", "complaint", "change_order", "cancel_order"}
    texts = [t for t, intent in read_labelled(DATA / "intents_dev.csv") if intent not in handoff]
    rng = random.Random(7)
    latencies: list[float] = []
    slow = 0
    deferred = 0
    msg_ids = iter(range(10_000_000, 20_000_000))
    async with serve_shop(ctx, ROOT / "kb" / "demo", mode="safe") as served, aiohttp.ClientSession() as http:

        async def shopper(index: int) -> None:
            nonlocal slow, deferred
            openid = f"oBench{index:03d}"
            for _ in range(MESSAGES_EACH):
                body, query = encrypt_xml(push_xml(openid, rng.choice(texts), next(msg_ids)), int(time.time()))
                served.delivered[openid] = asyncio.Event()
                started = time.perf_counter()
                async with http.post(served.url + "/wechat", params=query, data=body.encode()) as resp:
                    answer = await resp.text()
                if answer == "success":
                    # handed off to the bot's silence or sent later through the API: wait for it
                    deferred += 1
                    try:
                        await asyncio.wait_for(served.delivered[openid].wait(), 30)
                    except TimeoutError:
                        pass
                elapsed = time.perf_counter() - started
                latencies.append(elapsed)
                slow += elapsed > 5.0

        started = time.perf_counter()
        await asyncio.gather(*(shopper(i) for i in range(SHOPPERS)))
        wall = time.perf_counter() - started
    return [
        f"load: {SHOPPERS} shoppers x {MESSAGES_EACH} messages, safe mode (AES), real Rasa + embedding model",
        f"throughput: {len(latencies) / wall:.1f} messages/s over {wall:.1f} s",
        latency_line("reply latency", latencies),
        f"replies slower than 5 s: {slow}; answered 'success' (outbox or silence): {deferred}",
    ]
