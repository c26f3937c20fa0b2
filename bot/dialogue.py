"""The bot's side of a conversation: one Rasa parse, then the handler registered for the intent."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from bot import conversations as conv_store
from bot import texts
from bot.conversations import Conversation
from bot.dispatch import Reply
from bot.metrics import Metrics
from bot.orders import OrderSource, OrderSourceError
from bot.store import Understood
from bot.wechat import Inbound
from intents.client import FALLBACK, NluClient, NluUnavailableError, Parse
from intents.ensemble import FALLBACK_THRESHOLD
from kb import store as kb_store
from kb.hours import BusinessHours
from kb.search import ANSWER, CLARIFY, UNKNOWN, KnowledgeBase, SearchResult, named_spec
from kb.store import Order, Product
from storage.db import DbRunner

logger = logging.getLogger(__name__)

PRESALE = frozenset({"ask_price", "ask_stock", "ask_product_info", "ask_shipping", "ask_promotion"})
# Handoffs the shopper asked for: until an agent answers, the bot only says where they stand in line.
# After any other handoff (a complaint, a misunderstanding, an order change) clear questions still
# get the bot's answer while the shopper waits.
ASKED_FOR_PERSON = frozenset({"asked_for_human"})
ORDER_ID = re.compile(r"(?<![A-Za-z0-9])(?!1[3-9]\d{9}(?!\d))[A-Za-z]{0,4}\d{10,20}(?!\d)")
SKU_IN_PATH = re.compile(r"[?&]sku=([A-Za-z0-9_\-.]+)")
# Words that point at an order already placed (not 下单, placing one).
ORDER_WORDS = re.compile(r"订单|单子|单号|物流|[那这哪的]单")
ORDER_TALK = re.compile(ORDER_WORDS.pattern + r"|我(?:之前|上次|刚|刚刚|后来|昨天|前天|上周)?(?:买|订|预定|预订|拍)的")
# A message that asks something: no thank-you or goodbye, whatever the intent model says.
ASKS = re.compile(r"怎么|如何|咋|吗|呢|？|\?|多久|什么|啥|几|哪|能不能|可不可以|是不是|要不要")
# How much of the shopper's previous message a follow-up is searched with.
PREV_CHARS = 64


@dataclass(frozen=True)
class DialogueConfig:
    """Knobs of the conversation policy."""

    confidence: float = FALLBACK_THRESHOLD  # below this NLU confidence the bot asks what was meant
    handoff_after_misunderstandings: int = 2
    minutes_per_case: float = 3.0  # an agent's average handling time, for the expected wait
    low_stock: int = 10
    presale_target_seconds: float = 15.0


# Real shoppers' messages run to 162 characters (460 JD messages); the encoder reads 256 tokens.
# Cutting at 256 characters leaves accuracy unchanged there (python -m bench text-cap), while Rasa
# takes 2.7 s over 10,000 characters and fails on 100,000, holding up every shopper behind them.
MAX_UNDERSTOOD = 256


@dataclass
class Turn:
    """One shopper message on its way through a handler."""

    inbound: Inbound
    conv: Conversation
    parse: Parse | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """What the bot reads of the message: its first MAX_UNDERSTOOD characters (all of it is stored)."""
        return self.inbound.text[:MAX_UNDERSTOOD]


Handler = Callable[["Dialogue", Turn], Awaitable[Reply]]
HANDLERS: dict[str, Handler] = {}


def handles(*intents: str) -> Callable[[Handler], Handler]:
    """Register a handler for intents (the dict lookup after the one Rasa parse)."""

    def register(fn: Handler) -> Handler:
        for intent in intents:
            HANDLERS[intent] = fn
        return fn

    return register


def _order_name(products: dict[str, Product], order: Order) -> str:
    product = products.get(order.sku)
    return product.name if product else order.sku


class Dialogue:
    """The responder: turns an inbound message into the bot's reply (or silence while an agent has it)."""

    def __init__(
        self,
        runner: DbRunner,
        nlu: NluClient | None,
        kb: KnowledgeBase | None,
        orders: OrderSource,
        hours: BusinessHours,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
        config: DialogueConfig | None = None,
        publish: Callable[[dict[str, Any]], None] = lambda event: None,
    ) -> None:
        self.runner = runner
        self.nlu = nlu
        self.kb = kb
        self.orders = orders
        self.hours = hours
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.config = config or DialogueConfig()
        self.publish = publish

    async def __call__(self, inbound: Inbound) -> Reply:
        """The reply, carrying the turn's conversation changes for the transaction that stores it."""
        started = self.clock()
        conv = await self.runner.run(conv_store.current_conversation, inbound.openid, started)
        events: list[str] = []  # live updates for the console, sent once the turn is stored
        if conv.state != conv_store.BOT:
            events.append("message")
        if conv.state == conv_store.AGENT:
            # The agent answers; the bot stays silent.
            return self._stored(Reply(None, intent="with_agent"), conv, inbound, started, events, save_context=False)
        waiting = conv.state == conv_store.QUEUED
        if waiting and (conv.handoff_reason or "") in ASKED_FOR_PERSON:
            reply = await self._still_waiting(conv)
            answer = await self._faq_while_waiting(Turn(inbound, conv))
            if answer is not None:  # "你们什么时候有人": the FAQ answers it, the place in line stays
                reply = dataclasses.replace(reply, text=f"{answer}\n{reply.text}")
            return self._stored(reply, conv, inbound, started, events, save_context=False)
        turn = Turn(inbound, conv)
        reply = await self._answer(turn)
        if waiting and turn.extra.get("handoff_text"):
            # Already in the queue: one "you are in line" instead of a second handoff text, after what
            # the FAQ says about it ("坏了一大半呢" still gets the compensation rule).
            still = await self._still_waiting(conv)
            answer = turn.extra.get("answer")
            reply = dataclasses.replace(still, text=f"{answer}\n{still.text}") if answer else still
        if turn.parse is not None:
            understood = Understood(turn.parse.intent, turn.parse.confidence, bool(turn.extra.get("handed_off")))
            reply = dataclasses.replace(reply, understood=understood)
        if turn.inbound.kind == "text" and turn.text.strip():
            # The question a follow-up ("多久能到账", "怎么申请") leans on.
            conv.context["prev"] = turn.text[:PREV_CHARS]
        if turn.conv.state == conv_store.QUEUED:
            events.append("queue")
        close = "bot_resolved" if reply.intent == "goodbye" and not waiting else None
        return self._stored(reply, conv, inbound, started, events, close_as=close)

    def _stored(
        self,
        reply: Reply,
        conv: Conversation,
        inbound: Inbound,
        started: float,
        events: list[str],
        *,
        save_context: bool = True,
        close_as: str | None = None,
    ) -> Reply:
        """Attach the turn's writes (one savepoint in the reply's transaction) and its live updates."""
        now = self.clock()
        record = conv_store.TurnRecord(
            conv,
            inbound.dedup_key,
            started,
            save_context=save_context,
            replied_at=now if reply.text is not None else None,
            presale=reply.intent in PRESALE,
            fast=now - started <= self.config.presale_target_seconds,
            close_as=close_as,
        )

        def published() -> None:
            for event in events:
                self.publish({"type": event, "conversation_id": conv.id})

        return dataclasses.replace(reply, persist=partial(conv_store.save_turn, record=record), on_stored=published)

    async def _faq_while_waiting(self, turn: Turn) -> str | None:
        """For a shopper waiting for the person they asked for: the FAQ's answer to a question it
        clearly answers (no intent model: until an agent answers, the bot does not take over)."""
        if turn.inbound.kind != "text" or not turn.text.strip() or not _QUESTION.search(turn.text):
            return None
        result = await self._search(turn.text, turn.conv.context.get("sku"))
        if result is None or result.decision != ANSWER or result.top is None or result.top.kind != "faq":
            return None
        return (await self._answer_hit(turn, result, intent="queued")).text

    async def _still_waiting(self, conv: Conversation) -> Reply:
        position = await self.runner.run(conv_store.queue_position, conv.id)
        return Reply(texts.HANDOFF_STILL_WAITING.format(ahead=max(0, position - 1)), intent="queued")

    async def _answer(self, turn: Turn) -> Reply:
        kind = turn.inbound.kind
        if kind in ("event:subscribe", "event:user_enter_tempsession"):
            return Reply(texts.WELCOME, intent="welcome")
        if kind == "image":
            return Reply(texts.IMAGE_RECEIVED, intent="image")
        if kind == "voice":
            return Reply(texts.VOICE_UNRECOGNISED, intent="voice")
        if kind == "location":
            return Reply(texts.LOCATION_RECEIVED, intent="location")
        if kind == "product_card":
            return await self._product_card(turn)
        if kind == "event:other":
            return Reply(None, intent="event")
        if kind != "text" and kind != "link":
            return Reply(texts.UNSUPPORTED, intent="unsupported")
        if not turn.text:
            return Reply(texts.UNSUPPORTED, intent="unsupported")
        picked = await self._pending_choice(turn)
        if picked is not None:
            return picked
        try:
            turn.parse = await self.nlu.parse(turn.text) if self.nlu else None
        except NluUnavailableError:
            self.metrics.errors.labels(kind="nlu_unavailable").inc()
            turn.parse = None
        if turn.parse is None:
            return await self._without_nlu(turn)
        parse = turn.parse
        if parse.intent == FALLBACK or parse.confidence < self.config.confidence:
            return await self._misunderstood(turn)
        if parse.intent in ("thanks", "goodbye") and ASKS.search(turn.text):
            # "要我怎么弄" is no thank-you: a question is searched like any the model could not place.
            return await self._misunderstood(turn)
        turn.conv.misunderstandings = 0
        talk = ORDER_WORDS if parse.intent == "ask_price" else ORDER_TALK  # "我上周买的精华降价了": price protection
        if parse.intent in PRESALE and talk.search(turn.text):
            # "破壁机那单签收了吧", "我买的蒸汽炸锅发了没": about the shopper's order of that product.
            order = await _order_about_product(self, turn, named_only=True)
            if order is not None:
                reply = await self._order_action(turn, "order_status", order)
                return dataclasses.replace(reply, confidence=parse.confidence)
        handler = HANDLERS.get(parse.intent, Dialogue.answer_from_kb)
        reply = await handler(self, turn)
        if reply.intent is None:
            reply = Reply(reply.text, intent=parse.intent, confidence=parse.confidence)
        return reply

    # ----- understanding -------------------------------------------------------------

    async def _search(self, text: str, context_sku: str | None = None) -> SearchResult | None:
        if self.kb is None:
            return None
        loop = asyncio.get_running_loop()
        kb = self.kb
        return await loop.run_in_executor(None, lambda: kb.search(text, context_sku=context_sku))

    async def _search_turn(self, turn: Turn) -> SearchResult | None:
        """Search for the message; a follow-up that search cannot place alone ("多久能到账" after a
        refund question) is searched again together with the shopper's previous message."""
        context_sku = turn.conv.context.get("sku")
        result = await self._search(turn.text, context_sku)
        prev = turn.conv.context.get("prev")
        if result is None or result.decision == ANSWER or not prev or prev == turn.text:
            return result
        joined = await self._search(f"{prev} {turn.text}", context_sku)
        # Only an FAQ entry: the product talked about before is the context's job (Dialogue._product).
        if joined is not None and joined.decision == ANSWER and joined.top is not None and joined.top.kind == "faq":
            return joined
        return result

    async def _about_product(
        self, turn: Turn, product: Product, *, faq_only: bool = False, at_least: float | None = None
    ) -> Reply | None:
        """The product's own FAQ entry (or spec line) when one clearly answers the question."""
        if self.kb is None:
            return None
        kb = self.kb
        hit = await asyncio.get_running_loop().run_in_executor(None, kb.about_product, product.sku, turn.text, at_least)
        if hit is None or (faq_only and hit.kind != "faq"):
            return None
        if hit.kind == "spec":
            key = hit.ref.split(kb_store.SPEC_SEP, 1)[1]
            return Reply(texts.SPEC_ONE.format(name=product.name, key=key, value=dict(product.specs)[key]))
        return await self._answer_label(turn, "faq", hit.ref, intent=turn.parse.intent if turn.parse else "kb")

    async def _without_nlu(self, turn: Turn) -> Reply:
        """Rasa is down or slow: answer from the knowledge base when sure, else hand off."""
        result = await self._search_turn(turn)
        if result and result.decision == ANSWER:
            return await self._answer_hit(turn, result, intent="kb_only")
        return await self.handoff(turn, "nlu_unavailable", texts.NLU_DOWN_HANDOFF)

    async def _about_context(self, turn: Turn, result: SearchResult | None) -> Reply | None:
        """For a message the intent model could not place: the product it names by name (its card,
        when search agrees), else a line of the product named or talked about that is very close."""
        if self.kb is None:
            return None
        named = self.named_product(turn)
        if named and result and result.top and result.top.label == f"sku:{named}":
            return await self._answer_label(turn, "product", named, intent="kb_match")  # "想看看那个可视空气炸锅"
        product = await self._product(turn)
        if product is None:
            return None
        return await self._about_product(turn, product, at_least=self.kb.thresholds.product_followup)

    def named_product(self, turn: Turn) -> str | None:
        """The one product the message names by a name or alias, if it names exactly one."""
        if self.kb is None:
            return None
        named, by_name = self.kb.named_products(turn.text, turn.conv.context.get("sku"))
        return named[0] if by_name and len(named) == 1 else None

    async def _misunderstood(self, turn: Turn) -> Reply:
        assert turn.parse is not None
        result = await self._search_turn(turn)
        if result and result.decision == ANSWER:
            turn.conv.misunderstandings = 0
            return await self._answer_hit(turn, result, intent="kb_match")
        about = await self._about_context(turn, result)
        if about is not None:
            turn.conv.misunderstandings = 0
            return dataclasses.replace(about, intent="kb_match")
        turn.conv.misunderstandings += 1
        if turn.conv.misunderstandings >= self.config.handoff_after_misunderstandings:
            return await self.handoff(turn, "misunderstood")
        likely = [name for name, _ in turn.parse.ranking if name not in (FALLBACK, "out_of_scope")][:2]
        if len(likely) < 2:
            return Reply(texts.DONT_KNOW, intent=FALLBACK, confidence=turn.parse.confidence)
        a, b = (texts.INTENT_MEANINGS.get(x, x) for x in likely)
        return Reply(texts.CLARIFY_INTENT.format(a=a, b=b), intent=FALLBACK, confidence=turn.parse.confidence)

    async def _pending_choice(self, turn: Turn) -> Reply | None:
        """The shopper answers a question the bot asked: which order, or which entry."""
        ctx = turn.conv.context
        text = turn.text.strip()
        if "pick_orders" in ctx:
            pick = ctx.pop("pick_orders")
            ids: list[str] = pick["orders"]
            chosen = None
            if text.isdigit() and 1 <= int(text) <= len(ids):
                chosen = ids[int(text) - 1]
            else:
                match = ORDER_ID.search(text)
                if match and match.group(0) in ids:
                    chosen = match.group(0)
            if chosen:
                order = await self.orders.get_order(turn.inbound.openid, chosen)
                if order:
                    return await self._order_action(turn, pick["intent"], order)
        if "choices" in ctx:
            choices: list[str] = ctx.pop("choices")
            if text.isdigit() and 1 <= int(text) <= len(choices):
                kind, _, ref = choices[int(text) - 1].partition(":")
                return await self._answer_label(turn, kind, ref, intent="clarified")
        return None

    # ----- the knowledge base -------------------------------------------------------------

    async def _product(self, turn: Turn) -> Product | None:
        """The product the message is about: named in it, or the one talked about before."""
        candidates: list[str] = []
        context_sku = turn.conv.context.get("sku")
        if self.kb:
            # A name or alias in the whole message ("防晒喷雾") beats the entity Rasa marked ("防晒"),
            # which beats a single word of a name.
            candidates, by_name = self.kb.named_products(turn.text, context_sku)
            entity = turn.parse.entity("product") if turn.parse else None
            if entity and not by_name:
                candidates = self.kb.mentioned_products(entity, context_sku) or candidates
        if context_sku and (not candidates or context_sku in candidates):
            # "座椅本身多重" names both seats; the one being talked about is meant.
            candidates = [context_sku]
        if not candidates:
            # "收到了怎么用": a shopper who bought one product is asking about it.
            try:
                bought = {o.sku for o in await self.orders.orders_of(turn.inbound.openid)}
            except OrderSourceError:
                bought = set()
            candidates = list(bought) if len(bought) == 1 else []
        for sku in candidates:
            product = await self.runner.run(kb_store.get_product, sku)
            if product:
                turn.conv.context["sku"] = product.sku
                return product
        return None

    def _entry_title(self, kind: str, ref: str) -> str:
        assert self.kb is not None
        if kind == "faq":
            return self.kb.faqs[ref].question if ref in self.kb.faqs else ref
        return self.kb.products[ref].name if ref in self.kb.products else ref

    async def _answer_hit(self, turn: Turn, result: SearchResult, intent: str) -> Reply:
        top = result.top
        assert top is not None
        return await self._answer_label(turn, top.kind, top.ref, intent=intent)

    async def _answer_label(self, turn: Turn, kind: str, ref: str, intent: str) -> Reply:
        if kind == "faq":
            faq = await self.runner.run(kb_store.get_faq, ref)
            if faq:
                if faq.sku:
                    turn.conv.context["sku"] = faq.sku
                return Reply(faq.answer, intent=intent)
        else:
            product = await self.runner.run(kb_store.get_product, ref)
            if product:
                turn.conv.context["sku"] = product.sku
                return Reply(await self._price_text(product), intent=intent)
        return Reply(texts.DONT_KNOW, intent=intent)

    async def answer_from_kb(self, turn: Turn) -> Reply:
        """Policy and how-to questions: the FAQ entry search finds, or a clarifying question."""
        result = await self._search_turn(turn)
        if result is None or result.top is None:
            return Reply(texts.DONT_KNOW)
        if result.decision == ANSWER:
            return await self._answer_hit(turn, result, intent=turn.parse.intent if turn.parse else "kb")
        if result.decision == CLARIFY and len(result.hits) >= 2:
            first, second = result.hits[0], result.hits[1]
            turn.conv.context["choices"] = [
                first.label.replace("sku:", "product:"),
                second.label.replace("sku:", "product:"),
            ]
            return Reply(
                texts.CLARIFY_ENTRIES.format(
                    a=self._entry_title(first.kind, first.ref), b=self._entry_title(second.kind, second.ref)
                )
            )
        turn.conv.misunderstandings += 1
        return Reply(texts.DONT_KNOW)

    # ----- products -------------------------------------------------------------

    def _stock_text(self, product: Product) -> str:
        shipping = product.shipping or "付款后尽快发货"
        if product.stock <= 0:
            return texts.STOCK_OUT_SHORT
        if product.stock <= self.config.low_stock:
            return texts.STOCK_LOW.format(stock=product.stock, shipping=shipping)
        return texts.STOCK_IN.format(stock=product.stock, shipping=shipping)

    async def _price_text(self, product: Product) -> str:
        text = texts.PRICE.format(name=product.name, price=product.price, stock=self._stock_text(product))
        if product.stock <= 0:
            text += await self._alternatives(product)
        return text

    async def _alternatives(self, product: Product) -> str:
        others = await self.runner.run(kb_store.in_stock_alternatives, product.category, product.sku)
        if not others:
            return ""
        items = "、".join(f"【{p.name}】¥{p.price}" for p in others)
        return texts.ALTERNATIVES.format(items=items)

    async def _product_card(self, turn: Turn) -> Reply:
        sku = None
        if turn.inbound.product_hint:
            match = SKU_IN_PATH.search(turn.inbound.product_hint)
            sku = match.group(1) if match else None
        if not sku and self.kb:
            found = self.kb.mentioned_products(turn.text)
            sku = found[0] if found else None
        product = await self.runner.run(kb_store.get_product, sku) if sku else None
        if product is None:
            return Reply(texts.WHICH_PRODUCT, intent="product_card")
        turn.conv.context["sku"] = product.sku
        text = texts.PRODUCT_CARD.format(name=product.name, price=product.price, stock=self._stock_text(product))
        return Reply(text, intent="product_card")

    def kb_about_other(self: Dialogue, result: SearchResult, product: Product) -> bool:
        """Is the top FAQ entry about a different product than the one asked about?"""
        assert self.kb is not None and result.top is not None
        faq = self.kb.faqs.get(result.top.ref)
        return bool(faq and faq.sku and faq.sku != product.sku)

    async def _order_action(self: Dialogue, turn: Turn, intent: str, order: Order) -> Reply:
        """What to say (and do) about one of the shopper's orders."""
        turn.conv.context["order_id"] = order.order_id
        product = await self.runner.run(kb_store.get_product, order.sku)
        name = product.name if product else order.sku
        fields = {
            "order_id": order.order_id,
            "name": name,
            "quantity": order.quantity,
            "carrier": order.carrier or "快递",
            "tracking_no": order.tracking_no or "暂无",
            "shipping": (product.shipping if product and product.shipping else "付款后48小时内发货"),
            "status": kb_store.ORDER_STATES.get(order.status, order.status),
        }
        if intent == "order_status":
            template = texts.ORDER_STATUS.get(order.status, texts.ORDER_STATUS["paid"])
            return Reply(template.format(**fields), intent=intent)
        shipped = order.status in ("shipped", "delivered")
        if intent == "change_order":
            if order.status in ("pending_payment", "paid"):
                await self.handoff(turn, f"change_order:{order.order_id}", quiet=True)
                return Reply(texts.CHANGE_TASK.format(**fields), intent=intent)
            if shipped:
                return Reply(texts.CHANGE_SHIPPED.format(**fields), intent=intent)
            return Reply(texts.CHANGE_CLOSED.format(**fields), intent=intent)
        if order.status == "pending_payment":
            # Nothing to refund and nobody needed: the shop's own rule for unpaid orders, if its FAQ has one.
            result = await self._search_turn(turn)
            rule = await self._answer_hit(turn, result, intent=intent) if result and result.decision == ANSWER else None
            text = texts.CANCEL_UNPAID.format(**fields)
            return Reply(f"{text}\n{rule.text}" if rule and rule.text else text, intent=intent)
        if order.status == "paid":
            await self.handoff(turn, f"cancel_order:{order.order_id}", quiet=True)
            return Reply(texts.CANCEL_TASK.format(**fields), intent=intent)
        if shipped:
            return Reply(texts.CANCEL_SHIPPED.format(**fields), intent=intent)
        return Reply(texts.CANCEL_DONE.format(**fields), intent=intent)

    async def handoff(self: Dialogue, turn: Turn, reason: str, prefix: str | None = None, *, quiet: bool = False) -> Reply:
        """Queue the conversation for an agent and tell the shopper where they stand."""
        now = self.clock()
        if turn.conv.id == 0:  # a first message that needs a person: the conversation is stored now
            await self.runner.run(conv_store.store_conversation, turn.conv, now)
        position = await self.runner.run(conv_store.enqueue_handoff, turn.conv.id, reason, now)
        turn.conv.state = conv_store.QUEUED
        turn.extra["handed_off"] = True
        self.metrics.errors.labels(kind=f"handoff_{reason.split(':')[0]}").inc()
        if quiet:
            return Reply(None, intent="handoff")
        turn.extra["handoff_text"] = True
        if self.hours.is_open(now):
            ahead = max(0, position - 1)
            if ahead == 0:
                text = texts.HANDOFF_NEXT
            else:
                text = texts.HANDOFF_QUEUED.format(ahead=ahead, minutes=math.ceil(ahead * self.config.minutes_per_case))
        else:
            back = self.hours.next_open(now)
            text = texts.HANDOFF_CLOSED_HOURS.format(hours=self.hours.describe(), back=_when(back, now, self.hours))
        if prefix:
            text = prefix + "\n" + text
        return Reply(
            text,
            intent="handoff" if turn.parse is None else turn.parse.intent,
            confidence=turn.parse.confidence if turn.parse else None,
        )


