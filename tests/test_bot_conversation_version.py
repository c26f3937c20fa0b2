"""The conversation is saved with a version: two messages of one shopper answered at once lose no update."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import server
from bot import conversations as conv_store
from bot import texts
from bot.conversations import ConversationChangedError
from bot.dialogue import Dialogue
from bot.dispatch import Dispatcher, Reply
from bot.metrics import Metrics
from bot.orders import SqliteOrders
from bot.wechat import Inbound
from intents.client import Parse
from kb.hours import BusinessHours
from storage.db import DbRunner, open_db
from tests.fakes import FakeEncoder, FakeNlu
from tests.helpers import NewDb, OpenShop

T0 = 1_764_036_000.0  # Tuesday 2025-11-25 10:00 China time
HOURS = BusinessHours.parse("mon-sun 09:00-22:00")


class HeldNlu:
    """Parses by text; each text's first parse waits until every text has been asked once and every turn
    has read its conversation (the intent model is asked before the conversation is read, so waiting for
    the asks alone left the reads racing the first store), so all the turns have read their conversation
    before any of them is stored. Later parses (re-runs) answer at once. Call ``start`` just before the
    turns: a turn's read can finish before its own parse has begun."""

    def __init__(self, parses: dict[str, Parse], monkeypatch: pytest.MonkeyPatch) -> None:
        self.parses = parses
        self.asked: list[str] = []
        self.everyone_asked = asyncio.Event()
        self.reads = 0  # conversations read, counted on the database threads
        self.reads_before: int | None = None
        self.everyone_read = asyncio.Event()
        loop = asyncio.get_running_loop()
        read = conv_store.current_conversation

        def counted(*args: object, **kwargs: object) -> object:
            conversation = read(*args, **kwargs)  # type: ignore[arg-type]
            self.reads += 1
            loop.call_soon_threadsafe(self._check_reads)
            return conversation

        monkeypatch.setattr(conv_store, "current_conversation", counted)

    def start(self) -> None:
        """The turns held start now: what was read before (an earlier greeting) does not count."""
        self.reads_before = self.reads

    def _check_reads(self) -> None:
        if self.reads_before is not None and self.reads - self.reads_before >= len(self.parses):
            self.everyone_read.set()

    async def parse(self, text: str) -> Parse:
        first = text not in self.asked
        self.asked.append(text)
        if len(self.asked) >= len(self.parses):
            self.everyone_asked.set()
        async with asyncio.timeout(30):  # a hold that never ends fails the test instead of hanging the run
            await self.everyone_asked.wait()
            if first:
                await self.everyone_read.wait()
        return self.parses[text]


def said(openid: str, text: str, n: int) -> Inbound:
    return Inbound(f"msg:{openid}:{n}", openid, "gh", "text", text, int(T0))


def conversations(runner: DbRunner) -> list[dict[str, object]]:
    return list(
        runner.db.query("SELECT id, openid, state, context, misunderstandings, handoff_reason, version FROM conversations")
    )


def answers(runner: DbRunner, openid: str) -> list[tuple[str, int]]:
    """Each of the shopper's messages with how many bot replies it got."""
    return list(
        runner.db.execute(
            "SELECT m.state, (SELECT count(*) FROM outbound o WHERE o.message_id = m.id) FROM messages m "
            "WHERE openid = ? ORDER BY id",
            [openid],
        ).fetchall()
    )


