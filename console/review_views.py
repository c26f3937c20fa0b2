"""Reviews on the web: the ingest API and the console's negative-review case pages."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot import conversations as conv_store
from bot.bodies import BadBody, load_json
from bot.security import bearer_ok
from console.app import CONSOLE, path_id, render, user_of
from console.cases import reply_to_case
from kb.compliance import ComplianceError
from reviews import store as review_store
from reviews import workflow
from reviews.ingest import MAX_BATCH, ReviewBatchError, judge_reviews, prepare, rows_from_json, store_reviews
from reviews.sentiment import SentimentModel
from reviews.workflow import CaseError, SlaPolicy
from storage.db import DbRunner

logger = logging.getLogger(__name__)

JSON_DEPTH = 6  # a batch is a list (or {"reviews": [...]}) of flat objects

CASE_STATES = {"open": "待响应", "responded": "已响应", "resolved": "已解决", "closed": "已关闭"}
OUTCOME_NAMES = {
    "refund": "退款",
    "replacement": "补发/换货",
    "coupon": "发放优惠券",
    "explanation": "解释说明",
    "no_action": "不处理",
}
SENTIMENTS = {"positive": "正面", "neutral": "中性", "negative": "负面"}
POLARITIES = {"positive": "好评", "neutral": "提及", "negative": "差评"}
EVENTS = {
    "opened": "建单",
    "responded": "已响应",
    "resolved": "已解决",
    "closed": "已关闭",
    "remind_response": "提醒：即将超过30分钟",
    "breach_response": "超过30分钟未响应，已升级",
    "remind_resolution": "提醒：即将超过24小时",
    "breach_resolution": "超过24小时未解决，已升级",
}


@dataclass
class Reviews:
    """What the review views share."""

    runner: DbRunner
    model: SentimentModel | None
    policy: SlaPolicy
    api_token: str
    clock: Callable[[], float]
    wake_outbox: Callable[[], None]


REVIEWS = web.AppKey("reviews", Reviews)
SENTIMENT_RETRY_AFTER = 60  # seconds a sender waits while the first run trains the sentiment model


async def ingest_batch(reviews: Reviews, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Validate, tag, store; the answer lists what was added and which rows were refused."""
    good, problems = prepare(rows)
    if reviews.model is None:
        # Nothing was stored: the sender keeps the batch and sends it again.
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "the sentiment model is not ready yet (the first run trains it); retry later"}),
            content_type="application/json",
            headers={"Retry-After": str(SENTIMENT_RETRY_AFTER)},
        )
    model = reviews.model
    judgements = await asyncio.get_running_loop().run_in_executor(None, judge_reviews, model, good)
    result = await reviews.runner.run(store_reviews, good, judgements, reviews.clock(), reviews.policy, problems)
    return result.as_json()


async def reviews_api(request: web.Request) -> web.Response:
    """POST /api/reviews: a JSON batch of up to 500 reviews, bearer token."""
    reviews = request.app[REVIEWS]
    if not bearer_ok(request, reviews.api_token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    try:
        data = load_json(await request.read(), JSON_DEPTH)
        rows = rows_from_json(data)
    except BadBody as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except ReviewBatchError as exc:
        status = 413 if "at most" in str(exc) else 400
        return web.json_response({"error": str(exc), "max_batch": MAX_BATCH}, status=status)
    answer = await ingest_batch(reviews, rows)
    return web.json_response(answer, status=200)


async def cases_view(request: web.Request) -> web.Response:
    """Cases filtered by state and overdue."""
    reviews = request.app[REVIEWS]
    state = request.query.get("state") or None
    if state and state not in CASE_STATES:
        state = None
    overdue = request.query.get("overdue") == "1"
    now = reviews.clock()
    rows = await reviews.runner.read(review_store.list_cases, state=state, now=now, only_overdue=overdue)
    return render(
        request,
        "cases.html",
        rows=rows,
        state=state,
        overdue=overdue,
        case_states=CASE_STATES,
    )


def _case_id(request: web.Request) -> int:
    return path_id(request, "没有这个工单")


async def case_view(request: web.Request) -> web.Response:
    """One case: the review, its tags, its timeline and the actions."""
    reviews = request.app[REVIEWS]
    case_id = _case_id(request)
    case = await reviews.runner.read(review_store.get_case, case_id)
    if case is None:
        raise web.HTTPNotFound(text="没有这个工单")
    aspects = await reviews.runner.read(review_store.review_aspects, case["review_id"])
    timeline = await reviews.runner.read(review_store.case_timeline, case_id)
    window = bool(case["openid"]) and await reviews.runner.read(conv_store.window_open, case["openid"], reviews.clock())
    return render(
        request,
        "case.html",
        case=case,
        aspects=aspects,
        timeline=timeline,
        window_open=window,
        case_states=CASE_STATES,
        outcomes=OUTCOME_NAMES,
        sentiments=SENTIMENTS,
        polarities=POLARITIES,
        events=EVENTS,
    )


def _back(case_id: int, flash: str, *, problem: bool = False) -> web.HTTPFound:
    return web.HTTPFound(f"/console/cases/{case_id}?{'problem' if problem else 'flash'}={quote(flash)}")


async def case_action(request: web.Request) -> web.StreamResponse:
    """respond (WeChat message), note (responded another way), resolve, close."""
    reviews = request.app[REVIEWS]
    case_id = _case_id(request)
    action = request.match_info["action"]
    user = user_of(request)
    form = await request.post()
    text = str(form.get("text", "") or form.get("note", "")).strip()
    now = reviews.clock()
    try:
        if action == "respond":
            if await reviews.runner.read(review_store.get_case, case_id) is None:
                raise web.HTTPNotFound(text="没有这个工单")
            await reviews.runner.run(reply_to_case, case_id, user.username, text, now)
            reviews.wake_outbox()
        elif action == "note":
            await reviews.runner.run(workflow.record_response, case_id, now, user.username, text)
        elif action == "resolve":
            await reviews.runner.run(
                workflow.resolve_case,
                case_id,
                now,
                user.username,
                str(form.get("outcome", "")),
                str(form.get("note", "")),
            )
        elif action == "close":
            await reviews.runner.run(workflow.close_case, case_id, now, user.username, text)
        else:
            raise web.HTTPNotFound(text="没有这个操作")
    except CaseError as exc:
        raise _back(case_id, str(exc), problem=True) from None
    except ComplianceError as exc:
        violation = exc.violations[0]
        logger.warning("case %s reply by %s blocked: %s", case_id, user.username, [v.rule for v in exc.violations])
        raise _back(case_id, f"没有发送：{violation.explanation}（「{violation.excerpt}」）", problem=True) from None
    request.app[CONSOLE].hub.publish({"type": "case", "case_id": case_id})
    raise _back(case_id, "已保存")


def add_review_routes(app: web.Application) -> None:
    """Register the review API and the case pages."""
    app.router.add_post("/api/reviews", reviews_api)
    app.router.add_get("/console/cases", cases_view)
    app.router.add_get("/console/cases/{id}", case_view)
    app.router.add_post("/console/cases/{id}/{action}", case_action)