# ----- handlers, one per intent ------------------------------------------------------


# Greetings, thanks, goodbyes (which close the conversation as resolved) and off-topic messages
# get one fixed, brief text each.
FIXED_REPLIES = {"greet": texts.GREET, "thanks": texts.THANKS, "goodbye": texts.GOODBYE}


@handles(*FIXED_REPLIES)
async def answer_fixed(d: Dialogue, turn: Turn) -> Reply:
    """The fixed text of the intent."""
    assert turn.parse is not None
    return Reply(FIXED_REPLIES[turn.parse.intent])


@handles("out_of_scope")
async def answer_out_of_scope(d: Dialogue, turn: Turn) -> Reply:
    """Off the shop's usual topics: the FAQ may still answer it (agents' hours, installation); else a polite no."""
    result = await d._search_turn(turn)
    if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
        return await d._answer_hit(turn, result, intent="out_of_scope")
    about = await d._about_context(turn, result)  # "尘杯多大" right after the vacuum cleaner
    if about is not None:
        return dataclasses.replace(about, intent="out_of_scope")
    return Reply(texts.OUT_OF_SCOPE)


@handles("ask_price")
async def answer_ask_price(d: Dialogue, turn: Turn) -> Reply:
    """Price from the live product row; bargaining and price protection from the FAQ."""
    product = await d._product(turn)
    if product is None:
        return await d.answer_from_kb(turn)
    result = await d._search(turn.text, product.sku)
    # "能便宜点吗" or "降价了能退差价吗" about a named product: the policy answers, not the price.
    if result and result.decision == ANSWER and result.top and result.top.kind == "faq" and not d.kb_about_other(result, product):
        faq_answer = await d._answer_hit(turn, result, intent="ask_price")
        return Reply(f"{await d._price_text(product)}\n{faq_answer.text}")
    return Reply(await d._price_text(product))


