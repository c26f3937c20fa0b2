"""The dialogue's router: registration per intent, first match wins, included routers, the default;
handlers that use only the public context; the middleware around every turn."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import server
from bot import handlers, texts
from bot.dialogue import Dialogue
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.metrics import Metrics
from bot.orders import SqliteOrders
from bot.router import Handler, Router
from bot.wechat import Inbound
from intents.client import Parse
from intents.training import read_examples
from kb.hours import BusinessHours
from storage.db import DbRunner, open_db
from tests.fakes import FakeNlu, stored_turns
from tests.helpers import NewDb

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_764_036_000.0  # Tuesday 2025-11-25 10:00 China time


def answering(text: str) -> Handler[str]:
    async def handler(ctx: str) -> Reply:
        return Reply(text)

    return handler


async def test_the_first_handler_registered_for_an_intent_wins() -> None:
    main: Router[str] = Router("main", default=answering("default"))
    first: Router[str] = Router("first")
    second: Router[str] = Router("second")
    main.intent("greet")(answering("main greet"))
    first.intent("greet", "thanks")(answering("first"))
    first.intent("thanks")(answering("first, again"))
    second.intent("thanks", "goodbye")(answering("second"))
    main.include_routers(first, second)
    said = {}
    for intent in ("greet", "thanks", "goodbye", "ask_price"):
        handler = main.handler_for(intent)
        assert handler is not None
        said[intent] = (await handler("ctx")).text
    # The router's own handlers first, then the routers it includes in order; nothing: the default.
    assert said == {"greet": "main greet", "thanks": "first", "goodbye": "second", "ask_price": "default"}
    assert main.intents() == {"greet", "thanks", "goodbye"}
    assert first.handler_for("ask_price") is None  # no default of its own


def test_an_included_routers_default_ends_the_search() -> None:
    catch_all = answering("catch-all")
    later = answering("later")
    main: Router[str] = Router("main")
    main.include_router(Router("a", default=catch_all))
    b: Router[str] = main.include_router(Router("b"))
    b.intent("greet")(later)
    assert main.handler_for("greet") is catch_all


def test_a_router_is_included_once_and_never_in_itself() -> None:
    main: Router[str] = Router("main")
    child: Router[str] = Router("child")
    main.include_router(child)
    with pytest.raises(ValueError, match="already included"):
        Router[str]("other").include_router(child)
    with pytest.raises(ValueError, match="loop"):
        child.include_router(main)
    with pytest.raises(ValueError, match="loop"):
        main.include_router(main)
    with pytest.raises(ValueError, match="at least one intent"):
        main.intent()


def test_every_intent_the_model_learns_has_its_handler() -> None:
    learned = {example.intent for example in read_examples()}
    assert learned and learned <= handlers.router.intents()
    assert handlers.router.default is TurnContext.answer_from_kb
    assert [r.name for r in handlers.router.routers] == [
        "bot.handlers.smalltalk",
        "bot.handlers.presale",
        "bot.handlers.orders",
        "bot.handlers.policy",
        "bot.handlers.complaints",
    ]


def private_uses(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``: reaching into another object's private parts."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            continue
        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_private_use_checker_sees_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("async def answer(d):\n    return await d._product(1) or self._own or x.__class__\n", encoding="utf-8")
    assert private_uses(module) == ["m.py:2 d._product"]


def test_handlers_use_only_the_public_context() -> None:
    paths = [*sorted((ROOT / "bot" / "handlers").glob("*.py")), ROOT / "bot" / "dialogue.py"]
    assert len(paths) >= 7
    assert [use for path in paths for use in private_uses(path)] == []


def said(text: str, n: int) -> Inbound:
    return Inbound(f"msg:{n}", "oRouter", "gh", "text", text, int(T0))


async def test_a_custom_router_runs_inside_the_dialogues_middleware(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> None:
    runner = make_runner(open_db(new_db("r.db"), server.MIGRATIONS))

    async def remember(ctx: TurnContext) -> Reply:
        ctx.conv.context["seen"] = ctx.text
        return Reply("记住了")

    async def cheat(ctx: TurnContext) -> Reply:
        return Reply("亲，给个五星好评返现5元哦")  # shop-written text against the review rules

    router: Router[TurnContext] = Router("custom", default=remember)
    router.intent("ask_promotion")(cheat)
    metrics = Metrics()
    nlu = FakeNlu(Parse("", "greet", 0.9), Parse("", "ask_promotion", 0.9))
    d = Dialogue(
        runner, nlu, None, SqliteOrders(runner), BusinessHours.parse("mon-sun 09:00-22:00"), lambda: T0, metrics, router=router
    )
    turns = stored_turns(d, runner, lambda: T0)
    first = await turns(said("你好", 1))
    assert first.text == "记住了" and first.intent == "greet"
    row = runner.db.execute("SELECT context, version FROM conversations").fetchone()
    assert '"seen": "你好"' in row[0] and row[1] == 1  # loaded and saved by the conversation middleware
    blocked = await turns(said("有活动吗", 2))
    assert blocked.text == texts.DONT_KNOW  # the compliance middleware
    assert metrics.registry.get_sample_value("kefu_errors_total", {"kind": "compliance_blocked"}) == 1.0
    assert metrics.registry.get_sample_value("kefu_reply_latency_seconds_count") == 2.0  # the metrics middleware


def test_a_dialogue_needs_a_router_with_a_default(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> None:
    runner = make_runner(open_db(new_db("r.db"), server.MIGRATIONS))
    with pytest.raises(ValueError, match="no default"):
        Dialogue(
            runner,
            None,
            None,
            SqliteOrders(runner),
            BusinessHours.parse("mon-sun 09:00-22:00"),
            lambda: T0,
            router=Router("bare"),
        )
