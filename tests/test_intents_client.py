"""The Rasa client against a small fake at the HTTP seam, the report maths, and the real service."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from intents.client import NluUnavailableError, RasaClient, parse_from_json
from intents.evaluate import IntentReport, format_report
from intents.service import RasaService
from intents.training import default_cache, default_rasa_venv, model_path

PARSE = {
    "text": "订单KF202611100000到哪了",
    "intent": {"name": "order_status", "confidence": 0.97},
    "entities": [
        {"entity": "order_id", "start": 2, "end": 16, "value": "KF202611100000", "extractor": "RegexEntityExtractor"},
        {"entity": "order_id", "start": 2, "end": 16, "value": "KF202611100000", "extractor": "DIETClassifier"},
    ],
    "intent_ranking": [{"name": "order_status", "confidence": 0.97}, {"name": "ask_shipping", "confidence": 0.02}],
}


def fake_rasa(name: str, hits: list[str], *, status: int = 200, delay: float = 0.0) -> web.Application:
    async def parse(request: web.Request) -> web.Response:
        hits.append(name)
        assert request.query.get("token") == "tok"
        if delay:
            await asyncio.sleep(delay)
        if status != 200:
            return web.Response(status=status)
        return web.json_response({**PARSE, "text": (await request.json())["text"]})

    app = web.Application()
    app.router.add_post("/model/parse", parse)
    return app


def test_parse_keeps_one_entity_per_span_and_the_ranking() -> None:
    parse = parse_from_json(PARSE)
    assert parse.intent == "order_status" and parse.confidence == pytest.approx(0.97)
    assert parse.entity("order_id") == "KF202611100000"
    assert len(parse.entities) == 1
    assert parse.ranking[1] == ("ask_shipping", 0.02)


async def test_round_robin_and_failover(aiohttp_server: Callable[..., Any]) -> None:
    hits: list[str] = []
    a = await aiohttp_server(fake_rasa("a", hits))
    b = await aiohttp_server(fake_rasa("b", hits, status=500))
    async with aiohttp.ClientSession() as session:
        client = RasaClient(session, [str(a.make_url("")), str(b.make_url(""))], "tok")
        for _ in range(4):
            assert (await client.parse("在吗")).intent == "order_status"
    # every other call starts at the broken server and fails over to the good one
    assert hits.count("a") == 4 and hits.count("b") == 2


async def test_slow_server_times_out(aiohttp_server: Callable[..., Any]) -> None:
    hits: list[str] = []
    slow = await aiohttp_server(fake_rasa("slow", hits, delay=1.0))
    async with aiohttp.ClientSession() as session:
        client = RasaClient(session, [str(slow.make_url(""))], "tok", timeout=0.2)
        with pytest.raises(NluUnavailableError):
            await client.parse("在吗")


def test_report_maths() -> None:
    report = IntentReport((("greet", "greet"), ("greet", "thanks"), ("thanks", "thanks"), ("ask_price", "ask_price")))
    assert report.accuracy == 0.75
    precision, recall, f1, support = report.per_intent()["thanks"]
    assert (precision, recall, support) == (0.5, 1.0, 1)
    assert f1 == pytest.approx(2 / 3)
    assert report.confusions() == [(("greet", "thanks"), 1)]
    assert format_report(report).splitlines()[-1] == f"accuracy=0.750 macro_f1={report.macro_f1:.3f} n=4"


@pytest.mark.rasa
async def test_service_starts_answers_and_restarts_after_a_crash(tmp_path: Path) -> None:
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    service = RasaService(default_rasa_venv(cache), model_path(cache), log_path=tmp_path / "rasa.log")
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = RasaClient(session, [service.url], service.token, timeout=10)
            assert (await client.parse("西湖龙井多少钱")).intent == "ask_price"
            async with session.post(service.url + "/model/parse", json={"text": "hi"}) as resp:
                assert resp.status == 401  # the API refuses callers without the token
            assert service.process is not None
            os.killpg(service.process.pid, signal.SIGKILL)
            for _ in range(1500):  # Rasa takes 15-60 s to start, longer on a busy machine
                if service.restarts == 1:
                    break
                await asyncio.sleep(0.2)
            assert service.restarts == 1
            assert (await client.parse("谢谢")).intent == "thanks"
    finally:
        await service.stop()
    assert service.process is not None and service.process.returncode is not None
