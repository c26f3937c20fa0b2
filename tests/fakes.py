"""A local fake of the WeChat API servers, following their documented answers.

https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APPID = "wx0000000000000000"
SECRET = "test-secret"


@dataclass
class FakeWeChatAPI:
    """Token, custom/send and custom/typing, with switches for the documented errcodes."""

    now: float = 0.0
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    token_fetches: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    typing: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    closed_windows: set[str] = field(default_factory=set)
    quota_exceeded: bool = False
    server_errors: int = 0  # answer this many calls with HTTP 500
    calls: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token_view)
        app.router.add_post("/cgi-bin/message/custom/send", self.send_view)
        app.router.add_post("/cgi-bin/message/custom/typing", self.typing_view)
        app.router.add_post("/cgi-bin/message/template/send", self.template_view)
        return app

    def expire_all_tokens(self) -> None:
        self.tokens = {t: 0.0 for t in self.tokens}

    async def token_view(self, request: web.Request) -> web.Response:
        self.calls.append("token")
        if request.query.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if request.query.get("appid") != APPID:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if request.query.get("secret") != SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.token_fetches += 1
        token = f"TOKEN{next(self._counter)}"
        # A new token leaves older ones valid for about five more minutes.
        self.tokens = {t: min(exp, self.now + 300) for t, exp in self.tokens.items()}
        self.tokens[token] = self.now + 7200
        return web.json_response({"access_token": token, "expires_in": 7200})

    def _check_token(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        if self.tokens[token] <= self.now:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    async def send_view(self, request: web.Request) -> web.Response:
        self.calls.append("send")
        if self.server_errors > 0:
            self.server_errors -= 1
            return web.Response(status=500, text="system busy")
        error = self._check_token(request)
        if error:
            return error
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        if body.get("msgtype") != "text" or not body.get("touser") or not body.get("text", {}).get("content"):
            return web.json_response({"errcode": 44002, "errmsg": "empty post data"})
        if body["touser"] in self.closed_windows:
            return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
        if self.quota_exceeded:
            return web.json_response({"errcode": 45047, "errmsg": "out of response count limit"})
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def template_view(self, request: web.Request) -> web.Response:
        self.calls.append("template")
        error = self._check_token(request)
        if error:
            return error
        body = await request.json()
        if not body.get("touser") or not body.get("template_id"):
            return web.json_response({"errcode": 40037, "errmsg": "invalid template_id"})
        self.templates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.templates)})

    async def typing_view(self, request: web.Request) -> web.Response:
        self.calls.append("typing")
        error = self._check_token(request)
        if error:
            return error
        body = await request.json()
        if body.get("command") not in ("Typing", "CancelTyping"):
            return web.json_response({"errcode": 40001, "errmsg": "invalid command"})
        self.typing.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


class FakeEncoder:
    """Character-bigram hashing vectors: a fast stand-in for unit tests that need no semantics."""

    name = "fake-bigram-hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> Any:
        import zlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            grams = [text[j : j + 2] for j in range(max(1, len(text) - 1))]
            for gram in grams:
                out[i, zlib.crc32(gram.encode()) % self.dim] += 1.0
            norm = float(np.linalg.norm(out[i])) or 1.0
            out[i] /= norm
        return out


class FakeNlu:
    """Answers with fixed parses, in turn."""

    def __init__(self, *parses: Any) -> None:
        self.parses = list(parses)

    async def parse(self, text: str) -> Any:
        return self.parses.pop(0)


def stored_turns(responder: Any, runner: Any, clock: Any) -> Any:
    """Drive a responder as kefu does, minus WeChat: each message is stored, answered, and the answer
    stored with the turn's conversation changes (Dispatcher.handle_local)."""
    from bot.dispatch import Dispatcher
    from bot.metrics import Metrics

    return Dispatcher(runner, responder, Metrics(), clock).handle_local
