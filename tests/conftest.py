"""Shared fixtures: settings on a temporary database, the fake WeChat API, a test clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import server
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.pushes import AES_KEY, TOKEN

START = 1_764_000_000.0


class Clock:
    """A clock tests move by hand; the app takes it as a parameter."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake_wechat(aiohttp_server: Callable[..., Any], clock: Clock) -> tuple[FakeWeChatAPI, TestServer]:
    fake = FakeWeChatAPI(now=clock.now)
    srv = await aiohttp_server(fake.app())
    return fake, srv


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., server.Settings]:
    def build(**overrides: Any) -> server.Settings:
        values: dict[str, Any] = {
            "db": str(tmp_path / "kefu.db"),
            "wechat_token": TOKEN,
            "wechat_appid": APPID,
            "wechat_secret": SECRET,
            "wechat_aes_key": AES_KEY,
            "wechat_api_base": "http://127.0.0.1:9",  # nothing listens: tests that send pass the fake
            "log_format": "text",
        }
        values.update(overrides)
        return server.Settings(**values)

    return build


@pytest.fixture
async def wechat_client(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., server.Settings], clock: Clock, fake_wechat: tuple[FakeWeChatAPI, TestServer]
) -> Callable[..., Any]:
    """An app wired to the fake WeChat API; pass a responder and settings overrides."""

    async def build(responder: Any = None, **overrides: Any) -> TestClient:
        _, srv = fake_wechat
        settings = make_settings(wechat_api_base=str(srv.make_url("")).rstrip("/"), **overrides)
        return await aiohttp_client(server.make_app(settings, responder=responder, clock=clock))  # type: ignore[no-any-return]

    return build


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for a ``kefu serve`` subprocess (the NLU and models, once they exist)."""
    return {}
