"""The agent console: login, the handoff queue, conversations, history, the FAQ editor, live updates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import WSMsgType, web

from bot import conversations as conv_store
from bot import handoff, texts
from bot.security import client_address, is_https, same_origin
from console import auth
from console import store as console_store
from console.live import LiveHub
from intents.evaluate import INTENTS
from kb import store as kb_store
from kb.compliance import ComplianceError, Violation, check_text
from kb.hours import CHINA
from kb.search import KnowledgeBase, refresh_if_changed
from storage.db import DbRunner
from storage.outbox import queue_notification

logger = logging.getLogger(__name__)

COOKIE = "kefu_session"
STATES = {"bot": "机器人接待", "queued": "等待人工", "agent": "人工接待中", "closed": "已结束"}
DELIVERY = {
    "inband": "已回复",
    "sent": "已送达",
    "pending": "发送中",
    "window_closed": "48小时窗口已关闭，未送达",
    "quota": "超出发送次数限制，未送达",
    "failed": "发送失败",
}
REASONS = {
    "asked_for_human": "顾客要求人工",
    "complaint": "投诉",
    "misunderstood": "机器人连续没理解",
    "nlu_unavailable": "意图服务不可用",
    "change_order": "修改订单",
    "cancel_order": "取消订单",
    "order_source_down": "订单系统不可用",
}
INTENT_NAMES = {**texts.INTENT_MEANINGS, "nlu_fallback": "没理解", "kb_match": "知识库匹配", "kb_only": "仅知识库"}
assert set(INTENTS) <= set(INTENT_NAMES)


@dataclass
class Console:
    """What the console views share."""

    runner: DbRunner
    kb: KnowledgeBase | None
    hub: LiveHub
    clock: Callable[[], float]
    wake_outbox: Callable[[], None]
    env: jinja2.Environment
    handoff_wait: float = 300.0
    notify_channels: tuple[str, ...] = ("console",)
    throttle: auth.LoginThrottle = field(default_factory=auth.LoginThrottle)
    # Argon2 checks take ~50 ms of CPU and 64 MiB each: on their own thread, never the database's.
    hashing: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="kefu-auth"))
    hashing_queue: int = 0  # checks waiting or running
    max_hashing_queue: int = 8

    def __post_init__(self) -> None:
        # The unknown-user hash is made before the first login, on the hashing thread, so that login is
        # no slower than any other.
        self.hashing.submit(auth.prepare)


CONSOLE = web.AppKey("console", Console)
USER = web.RequestKey("user", auth.User)


def template_env() -> jinja2.Environment:
    """Jinja templates with HTML autoescaping."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        enable_async=False,
    )


def shop_time(ts: float | None) -> str:
    """A Unix time as the shop reads it (China time)."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, CHINA).strftime("%m-%d %H:%M:%S")


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """Render a page with the signed-in user and helpers."""
    console = request.app[CONSOLE]
    page = console.env.get_template(name).render(
        user=request.get(USER),
        clock=shop_time,
        states=STATES,
        delivery=DELIVERY,
        reasons=REASONS,
        intents=INTENT_NAMES,
        flash=request.query.get("flash"),
        problem=request.query.get("problem"),
        **context,
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8", status=status)


def user_of(request: web.Request) -> auth.User:
    """The signed-in user (the middleware guarantees one on console pages)."""
    return request[USER]


def require_manager(request: web.Request) -> None:
    """Managers only."""
    if not user_of(request).is_manager:
        raise web.HTTPForbidden(text="需要主管权限", content_type="text/plain")


def _public(path: str) -> bool:
    return path in ("/console/login",) or path.startswith("/console/static/")


@web.middleware
async def console_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No console page without a session; every console POST carries the CSRF token."""
    if not request.path.startswith("/console") or _public(request.path):
        return await handler(request)
    console = request.app[CONSOLE]
    user = await console.runner.read(auth.session_user, request.cookies.get(COOKIE, ""), console.clock())
    if user is None:
        if request.path == "/console/ws" or request.method != "GET":
            raise web.HTTPUnauthorized(text="请先登录")
        raise web.HTTPFound("/console/login")
    request[USER] = user
    if request.method == "POST":
        form = await request.post()
        if not auth.csrf_ok(user, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="表单已过期，请刷新页面后重试（CSRF）")
    return await handler(request)