@handles("ask_stock")
async def answer_ask_stock(d: Dialogue, turn: Turn) -> Reply:
    """Stock from the live row, per colour when one is asked; out of stock offers alternatives."""
    product = await d._product(turn)
    if product is None:
        return await d.answer_from_kb(turn)
    shipping = product.shipping or "付款后尽快发货"
    # Colours, sizes and the like come from the shop's own specs, never from a list in the code.
    variant = d.kb.variant(product.sku, turn.text) if d.kb else None
    named = named_spec(product, turn.text) or (d.kb.choice_spec(product.sku, turn.text) if d.kb else None)
    if variant is None and named and product.stock > 0:
        # "有几种颜色" names the spec key: its line is the answer.
        return Reply(texts.SPEC_ONE.format(name=product.name, key=named[0], value=named[1]) + d._stock_text(product))
    if variant and product.stock > 0:
        key, wanted, options, available = variant
        if available:
            return Reply(
                texts.VARIANT_AVAILABLE.format(name=product.name, variant=wanted, stock=product.stock, shipping=shipping)
            )
        return Reply(texts.VARIANT_MISSING.format(name=product.name, key=key, values="、".join(options), variant=wanted))
    if product.stock <= 0:
        return Reply(texts.STOCK_OUT.format(name=product.name, shipping=shipping) + await d._alternatives(product))
    # "多少钱，有现货吗": the price travels with the stock.
    return Reply(await d._price_text(product))


