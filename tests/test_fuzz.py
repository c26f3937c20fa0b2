"""Fuzzing the WeChat endpoint and the reviews API: no 500, no unhandled exception, still serving.

Hypothesis builds pushes from WeChat's own field names, nesting, entities, broken encodings and
arbitrary JSON, signed so that they reach the parser. Bounded by example counts, so CI stays quick.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import server
from reviews.sentiment import SentimentModel
from tests.fakes import APPID, SECRET, FakeEncoder
from tests.pushes import AES_KEY, TOKEN, encrypt_xml, fixture, signed_query
from tests.test_bot_hardening import quick

# The app runs in its own thread while Hypothesis draws the next example, and psycopg_pool (on
# PostgreSQL) draws its reconnection jitter from the global `random` module: Hypothesis takes that for
# a strategy using `random` and warns, which the suite turns into a failure. The strategies here do not.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)

FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event", "Recognition", "PagePath"]
ALLOWED = {200, 400, 403, 404, 405, 413}


class ServedApp:
    """The kefu app on a loopback port, in its own thread and event loop (Hypothesis tests are sync)."""

    def __init__(self, db: str, folder: Path) -> None:
        # A small sentiment model on the test encoder, so that fuzzed reviews are judged and stored too.
        model = folder / "sentiment.npz"
        SentimentModel.train(
            FakeEncoder(), ["很好用，物流快", "质量太差了，退货", "包装好，喜欢", "坏了，客服不理人"] * 5, [1, 0, 1, 0] * 5
        ).save(model)
        self.settings = server.Settings(
            sentiment_model=str(model),
            db=db,
            wechat_token=TOKEN,
            wechat_appid=APPID,
            wechat_secret=SECRET,
            wechat_aes_key=AES_KEY,
            wechat_mode="compat",
            wechat_api_base="http://127.0.0.1:9",
            reviews_token="fuzz-token",
            log_format="text",
        )
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(server.make_app(self.settings, responder=quick, encoder=FakeEncoder()))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> ServedApp:
        self._thread.start()
        assert self._ready.wait(30), "app did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, module_db: Callable[[str], str]) -> Iterator[ServedApp]:
    with ServedApp(module_db("kefu.db"), tmp_path_factory.mktemp("fuzz")) as served:
        yield served


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """ERROR records logged by the app while the test ran (from its thread too)."""
    with caplog.at_level(logging.ERROR):
        yield caplog.records


def wechat_path(query: dict[str, str]) -> str:
    return "/wechat?" + "&".join(f"{k}={v}" for k, v in query.items())


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
tags = st.sampled_from([*FIELDS, "xml", "a", "item", "ScanCodeInfo"])


@st.composite
def xml_like(draw: st.DrawFn) -> str:
    """XML-ish text: WeChat's fields, random nesting and the constructs an attacker tries."""

    def element(depth: int) -> str:
        tag = draw(tags)
        if depth > 0 and draw(st.booleans()):
            inner = "".join(element(depth - 1) for _ in range(draw(st.integers(0, 3))))
        else:
            inner = draw(st.one_of(text, text.map(lambda t: f"<![CDATA[{t}]]>"), st.just("&e;"), st.just("]]>")))
        closing = draw(st.sampled_from([f"</{tag}>", "", f"</{tag}x>"])) if draw(st.integers(0, 9)) == 0 else f"</{tag}>"
        return f"<{tag}>{inner}{closing}"

    prolog = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<!DOCTYPE xml [<!ENTITY e "x">]>', "<!-- c -->"]))
    nest = draw(st.integers(0, 30))
    return prolog + "<xml>" + "<a>" * nest + element(draw(st.integers(0, 4))) + "</a>" * nest + "</xml>"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | text, children, max_size=5),
    max_leaves=30,
)
raw_bytes = st.binary(max_size=300)
any_text = st.text(max_size=20)  # lone surrogates included: json.dumps writes them as \\ud800
json_values = json_values | st.dictionaries(st.sampled_from(FIELDS), any_text, max_size=5)
deep_json = st.integers(1, 5000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode())
deep_xml = st.integers(1, 5000).map(lambda n: ("<xml>" + "<a>" * n + "</a>" * n + "</xml>").encode())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(xml_like().map(str.encode), json_values.map(lambda v: json.dumps(v).encode()), raw_bytes, deep_json, deep_xml),
    encrypted=st.booleans(),
)
def test_fuzz_wechat_endpoint(app: ServedApp, errors: list[logging.LogRecord], body: bytes, encrypted: bool) -> None:
    now = int(time.time())
    if encrypted:
        wrapped, query = encrypt_xml(body.decode("utf-8", "replace"), now)
        status, answer = app.post(wechat_path(query), wrapped.encode())
    else:
        status, answer = app.post(wechat_path(signed_query(now)), body)
    assert status in ALLOWED, (status, answer, body[:200])
    assert not [r for r in errors if r.name != "hypothesis"], [r.getMessage() for r in errors]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()), raw_bytes, st.lists(json_values).map(lambda v: json.dumps(v).encode())
    )
)
def test_fuzz_reviews_api(app: ServedApp, errors: list[logging.LogRecord], body: bytes) -> None:
    status, answer = app.post("/api/reviews", body, {"Authorization": "Bearer fuzz-token", "Content-Type": "application/json"})
    assert status in ALLOWED, (status, answer, body[:200])
    assert not [r for r in errors if r.name != "hypothesis"], [r.getMessage() for r in errors]


def test_still_serving_after_the_fuzz(app: ServedApp) -> None:
    body = fixture("text.xml", FromUserName="oAfterFuzz", MsgId="424242", Content="还在吗")
    status, answer = app.post(wechat_path(signed_query(int(time.time()))), body.encode())
    assert status == 200
    assert "答复:还在吗" in answer