async def login_page(request: web.Request) -> web.Response:
    """The login form."""
    return render(request, "login.html")


LOCKED = "登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试，或请主管重设密码"


async def login_post(request: web.Request) -> web.StreamResponse:
    """Check the password (throttled per account and address); set the session cookie."""
    console = request.app[CONSOLE]
    # The login form has no session yet: refuse posts from other sites by their Origin.
    origin = request.headers.get("Origin")
    if origin and not same_origin(request, origin):
        raise web.HTTPForbidden(text="cross-site login refused")
    form = await request.post()
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:256]
    address = client_address(request)
    now = console.clock()
    locked = console.throttle.locked_until(username, address, now)
    if locked is not None:
        return _locked_page(request, locked - now)
    if console.hashing_queue >= console.max_hashing_queue:
        return render(request, "login.html", status=503, error="登录请求过多，请稍后再试")
    console.hashing_queue += 1  # taken before the first await, so a burst cannot all pass the check above
    try:
        stored = await console.runner.read(auth.password_hash, username)
        new_hash = await asyncio.get_running_loop().run_in_executor(console.hashing, auth.check_password, stored, password)
    except auth.AuthError as exc:
        return await _login_failed(request, console, username, address, str(exc))
    finally:
        console.hashing_queue -= 1
    console.throttle.succeeded(username)
    token = await console.runner.run(auth.open_session, username, new_hash, console.clock())
    response = web.HTTPFound("/console")
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
        max_age=int(auth.SESSION_SECONDS),
        path="/console",
    )
    raise response