@handles("ask_product_info")
async def answer_ask_product_info(d: Dialogue, turn: Turn) -> Reply:
    """The product's own FAQ entry or spec line when one fits, else a shop-wide FAQ entry, else all specs."""
    product = await d._product(turn)
    if product is not None:
        # The product's own FAQ entries and spec lines answer first: "敷多久", "孕妇能用吗", "多重".
        own = await d._about_product(turn, product)
        if own is not None:
            return own
    result = await d._search(turn.text, product.sku if product else None)
    if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
        if product is None or not d.kb_about_other(result, product):
            return await d._answer_hit(turn, result, intent="ask_product_info")
    if product is None:
        return await d.answer_from_kb(turn)
    lines = "\n".join(f"· {k}：{v}" for k, v in product.specs)
    text = texts.SPECS.format(name=product.name, specs=lines)
    if product.description:
        text += f"\n{product.description}"
    return Reply(text)


@handles("ask_shipping")
async def answer_ask_shipping(d: Dialogue, turn: Turn) -> Reply:
    """Shipping policy from the FAQ, with the named product's own shipping note."""
    # The product named, or the one being talked about: "现在买什么时候发" means its own shipping note.
    product = await d._product(turn)
    policy = await d.answer_from_kb(turn)
    if product and product.shipping:
        return Reply(texts.SHIPPING_PRODUCT.format(name=product.name, shipping=product.shipping) + "\n" + (policy.text or ""))
    return policy


