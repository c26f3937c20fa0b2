"""The full path under load: signed, encrypted WeChat pushes from simulated shoppers.

``kefu serve`` runs as its own process in safe mode against the bench's Rasa server and a
local fake of the WeChat API; shoppers each wait for their reply before the next message.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import DATA, ROOT, BenchContext, latency_line
from intents.evaluate import read_labelled
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.pushes import AES_KEY, TOKEN, encrypt_xml

SHOPPERS = 20
MESSAGES_EACH = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _push(openid: str, text: str, msg_id: int) -> str:
    now = int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


async def run(ctx: BenchContext) -> list[str]:
    """Start the server, drive it with SHOPPERS concurrent shoppers, and report latencies."""
    folder = Path(tempfile.mkdtemp(prefix="kefu-load-"))
    db = folder / "load.db"
    subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), "kb", "import", str(ROOT / "kb" / "demo")],
        check=True,
        capture_output=True,
    )
    fake = FakeWeChatAPI(now=time.time())
    delivered: dict[str, asyncio.Event] = {}
    fake_app = fake.app()

    @web.middleware
    async def note(request: web.Request, handler: object) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)  # type: ignore[operator]
        if request.path.endswith("/custom/send") and fake.sent:
            event = delivered.get(fake.sent[-1]["touser"])
            if event:
                event.set()
        return response

    fake_app.middlewares.append(note)
    fake_runner = web.AppRunner(fake_app)
    await fake_runner.setup()
    fake_port = _free_port()
    await web.TCPSite(fake_runner, "127.0.0.1", fake_port).start()
    port = _free_port()
    env = {
        **os.environ,
        "KEFU_DB": str(db),
        "KEFU_PORT": str(port),
        "KEFU_WECHAT_TOKEN": TOKEN,
        "KEFU_WECHAT_APPID": APPID,
        "KEFU_WECHAT_SECRET": SECRET,
        "KEFU_WECHAT_AES_KEY": AES_KEY,
        "KEFU_WECHAT_MODE": "safe",
        "KEFU_WECHAT_API_BASE": f"http://127.0.0.1:{fake_port}",
        "KEFU_RASA_URL": ctx.rasa.url,
        "KEFU_RASA_TOKEN": ctx.rasa.token,
        "KEFU_LOG_FORMAT": "text",
    }
    log = open(folder / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log)
    # Messages that hand off would leave the shopper queued, and queued shoppers skip the NLU:
    # keep the bot's own path under load.
    handoff = {"human_agent", "complaint", "change_order", "cancel_order"}
    texts = [t for t, intent in read_labelled(DATA / "intents_dev.csv") if intent not in handoff]
    rng = random.Random(7)
    latencies: list[float] = []
    slow = 0
    deferred = 0
    msg_ids = iter(range(10_000_000, 20_000_000))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

            async def shopper(index: int) -> None:
                nonlocal slow, deferred
                openid = f"oBench{index:03d}"
                for _ in range(MESSAGES_EACH):
                    body, query = encrypt_xml(_push(openid, rng.choice(texts), next(msg_ids)), int(time.time()))
                    delivered[openid] = asyncio.Event()
                    started = time.perf_counter()
                    async with http.post(f"http://127.0.0.1:{port}/wechat", params=query, data=body.encode()) as resp:
                        answer = await resp.text()
                    if answer == "success":
                        # handed off to the bot's silence or sent later through the API: wait for it
                        deferred += 1
                        try:
                            await asyncio.wait_for(delivered[openid].wait(), 30)
                        except TimeoutError:
                            pass
                    elapsed = time.perf_counter() - started
                    latencies.append(elapsed)
                    slow += elapsed > 5.0

            started = time.perf_counter()
            await asyncio.gather(*(shopper(i) for i in range(SHOPPERS)))
            wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        await fake_runner.cleanup()
    return [
        f"load: {SHOPPERS} shoppers x {MESSAGES_EACH} messages, safe mode (AES), real Rasa + embedding model",
        f"throughput: {len(latencies) / wall:.1f} messages/s over {wall:.1f} s",
        latency_line("reply latency", latencies),
        f"replies slower than 5 s: {slow}; answered 'success' (outbox or silence): {deferred}",
    ]
