"""Helpers the benchmarks share: the demo shop, the real embedding model, one Rasa server."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import sqlite_utils
from aiohttp import web

import server
from intents.service import RasaService
from intents.training import default_cache, default_rasa_venv, model_path
from kb.encoder import DEFAULT_MODEL, DEFAULT_VARIANT, Encoder, open_encoder
from kb.importer import import_dir
from kb.search import KnowledgeBase, Thresholds
from storage.db import open_db
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.helpers import free_port
from tests.pushes import AES_KEY, TOKEN

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "kb" / "demo"
DATA = Path(__file__).resolve().parent / "data"
TESTS = ROOT / "tests" / "fixtures"


SHOPS = DATA / "shops"
# Shops written apart from the code and never tuned on (no threshold, weight or rule is fitted on them):
# they are measured only, to show what a shop kefu has never seen gets.
HELD_OUT = DATA / "heldout"


@dataclass(frozen=True)
class Shop:
    """A shop to measure on: its catalogue folder, its questions and its conversations."""

    name: str
    folder: Path
    questions: Path
    conversations: Path | None
    held_out: bool = False


def shops(held_out: bool | None = None) -> list[Shop]:
    """The demo shop (its held-out questions), every dev shop under bench/data/shops and, with
    ``held_out``, the shops under bench/data/heldout (last). By default the held-out shops are
    listed unless ``KEFU_BENCH_DEV_ONLY`` is set (for work on the dev shops that must not see them);
    ``KEFU_BENCH_SHOPS=digital,pets`` keeps only the shops it names."""
    if held_out is None:
        held_out = not os.environ.get("KEFU_BENCH_DEV_ONLY")
    only = {name for name in os.environ.get("KEFU_BENCH_SHOPS", "").split(",") if name}
    found = [Shop("demo", DEMO, TESTS / "kb_heldout.csv", None)]
    for folder in sorted(p for p in SHOPS.iterdir() if (p / "products.csv").exists()):
        found.append(Shop(folder.name, folder, folder / "questions.csv", folder / "conversations.txt"))
    if held_out:
        for folder in sorted(p for p in HELD_OUT.iterdir() if (p / "products.csv").exists()):
            found.append(Shop(folder.name, folder, folder / "questions.csv", folder / "conversations.txt", held_out=True))
    return [shop for shop in found if shop.name in only] if only else found


def demo_db(folder: Path | None = None, shop: Path = DEMO) -> sqlite_utils.Database:
    """A fresh database holding the demo shop (or the shop in ``shop``)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    db = open_db(folder / "bench.db", server.MIGRATIONS)
    import_dir(db, shop)
    return db


def load_encoder() -> Encoder:
    """The configured embedding model."""
    return open_encoder(os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL), os.environ.get("KEFU_EMBED_VARIANT", DEFAULT_VARIANT))


def demo_kb(db: sqlite_utils.Database, thresholds: Thresholds | None = None, encoder: Encoder | None = None) -> KnowledgeBase:
    """The demo knowledge base with the configured embedding model."""
    kb = KnowledgeBase(encoder or load_encoder(), thresholds)
    kb.load(db)
    return kb


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def latency_line(label: str, seconds: list[float]) -> str:
    """p50/p95/p99 in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return (
        f"{label}: n={len(ms)} p50={percentile(ms, 50):.1f}ms p95={percentile(ms, 95):.1f}ms "
        f"p99={percentile(ms, 99):.1f}ms mean={statistics.fmean(ms):.1f}ms"
    )


@dataclass
class BenchContext:
    """Shared by every section: the encoder and a running Rasa server."""

    encoder: Encoder
    rasa: RasaService

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[BenchContext]:
        """Load the model and start Rasa for the whole run."""
        cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
        rasa = RasaService(Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(cache)), model_path(cache))
        await rasa.start()
        try:
            yield cls(load_encoder(), rasa)
        finally:
            await rasa.stop()


def push_xml(openid: str, text: str, msg_id: int) -> str:
    """A shopper's text push as WeChat sends it (plain XML)."""
    now = int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


@dataclass
class Served:
    """A running ``kefu serve`` and the fake WeChat API it sends through."""

    url: str
    fake: FakeWeChatAPI
    delivered: dict[str, asyncio.Event] = field(default_factory=dict)
    pid: int = 0  # the kefu serve process


@asynccontextmanager
async def serve_shop(
    ctx: BenchContext, shop: Path, *, mode: str = "plain", root: Path = ROOT, **env: str
) -> AsyncIterator[Served]:
    """Import ``shop`` into a fresh database and run ``kefu serve`` on it against the bench's Rasa
    (the kefu of the checkout ``root``: another commit's, to compare)."""
    folder = Path(tempfile.mkdtemp(prefix="kefu-serve-"))
    db = folder / "kefu.db"
    code = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), "kb", "import", str(shop)],
        check=True,
        capture_output=True,
        cwd=root,
        env=code,
    )
    fake = FakeWeChatAPI(now=time.time())
    fake_app = fake.app()
    served = Served("", fake)

    @web.middleware
    async def note(request: web.Request, handler: object) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)  # type: ignore[operator]
        if request.path.endswith("/custom/send") and fake.sent:
            event = served.delivered.get(fake.sent[-1]["touser"])
            if event:
                event.set()
        return response

    fake_app.middlewares.append(note)
    fake_runner = web.AppRunner(fake_app)
    await fake_runner.setup()
    fake_port = free_port()
    await web.TCPSite(fake_runner, "127.0.0.1", fake_port).start()
    port = free_port()
    served.url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "KEFU_DB": str(db),
        "KEFU_PORT": str(port),
        "KEFU_WECHAT_TOKEN": TOKEN,
        "KEFU_WECHAT_APPID": APPID,
        "KEFU_WECHAT_SECRET": SECRET,
        "KEFU_WECHAT_AES_KEY": AES_KEY,
        "KEFU_WECHAT_MODE": mode,
        "KEFU_WECHAT_API_BASE": f"http://127.0.0.1:{fake_port}",
        "KEFU_RASA_URL": ctx.rasa.url,
        "KEFU_RASA_TOKEN": ctx.rasa.token,
        "KEFU_LOG_FORMAT": "text",
        "PYTHONPATH": str(root),
        **env,
    }
    log = open(folder / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=root, env=environment, stdout=log, stderr=log)
    served.pid = proc.pid
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(served.url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        await fake_runner.cleanup()
