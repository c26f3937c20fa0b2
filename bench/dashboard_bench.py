"""``python -m bench dashboard``: shopper reply latency while a manager's report over 1,000,000 reviews
runs again and again, with the report on the writer (where every store function ran before the read
pool) and on the read pool (as the dashboard reads now), in one run.

The real message path, in this process: ``make_app`` on a database holding the demo shop and 1,000,000
generated reviews (``bench.report_bench.generate``), the bench's Rasa server, the ONNX encoder with one
thread as ``kefu serve`` runs it, and a local fake of the WeChat API. Pushes arrive open loop
(``bench.load_bench.open_loop``) from new shoppers; each is timed until its reply is delivered: in the
HTTP answer, or through the customer-service API when it missed the in-band deadline. Meanwhile the
dashboard's report (90 days, every product) is computed back to back through the app's own DbRunner,
with ``run`` (the writer thread, which also stores every message and reply) or ``read`` (a read
connection of the pool). On the writer each of a message's few database calls (store it, read its
conversation, store the answer) waits behind the report under way, so a reply waits for several reports.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

import server
from bench.common import BenchContext, push_xml
from bench.load_bench import WECHAT_WINDOW, Step, open_loop, shopper_texts
from bench.report_bench import DAY, START, generate
from bot import conversations as conv_store
from console.report_views import DASHBOARD
from kb.encoder import open_encoder
from reviews.reports import ReportFilter, compute_report
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.pushes import TOKEN, signed_query

REVIEWS = 1_000_000
RATE = 4.0  # pushes per second: well inside what the full path sustains (bench load)
PHASE_SECONDS = 30.0
NOW = START + 91 * DAY  # the generated reviews span the 90 days before


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on a free loopback port; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def reports_back_to_back(call: Callable[..., Coroutine[Any, Any, Any]], stop: asyncio.Event, took: list[float]) -> None:
    """The dashboard's report, one after the other until ``stop``, through ``call`` (runner.run or runner.read)."""
    flt = ReportFilter(START, START + 90 * DAY)
    while not stop.is_set():
        started = time.perf_counter()
        await call(compute_report, flt, response_sla=1800.0, resolution_sla=86400.0, now=NOW, service=conv_store.service_figures)
        took.append(time.perf_counter() - started)


def latency(label: str, step: Step, took: list[float]) -> str:
    ms = 1000 * np.asarray(step.latencies)
    line = (
        f"{label}: n={step.sent} p50={np.percentile(ms, 50):.0f}ms p99={np.percentile(ms, 99):.0f}ms max={ms.max():.0f}ms, "
        f"later than WeChat's {WECHAT_WINDOW:g} s: {step.missed}"
    )
    return line + (f"; {len(took)} reports, {np.mean(took):.2f} s each" if took else "")


async def run(ctx: BenchContext) -> list[str]:
    """Pushes with no report running, with reports on the writer (before), with reports on the read pool (after)."""
    path = Path(tempfile.mkdtemp(prefix="kefu-dashboard-")) / "kefu.db"
    started = time.perf_counter()
    generate(path, REVIEWS)
    built = time.perf_counter() - started

    fake = FakeWeChatAPI(now=time.time())
    delivered: dict[str, asyncio.Event] = {}

    @web.middleware
    async def note(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if request.path.endswith("/custom/send") and fake.sent:
            event = delivered.get(fake.sent[-1]["touser"])
            if event:
                event.set()
        return response

    fake_app = fake.app()
    fake_app.middlewares.append(note)
    fake_runner, api_base = await serve(fake_app)
    settings = server.Settings(
        db=str(path),
        wechat_token=TOKEN,
        wechat_appid=APPID,
        wechat_secret=SECRET,
        wechat_api_base=api_base,
        rasa_url=ctx.rasa.url,
        rasa_token=ctx.rasa.token,
        log_format="text",
    )
    encoder = open_encoder(settings.embed_model, settings.embed_variant, threads=settings.embed_threads)
    app_runner, base = await serve(server.make_app(settings, encoder=encoder))
    runner = app_runner.app[DASHBOARD].runner
    texts = shopper_texts()
    ids = itertools.count(40_000_000)
    lines = [
        f"dashboard: the full message path in-process on the demo shop with {REVIEWS:,} reviews (generated in {built:.0f} s); "
        f"pushes open loop at {RATE:g}/s for {PHASE_SECONDS:g} s a phase, each from a new shopper and timed until its reply "
        "is delivered, while the dashboard's 90-day report runs back to back"
    ]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def push(i: int) -> float | None:
                n = next(ids)
                openid = f"oDash{n}"
                delivered[openid] = asyncio.Event()
                started = time.perf_counter()
                try:
                    # No 5 s cut-off here: a late answer is timed, and counted as later than WeChat waits.
                    async with http.post(
                        base + "/wechat",
                        params=signed_query(int(time.time())),
                        data=push_xml(openid, texts[n % len(texts)], n).encode(),
                        timeout=aiohttp.ClientTimeout(total=120),
                    ) as resp:
                        answer = await resp.text()
                    if resp.status != 200:
                        return None
                    if answer == "success":  # the reply comes through the customer-service API
                        await asyncio.wait_for(delivered[openid].wait(), 120)
                except (TimeoutError, aiohttp.ClientError):
                    return None
                finally:
                    delivered.pop(openid, None)
                return time.perf_counter() - started

            async def phase(label: str, call: Callable[..., Coroutine[Any, Any, Any]] | None) -> float:
                stop, took = asyncio.Event(), []
                started = time.perf_counter()
                reporting = asyncio.create_task(reports_back_to_back(call, stop, took)) if call else None
                step = await open_loop(RATE, PHASE_SECONDS, push)  # returns once every reply is delivered
                stop.set()
                if reporting:
                    await reporting  # the report under way finishes before the next phase
                lines.append(latency(label, step, took) + f"; phase {time.perf_counter() - started:.0f} s")
                await asyncio.sleep(2.0)  # let the queues drain
                return float(np.percentile(step.latencies, 99))

            await open_loop(RATE, 5.0, push)  # warm-up: first-use costs are not load
            alone = []
            for call in (runner.run, runner.read):  # one report each way, nothing else running: the file in the page cache
                started = time.perf_counter()
                await call(compute_report, ReportFilter(START, START + 90 * DAY), now=NOW, service=conv_store.service_figures)
                alone.append(time.perf_counter() - started)
            lines.append(f"one report alone: {alone[0]:.2f} s on the writer, {alone[1]:.2f} s on a read connection")
            quiet = await phase("no report running           ", None)
            before = await phase("report on the writer (before)", runner.run)
            after = await phase("report on the read pool (now)", runner.read)
    finally:
        await app_runner.cleanup()
        await fake_runner.cleanup()
    lines.append(
        f"reply_p99_ms quiet={1000 * quiet:.0f} report_on_writer={1000 * before:.0f} report_on_read_pool={1000 * after:.0f}"
    )
    return lines
