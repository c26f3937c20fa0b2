"""The NLU inbox: agents confirm or correct the intent of messages the bot was unsure about.

Each verdict is stored in the shop's database; ``kefu train`` learns from them.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from bot import conversations as conv_store
from bot import texts
from console.app import CONSOLE, path_id, render, user_of
from intents import corrections
from intents.evaluate import INTENTS


async def inbox_view(request: web.Request) -> web.Response:
    """Messages to review, with the model's guess, and the latest verdicts."""
    console = request.app[CONSOLE]
    rows = await console.runner.read(conv_store.nlu_inbox)
    done = await console.runner.read(conv_store.recent_corrections)
    return render(request, "nlu.html", rows=rows, done=done, choices=INTENTS)


async def verdict_post(request: web.Request) -> web.StreamResponse:
    """Store the agent's intent for one message (a confirmation or a correction)."""
    console = request.app[CONSOLE]
    message_id = path_id(request, "没有这条消息")
    intent = str((await request.post()).get("intent", "")).strip()
    message = await console.runner.run(conv_store.inbox_message, message_id)
    if message is None:
        raise web.HTTPNotFound(text="没有这条消息")
    try:
        await console.runner.run(
            corrections.record_correction,
            message_id=message_id,
            text=message["text"] or "",
            intent=intent,
            predicted=message["nlu_intent"],
            agent=user_of(request).username,
            now=console.clock(),
        )
    except corrections.CorrectionError as exc:
        raise web.HTTPFound("/console/nlu?problem=" + quote(f"没有保存：{exc}")) from None
    verdict = "已确认" if intent == message["nlu_intent"] else "已改正为"
    meaning = texts.INTENT_MEANINGS.get(intent, intent)
    raise web.HTTPFound("/console/nlu?flash=" + quote(f"{verdict}「{meaning}」（{intent}），下次 kefu train 时学习"))


def add_inbox_routes(app: web.Application) -> None:
    """Register the inbox pages (behind the console's login and CSRF middleware)."""
    app.router.add_get("/console/nlu", inbox_view)
    app.router.add_post("/console/nlu/{id}", verdict_post)