def _locked_page(request: web.Request, seconds_left: float) -> web.Response:
    return render(request, "login.html", status=429, error=LOCKED.format(minutes=max(1, int((seconds_left + 59) // 60))))


async def _login_failed(request: web.Request, console: Console, username: str, address: str, error: str) -> web.Response:
    now = console.clock()
    logger.info("console login failed for %r from %s", username, address)
    for key in console.throttle.failed(username, address, now):
        what = f"账号 {username}" if key.startswith("user:") else f"地址 {address}"
        minutes = int(console.throttle.lockout // 60)
        logger.warning("console login locked for %d minutes: %s (account %r, address %s)", minutes, key, username, address)
        # Managers hear of it through their channels, as of any other alert.
        await console.runner.run(
            queue_notification,
            source=f"login-lock:{key}:{int(now)}",
            channels=list(console.notify_channels),
            title="控制台登录已锁定",
            body=f"{what} 登录失败次数过多，已锁定 {minutes} 分钟（最近一次来自 {address}）",
            payload={"account": username, "address": address},
            now=now,
        )
    locked = console.throttle.locked_until(username, address, now)
    if locked is not None:
        return _locked_page(request, locked - now)
    delay = console.throttle.delay(username, address, now)
    if delay:
        await asyncio.sleep(delay)  # only this attempt waits; nothing else is held up
    return render(request, "login.html", status=401, error=error)


async def logout_post(request: web.Request) -> web.StreamResponse:
    """End the session."""
    console = request.app[CONSOLE]
    await console.runner.run(auth.logout, request.cookies.get(COOKIE, ""))
    response = web.HTTPFound("/console/login")
    response.del_cookie(COOKIE, path="/console")
    raise response


def _waited(now: float) -> Callable[[dict[str, Any]], str]:
    def waited(row: dict[str, Any]) -> str:
        since = row.get("queued_at") or now
        minutes = int((now - since) // 60)
        return f"{minutes} 分钟" if minutes else "不到 1 分钟"

    return waited


async def queue_view(request: web.Request) -> web.Response:
    """Waiting shoppers (oldest first) and the agent's own conversations."""
    console = request.app[CONSOLE]
    rows = await console.runner.read(conv_store.queue, user_of(request).username)
    return render(request, "queue.html", rows=rows, waited=_waited(console.clock()))


def path_id(request: web.Request, missing: str) -> int:
    """The numeric ``{id}`` of the URL; 404 with ``missing`` when it is not a number."""
    raw = request.match_info["id"]
    # SQLite integers are 64-bit: a longer number can name no row (and would overflow the binding).
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text=missing)
    return int(raw)


def _conversation_id(request: web.Request) -> int:
    return path_id(request, "没有这个会话")


async def conversation_view(request: web.Request) -> web.Response:
    """The transcript with what the bot understood, and the agent's actions."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    conv = await console.runner.read(conv_store.conversation, conversation_id)
    if conv is None:
        raise web.HTTPNotFound(text="没有这个会话")
    transcript = await console.runner.read(conv_store.transcript, conversation_id)
    notes = await console.runner.read(console_store.notes_of, conversation_id)
    canned = await console.runner.read(console_store.canned_replies)
    window = await console.runner.read(conv_store.window_open, conv["openid"], console.clock())
    return render(
        request,
        "conversation.html",
        conv=conv,
        transcript=transcript,
        notes=notes,
        canned=canned,
        window_open=window,
        conversation_id=conversation_id,
        error=request.query.get("error"),
    )


def _back(conversation_id: int, flash: str = "", *, problem: bool = False) -> web.HTTPFound:
    query = f"?{'problem' if problem else 'flash'}={quote(flash)}" if flash else ""
    return web.HTTPFound(f"/console/c/{conversation_id}{query}")


async def claim_post(request: web.Request) -> web.StreamResponse:
    """Take a waiting conversation."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    try:
        await console.runner.run(handoff.claim, conversation_id, user_of(request).username, console.clock())
    except handoff.HandoffError as exc:
        raise _back(conversation_id, str(exc), problem=True) from None
    console.hub.publish({"type": "claimed", "conversation_id": conversation_id})
    raise _back(conversation_id, "已接入")


def _blocked(violations: list[Violation]) -> str:
    return "；".join(f"{v.explanation}（「{v.excerpt}」）" for v in violations)


async def reply_post(request: web.Request) -> web.StreamResponse:
    """Send the agent's reply through the customer-service API (compliance-checked where it is queued)."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    user = user_of(request)
    text = str((await request.post()).get("text", "")).strip()
    try:
        await console.runner.run(handoff.reply, conversation_id, user.username, text, console.clock())
    except handoff.HandoffError as exc:
        raise _back(conversation_id, str(exc), problem=True) from None
    except ComplianceError as exc:
        logger.warning("agent %s reply blocked by compliance: %s", user.username, [v.rule for v in exc.violations])
        raise _back(conversation_id, f"这条回复没有发送：{_blocked(exc.violations)}", problem=True) from None
    console.wake_outbox()
    console.hub.publish({"type": "message", "conversation_id": conversation_id})
    raise _back(conversation_id)


async def note_post(request: web.Request) -> web.StreamResponse:
    """Add an internal note."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    text = str((await request.post()).get("text", "")).strip()
    if text:
        await console.runner.run(console_store.add_note, conversation_id, user_of(request).username, text, console.clock())
    raise _back(conversation_id)


async def resolve_post(request: web.Request) -> web.StreamResponse:
    """Close the conversation as resolved by a person."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    try:
        await console.runner.run(handoff.resolve, conversation_id, user_of(request).username, console.clock())
    except handoff.HandoffError as exc:
        raise _back(conversation_id, str(exc), problem=True) from None
    console.hub.publish({"type": "queue", "conversation_id": conversation_id})
    raise web.HTTPFound("/console?flash=" + quote("会话已结束"))


async def handback_post(request: web.Request) -> web.StreamResponse:
    """Give the conversation back to the bot and tell the shopper."""
    console = request.app[CONSOLE]
    conversation_id = _conversation_id(request)
    try:
        await console.runner.run(handoff.hand_back, conversation_id, user_of(request).username, console.clock())
    except handoff.HandoffError as exc:
        raise _back(conversation_id, str(exc), problem=True) from None
    console.wake_outbox()
    console.hub.publish({"type": "queue", "conversation_id": conversation_id})
    raise web.HTTPFound("/console?flash=" + quote("已交还机器人"))


async def history_view(request: web.Request) -> web.Response:
    """Search past messages and replies."""
    console = request.app[CONSOLE]
    q = request.query.get("q", "").strip()
    rows = await console.runner.read(conv_store.search_history, q) if q else []
    return render(request, "history.html", rows=rows, q=q)


async def kb_view(request: web.Request) -> web.Response:
    """Search and edit FAQ entries."""
    console = request.app[CONSOLE]
    q = request.query.get("q", "").strip()
    faqs = await console.runner.read(kb_store.all_faq)
    scores: dict[str, float] = {}
    if q and console.kb is not None:
        kb = console.kb
        result = await asyncio.get_running_loop().run_in_executor(None, lambda: kb.search(q, top_k=10))
        scores = {h.ref: h.score for h in result.hits if h.kind == "faq"}
        faqs = [f for f in faqs if f.id in scores]
        faqs.sort(key=lambda f: -scores[f.id])
    shown = [{**f.__dict__, "score": scores.get(f.id)} for f in (faqs if q else faqs[:200])]
    return render(request, "kb.html", faqs=shown, q=q)


async def kb_save_post(request: web.Request) -> web.StreamResponse:
    """Save an FAQ entry and re-embed what changed."""
    console = request.app[CONSOLE]
    form = await request.post()
    faq_id = request.match_info["id"] if request.match_info["id"] != "new" else str(form.get("id", "")).strip()
    question, answer = str(form.get("question", "")).strip(), str(form.get("answer", "")).strip()
    sku = str(form.get("sku", "")).strip() or None
    if not faq_id or not question or not answer:
        raise web.HTTPFound("/console/kb?problem=" + quote("编号、问题和答案都不能为空"))
    # The importer's own rule, so `kefu kb export` then `import` takes back whatever is saved here.
    problem = kb_store.id_problem(faq_id)
    if problem:
        raise web.HTTPFound("/console/kb?problem=" + quote(f"编号只能由字母、数字、-、_、. 组成（1 到 64 个）：{problem}"))
    violations = check_text(answer)
    if violations:
        raise web.HTTPFound("/console/kb?problem=" + quote(f"答案没有保存：{violations[0].explanation}"))
    if sku and await console.runner.read(kb_store.get_product, sku) is None:
        raise web.HTTPFound("/console/kb?problem=" + quote(f"没有商品 {sku}"))
    alternatives = tuple(a.strip() for a in str(form.get("alt_questions", "")).split("|") if a.strip())
    await console.runner.run(kb_store.save_faq, kb_store.Faq(faq_id, question, answer, sku, alternatives))
    if console.kb is not None:
        await refresh_if_changed(console.kb, console.runner)
    raise web.HTTPFound(f"/console/kb?flash={quote(f'已保存 {faq_id} 并更新检索')}&q={quote(question)}")


async def ws_view(request: web.Request) -> web.WebSocketResponse:
    """The live-update socket of one console page."""
    console = request.app[CONSOLE]
    # Browsers send cookies with cross-site WebSocket handshakes: only our own pages may connect.
    if not same_origin(request, request.headers.get("Origin", "")):
        raise web.HTTPForbidden(text="WebSocket from another origin refused")
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    console.hub.sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        console.hub.sockets.discard(ws)
    return ws


async def escalate_unclaimed(console: Console) -> int:
    """Apologise to shoppers nobody claimed in time and tell the managers, once per conversation."""
    done = await console.runner.run(
        handoff.escalate_unclaimed, console.clock(), console.handoff_wait, list(console.notify_channels)
    )
    for conversation_id in done:
        console.hub.publish({"type": "escalated", "conversation_id": conversation_id})
    if done:
        console.wake_outbox()
    return len(done)


def add_console_routes(app: web.Application) -> None:
    """Register the console's routes and its auth middleware."""
    app.middlewares.append(console_auth)
    r = app.router
    r.add_get("/console/login", login_page)
    r.add_post("/console/login", login_post)
    r.add_post("/console/logout", logout_post)
    r.add_get("/console", queue_view)
    r.add_get("/console/c/{id}", conversation_view)
    r.add_post("/console/c/{id}/claim", claim_post)
    r.add_post("/console/c/{id}/reply", reply_post)
    r.add_post("/console/c/{id}/note", note_post)
    r.add_post("/console/c/{id}/resolve", resolve_post)
    r.add_post("/console/c/{id}/handback", handback_post)
    r.add_get("/console/history", history_view)
    r.add_get("/console/kb", kb_view)
    r.add_post("/console/kb/{id}", kb_save_post)
    r.add_get("/console/ws", ws_view)
    r.add_static("/console/static/", Path(__file__).parent / "static")