def reruns(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("kefu_errors_total", {"kind": "turn_rerun"}) or 0.0


def test_a_save_on_a_version_another_turn_saved_is_refused(new_db: NewDb) -> None:
    db = open_db(new_db("v.db"), server.MIGRATIONS)
    first = conv_store.current_conversation(db, "oV", T0)
    second = conv_store.current_conversation(db, "oV", T0)
    first.context["sku"] = "A"
    conv_id = conv_store.store_conversation(db, first, T0)
    assert conv_id > 0 and first.version == 1
    second.context["order_id"] = "1"
    with pytest.raises(ConversationChangedError):  # a new conversation: another turn opened it meanwhile
        conv_store.store_conversation(db, second, T0)
    third, fourth = (conv_store.current_conversation(db, "oV", T0 + 1) for _ in range(2))
    assert third.version == fourth.version == 1 and third.context == {"sku": "A"}
    third.misunderstandings = 1
    conv_store.store_conversation(db, third, T0 + 1)
    with pytest.raises(ConversationChangedError):  # a stored one: saved by another turn since it was read
        conv_store.store_conversation(db, fourth, T0 + 1)
    row = db.execute("SELECT context, misunderstandings, version FROM conversations").fetchall()
    assert row == [('{"sku": "A"}', 1, 2)]
    db.close()


@pytest.mark.parametrize("known", [False, True], ids=["new shopper", "known shopper"])
async def test_two_messages_at_once_both_change_the_conversation(
    open_shop: OpenShop, known: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())  # a real SQLite file in WAL mode, or PostgreSQL
    metrics = Metrics()
    price, order = "R5扫地机器人多少钱", "AP2026111509002到哪了"
    nlu = HeldNlu({price: Parse(price, "ask_price", 0.9), order: Parse(order, "order_status", 0.9)}, monkeypatch)
    dialogue = Dialogue(runner, nlu, kb, SqliteOrders(runner), HOURS, lambda: T0, metrics)
    dispatcher = Dispatcher(runner, dialogue, metrics, lambda: T0)
    if known:  # the shopper's conversation is stored already, at version 1
        greeter = Dialogue(runner, FakeNlu(Parse("你好", "greet", 0.9)), kb, SqliteOrders(runner), HOURS, lambda: T0)
        await Dispatcher(runner, greeter, Metrics(), lambda: T0).handle_local(said("oApp001", "你好", 0))

    nlu.start()
    replies = await asyncio.gather(
        dispatcher.handle_local(said("oApp001", price, 1)), dispatcher.handle_local(said("oApp001", order, 2))
    )

    assert replies[0].text is not None and "1599" in replies[0].text
    assert replies[1].text is not None and "75318826410057" in replies[1].text
    [conv] = conversations(runner)
    # Both turns' changes survive: the product talked about and the order being discussed.
    assert '"sku": "APP-016"' in str(conv["context"]) and '"order_id": "AP2026111509002"' in str(conv["context"])
    assert reruns(metrics) == 1  # the turn stored second ran again on what the first one stored
    assert conv["version"] == (3 if known else 2)
    assert [state for state, _ in answers(runner, "oApp001")] == ["answered"] * (3 if known else 2)
    assert all(count == 1 for _, count in answers(runner, "oApp001"))  # one reply each


async def test_two_unclear_messages_at_once_count_as_two_misunderstandings(
    new_db: NewDb, make_runner: Callable[..., DbRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = make_runner(open_db(new_db("p.db"), server.MIGRATIONS))
    metrics = Metrics()
    ranking = (("nlu_fallback", 0.3), ("ask_price", 0.25), ("ask_stock", 0.2))
    texts_said = ("嗯那个", "就是那个啊")
    nlu = HeldNlu({t: Parse(t, "nlu_fallback", 0.3, ranking) for t in texts_said}, monkeypatch)
    dialogue = Dialogue(runner, nlu, None, SqliteOrders(runner), HOURS, lambda: T0, metrics)
    dispatcher = Dispatcher(runner, dialogue, metrics, lambda: T0)

    nlu.start()
    replies = await asyncio.gather(*(dispatcher.handle_local(said("oUnclear", t, n)) for n, t in enumerate(texts_said)))

    # The first stored asks what was meant; the other, run again after it, is the second misunderstanding
    # in a row and goes to a person (with no version check both would have saved one misunderstanding).
    assert sorted(r.text or "" for r in replies) == sorted(
        [texts.CLARIFY_INTENT.format(a="问商品价格", b="问有没有货"), texts.HANDOFF_NEXT]
    )
    [conv] = conversations(runner)
    assert conv["state"] == conv_store.QUEUED and conv["handoff_reason"] == "misunderstood"
    assert conv["misunderstandings"] == 2 and reruns(metrics) == 1
    assert all(count == 1 for _, count in answers(runner, "oUnclear"))


async def test_a_turn_that_keeps_losing_is_left_for_recovery(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> None:
    runner = make_runner(open_db(new_db("l.db"), server.MIGRATIONS))
    attempts = []

    async def always_stale(inbound: Inbound) -> Reply:
        attempts.append(inbound.dedup_key)

        def persist(db: object) -> None:
            raise ConversationChangedError("saved by another turn")

        return Reply("你好", persist=persist)

    dispatcher = Dispatcher(runner, always_stale, Metrics(), lambda: T0)
    with pytest.raises(ConversationChangedError):
        await dispatcher.handle_local(said("oLoser", "你好", 1))
    assert len(attempts) == 9  # the turn and its eight re-runs
    assert answers(runner, "oLoser") == [("received", 0)]  # unanswered and unsent: recovery answers it