@handles("ask_promotion", "ask_invoice", "ask_payment", "return_refund", "exchange")
async def answer_policy(d: Dialogue, turn: Turn) -> Reply:
    """Questions the shop's FAQ answers (promotions, invoices, payment, returns, exchanges)."""
    if turn.parse and turn.parse.intent == "return_refund":
        order = await _mentioned_order(d, turn) or await _order_about_product(d, turn, ("refunding", "refunded"))
        if order and order.status == "refunding":
            return Reply(texts.REFUND_STATUS.format(order_id=order.order_id))
        if order and order.status == "refunded":
            return Reply(texts.REFUND_DONE.format(order_id=order.order_id))
    return await d.answer_from_kb(turn)


# A question about the agents (when they work, how to reach them) rather than a request for one.
_QUESTION = re.compile(r"[吗么呢？?]\s*$|几点|什么时候|多久|怎么|哪里|电话")
# Words asking for a person, rather than naming a product that has 机器人 in its name.
_PERSON = re.compile(r"人工|客服|真人|活人|人呢|有人|经理|主管|投诉")


@handles("human_agent")
async def answer_human_agent(d: Dialogue, turn: Turn) -> Reply:
    """Straight to the agents' queue, unless it asks something about them the FAQ answers, or only
    names a product ("R5扫地机器人" is the product, not a wish for a person)."""
    named = d.named_product(turn) if not _PERSON.search(turn.text) else None
    if named:
        return await d._answer_label(turn, "product", named, intent="human_agent")
    if _QUESTION.search(turn.text):
        result = await d._search_turn(turn)
        # The shopper can still say 转人工; the best FAQ entry is worth giving unless search knows nothing.
        if result and result.decision != UNKNOWN and result.top and result.top.kind == "faq":
            answer = await d._answer_hit(turn, result, intent="human_agent")
            return Reply(f"{answer.text}\n{texts.HUMAN_ON_REQUEST}", intent="human_agent")
    return await d.handoff(turn, "asked_for_human")


