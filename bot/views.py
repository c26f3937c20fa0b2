"""HTTP views of the shopper side: the WeChat endpoint, health and metrics."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.dispatch import Dispatcher, NotStored
from bot.metrics import Metrics
from bot.security import bearer_ok, client_address, is_loopback
from bot.wechat import NonceMemory, WeChatConfig, WeChatRequestError, decode_body, render_reply, to_inbound, verify_request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """The shared services every view needs."""

    wechat: WeChatConfig
    dispatcher: Dispatcher
    metrics: Metrics
    clock: Callable[[], float]
    metrics_token: str = ""
    nonces: NonceMemory = field(default_factory=NonceMemory)


RUNTIME = web.AppKey("runtime", Runtime)


async def wechat_view(request: web.Request) -> web.StreamResponse:
    """WeChat's push URL: GET verifies the server, POST delivers a message."""
    rt = request.app[RUNTIME]
    arrived = rt.clock()  # WeChat's 5 seconds run from here, however long storing takes
    query = dict(request.query)
    try:
        verify_request(rt.wechat, query, rt.clock())
        if request.method == "GET":
            return web.Response(text=query.get("echostr", ""))
        body = await request.read()
        rt.nonces.check(query, body, rt.clock())
        envelope = decode_body(rt.wechat, query, body)
        inbound = to_inbound(envelope.message)
    except WeChatRequestError as exc:
        rt.metrics.errors.labels(kind=f"http_{exc.status}").inc()
        logger.warning("rejected WeChat push from %s: %s", request.remote, exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    try:
        text = await rt.dispatcher.handle(inbound, arrived)
    except NotStored:
        logger.exception("could not store %s: WeChat will retry", inbound.dedup_key)
        return web.Response(status=503, text="message not stored, please retry")
    except Exception:  # stored, so recovery answers it through the outbox; WeChat must not retry
        logger.exception("failed to handle %s", inbound.dedup_key)
        rt.metrics.errors.labels(kind="endpoint").inc()
        return web.Response(text="success")
    if text is None:
        return web.Response(text="success")
    body_text, content_type = render_reply(rt.wechat, envelope, inbound, text, nonce=secrets.token_hex(8), now=int(rt.clock()))
    return web.Response(text=body_text, content_type=content_type)


async def healthz_view(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text format: for the token's holder, or (without a token set) loopback clients only."""
    rt = request.app[RUNTIME]
    if rt.metrics_token:
        if not bearer_ok(request, rt.metrics_token):
            raise web.HTTPUnauthorized(text="metrics need the bearer token (KEFU_METRICS_TOKEN)")
    elif not is_loopback(client_address(request)):
        raise web.HTTPForbidden(text="metrics answer loopback clients only (or set KEFU_METRICS_TOKEN)")
    return web.Response(body=rt.metrics.render(), content_type="text/plain", charset="utf-8")


def add_routes(app: web.Application) -> None:
    """Register the shopper-side routes."""
    app.router.add_route("GET", "/wechat", wechat_view)
    app.router.add_route("POST", "/wechat", wechat_view)
    app.router.add_get("/healthz", healthz_view)
    app.router.add_get("/metrics", metrics_view)