# Below this confidence a "complaint" that the FAQ answers ("用了刺痛正常吗") is a question: the answer,
# and a person only on request. Above it the shopper goes to a person, with the FAQ's answer if one fits.
SURE_COMPLAINT = 0.7


@handles("complaint")
async def answer_complaint(d: Dialogue, turn: Turn) -> Reply:
    """Apologise and hand off with priority: complaints are for people. What the FAQ says about it
    (how to report damage, what to do on a reaction) comes with the apology, so the shopper can act
    while waiting; a doubtful complaint the FAQ answers gets that answer alone."""
    confidence = turn.parse.confidence if turn.parse else 1.0
    product = await d._product(turn)
    own = await d._about_product(turn, product, faq_only=True) if product is not None else None
    answer = own.text if own is not None else None
    if answer is None:
        result = await d._search_turn(turn)
        if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
            answer = (await d._answer_hit(turn, result, intent="complaint")).text
    if answer and confidence < SURE_COMPLAINT:
        return Reply(f"{answer}\n{texts.HUMAN_ON_REQUEST}", intent="complaint")
    turn.extra["answer"] = answer
    prefix = f"{texts.COMPLAINT}\n{answer}" if answer else texts.COMPLAINT
    return await d.handoff(turn, "complaint", prefix)


async def _mentioned_order(d: Dialogue, turn: Turn) -> Order | None:
    ids = [turn.parse.entity("order_id")] if turn.parse and turn.parse.entity("order_id") else []
    match = ORDER_ID.search(turn.text)
    if match:
        ids.append(match.group(0))
    for order_id in ids:
        if order_id:
            order = await d.orders.get_order(turn.inbound.openid, order_id)
            if order:
                return order
    return None


async def _order_about_product(
    d: Dialogue, turn: Turn, states: tuple[str, ...] = (), *, named_only: bool = False
) -> Order | None:
    """The one order (in the given states) of the product the message names; with no product named,
    the shopper's only such order (or None when ``named_only``). The newest when several orders are
    of that one product."""
    try:
        orders = [o for o in await d.orders.orders_of(turn.inbound.openid) if not states or o.status in states]
    except OrderSourceError:
        return None
    named = d.kb.mentioned_products(turn.text, turn.conv.context.get("sku")) if d.kb else []
    if not named and d.kb:
        # "吹风机那单呢": a word that names no product of the shop may still name one of the shopper's orders.
        named = d.kb.named_among(turn.text, [o.sku for o in orders])
    if named_only and not named:
        return None
    if named:  # "眼影盘也想退" is not about the face mask being refunded
        orders = [o for o in orders if o.sku in named]
        if len({o.sku for o in orders}) == 1:
            return orders[0]
    return orders[0] if len(orders) == 1 else None


@handles("order_status", "change_order", "cancel_order")
async def answer_order(d: Dialogue, turn: Turn) -> Reply:
    """Orders of this shopper only: the one named, the only open one, or a choice among several."""
    assert turn.parse is not None
    intent = turn.parse.intent
    try:
        named = turn.parse.entity("order_id") or (m.group(0) if (m := ORDER_ID.search(turn.text)) else None)
        if not named:
            # "吹风机那单呢": the order of the product named beats the order talked about before.
            of_product = await _order_about_product(d, turn, named_only=True)
            if of_product is not None:
                return await d._order_action(turn, intent, of_product)
        # "这个订单能取消吗" right after talking about an order: the order being discussed.
        named = named or turn.conv.context.get("order_id")
        if named:
            order = await d.orders.get_order(turn.inbound.openid, named)
            if order is None:
                return Reply(texts.ORDER_NOT_FOUND.format(order_id=named))
            return await d._order_action(turn, intent, order)
        orders = await d.orders.orders_of(turn.inbound.openid)
    except OrderSourceError as exc:
        logger.warning("order source failed: %s", exc)
        d.metrics.errors.labels(kind="order_source").inc()
        return await d.handoff(turn, "order_source_down")
    if intent != "order_status":
        orders = [o for o in orders if o.status not in ("cancelled", "refunded")]
    else:
        orders = [o for o in orders if o.status != "cancelled"]
    if not orders:
        # Not about an order after all ("三段的怎么下不了单", "加湿器HM-E6多少钱"): the product named,
        # or what the knowledge base says.
        product_named = d.named_product(turn) if not ORDER_TALK.search(turn.text) else None
        if product_named:
            return await d._answer_label(turn, "product", product_named, intent=intent)
        result = await d._search_turn(turn)
        if result and result.decision == ANSWER:
            return await d._answer_hit(turn, result, intent=intent)
        return Reply(texts.NO_ORDERS)
    if len(orders) == 1:
        return await d._order_action(turn, intent, orders[0])
    # "散粉那个到哪了": the order of the product the message names.
    products_named = set(d.kb.mentioned_products(turn.text)) if d.kb else set()
    about = [o for o in orders if o.sku in products_named]
    if len(about) == 1:
        return await d._order_action(turn, intent, about[0])
    shown = orders[:5]
    products = d.kb.products if d.kb else {}
    items = "\n".join(
        texts.ORDER_LINE.format(
            index=i,
            order_id=o.order_id,
            name=_order_name(products, o),
            quantity=o.quantity,
            status=kb_store.ORDER_STATES.get(o.status, o.status),
        )
        for i, o in enumerate(shown, start=1)
    )
    turn.conv.context["pick_orders"] = {"intent": intent, "orders": [o.order_id for o in shown]}
    return Reply(texts.PICK_ORDER.format(count=len(orders), items=items))


def _when(moment: datetime | None, now: float, hours: BusinessHours) -> str:
    if moment is None:
        return "工作日"
    today = datetime.fromtimestamp(now, hours.tz).date()
    days = (moment.date() - today).days
    day = "今天" if days == 0 else "明天" if days == 1 else f"{moment.month}月{moment.day}日"
    return f"{day} {moment:%H:%M}"
