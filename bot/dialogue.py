"""The bot's side of a conversation: middleware around one turn, one Rasa parse, then the handler the
router has for the intent.

A turn runs inside three middlewares, outermost first: metrics (the turn's latency), the conversation
(loaded before, saved with the reply under its version, live updates after the commit) and compliance
(no reply breaking the review or sharing rules goes out). Inside them the dialogue routes by what the
message is and where its conversation stands, and hands what the intent model recognised to the
handler registered for it (``bot/handlers/``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from bot import conversations as conv_store
from bot import handlers, texts
from bot.dispatch import Reply
from bot.handlers.complaints import DOUBTFUL_COMPLAINT, SURE_COMPLAINT
from bot.handlers.context import ASKS, COMPLAINT_FAQ, LISTED, ORDER_ID, PREV_FAQ, DialogueConfig, Services, TurnContext, spec_line
from bot.handlers.orders import CHANGES, KEEPS_ORDER, ORDER_TALK, ORDER_WORDS, STATUS_ASKED, TRACKING_ASKED, UNPAID, UNWANTED
from bot.handlers.smalltalk import ABOUT_AGENTS
from bot.metrics import Metrics
from bot.orders import OrderSource, OrderSourceError
from bot.router import Handler, Middleware, Router, chain
from bot.store import Understood
from bot.wechat import Inbound
from intents.client import FALLBACK, NluClient, NluUnavailableError, Parse
from kb.compliance import check_text
from kb.hours import BusinessHours
from kb.search import ANSWER, KnowledgeBase, abbreviated_keys
from storage.db import DbRunner

logger = logging.getLogger(__name__)

PRESALE = frozenset({"ask_price", "ask_stock", "ask_product_info", "ask_shipping", "ask_promotion"})
# Handoffs the shopper asked for: until an agent answers, the bot only says where they stand in line
# (and, asked, what the FAQ says of the agents or where an order named is).
# After any other handoff (a complaint, a misunderstanding, an order change) clear questions still
# get the bot's answer while the shopper waits.
ASKED_FOR_PERSON = frozenset({"asked_for_human"})
ORDER_INTENTS = frozenset({"order_status", "change_order", "cancel_order"})
# Shoppers' ways of asking about a product itself: how to use it, what is in it, whether what they see
# is normal (issue 12: such a question is answered from the FAQ or the product, never taken for a complaint).
PRODUCT_QUESTION = re.compile(
    r"(?:怎么|咋|如何)(?:用|使用|吃|食用|煮|冲|泡|开|洗|清洗|敷|涂|抹|穿|戴|装|折叠|保存)"
    r"|里面?都?有(?:啥|什么|哪些)|都有(?:啥|什么|哪些)|包含(?:啥|什么|哪些)|正常吗|正常不"
)
# "有啥可以替代的", "有什么能代替的": what else would do instead of the product talked about (not "能代替面霜吗",
# which asks whether the product itself replaces another).
SUBSTITUTE = re.compile(r"(?:有|什么|啥|哪些|哪个|推荐).{0,4}(?:替代|代替)|(?:替代|代替)(?:品|的)")
# "怎么处理", "能补发吗", "能给我换个新的吗": after a complaint, how it will be put right.
REMEDY = re.compile(r"怎么处理|怎么解决|怎么办|处理好|处理一下|补发|补寄|重发|换(?:个|一个)?新")
# Intents of a shopper adding to a complaint ("电池都是新换的", taken for an exchange).
AFTER_SALE = frozenset({"complaint", "exchange", "return_refund"})
# Intents about no business of the shop's: small talk and off-topic messages.
# Words of an order's way to the shopper: paying, shipping, carrying, arriving.
ABOUT_DELIVERY = re.compile(ORDER_TALK.pattern + r"|发|到|收|寄|快递|签|运|付|退|换|取消")
NO_BUSINESS = frozenset({"greet", "thanks", "goodbye", "out_of_scope"})
# Intents whose handlers weigh the product's own lines themselves.
PRODUCT_LINES = PRESALE | {"complaint", "out_of_scope", "order_status", "change_order", "cancel_order"}
# "刷头那个呢", "开强力档呢": a follow-up that leaves out what it asks, the same as the message before.
ELLIPSIS = re.compile(r"呢\s*[？?]?\s*$")
# Greeting words, punctuation and spaces: what is left of a greeting that asks something else.
NOT_GREETING = re.compile(r"你好|您好|在吗|在不在|在么|有人在吗|有人吗|hello|hi|哈喽|嗨|亲|[\W_]", re.IGNORECASE)
# The digest of the bot's reply before, and the intents whose reply is not given twice in a row
# (a greeting or a thank-you may be).
PREV_REPLY = "prev_reply"
REPEATABLE = PRESALE | ORDER_INTENTS
# ... unless an FAQ entry holds at least this many of the message's own character pairs ("物流一直不动":
# "物流一直不更新怎么办？"; "多久清一次" after the descaling answer holds one of the shipping entry's).
REPEAT_PAIRS = 2
# How much of the shopper's previous message a follow-up is searched with.
PREV_CHARS = 64


class MetricsMiddleware:
    """Times every turn, failed ones included (``kefu_reply_latency_seconds``)."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, handler: Handler[TurnContext], ctx: TurnContext) -> Reply:
        """Run the turn and observe how long its reply took."""
        started = self.clock()
        try:
            return await handler(ctx)
        finally:
            self.metrics.reply_latency.observe(max(0.0, self.clock() - started))


class ConversationMiddleware:
    """Loads the shopper's conversation before the turn; attaches what the turn changed to the reply,
    written in the transaction that stores it (``Reply.persist``, checked against the version read
    here), and the console's live updates, sent once that transaction has committed."""

    def __init__(
        self, runner: DbRunner, clock: Callable[[], float], config: DialogueConfig, publish: Callable[[dict[str, Any]], None]
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.config = config
        self.publish = publish

    async def __call__(self, handler: Handler[TurnContext], ctx: TurnContext) -> Reply:
        """Load, run the turn, attach its writes."""
        started = self.clock()
        conv = await self.runner.run(conv_store.current_conversation, ctx.inbound.openid, started)
        ctx.conversation = conv
        loaded_state = conv.state
        reply = await handler(ctx)
        events: list[str] = []  # live updates for the console, sent once the turn is stored
        if loaded_state != conv_store.BOT:
            events.append("message")
        if ctx.remember:
            if ctx.inbound.kind == "text" and ctx.text.strip():
                # The question a follow-up ("多久能到账", "怎么申请") leans on.
                conv.context["prev"] = ctx.text[:PREV_CHARS]
            conv.context["prev_intent"] = reply.intent  # what the bot took the message before for
            if reply.text:
                conv.context[PREV_REPLY] = _digest(reply.text)
            if ctx.listed:
                conv.context[LISTED] = ctx.listed
            else:
                conv.context.pop(LISTED, None)
            if ctx.answered_faq is not None:
                conv.context[PREV_FAQ] = ctx.answered_faq
            else:
                conv.context.pop(PREV_FAQ, None)
            if conv.state == conv_store.QUEUED:
                events.append("queue")
        now = self.clock()
        record = conv_store.TurnRecord(
            conv,
            ctx.inbound.dedup_key,
            started,
            save_context=ctx.remember,
            replied_at=now if reply.text is not None else None,
            presale=reply.intent in PRESALE,
            fast=now - started <= self.config.presale_target_seconds,
            close_as="bot_resolved" if reply.intent == "goodbye" and loaded_state != conv_store.QUEUED else None,
            handoff=ctx.handoff_request,
        )

        def published() -> None:
            for event in events:
                self.publish({"type": event, "conversation_id": conv.id})

        return dataclasses.replace(reply, persist=partial(conv_store.save_turn, record=record), on_stored=published)


class ComplianceMiddleware:
    """Shop-written text (an FAQ answer) that breaks the review or sharing rules is never sent."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler[TurnContext], ctx: TurnContext) -> Reply:
        """Run the turn; a reply that breaks a rule says "don't know" instead."""
        reply = await handler(ctx)
        violations = check_text(reply.text) if reply.text else []
        if violations:
            logger.error(
                "bot reply to %s blocked by compliance %s: %r",
                ctx.inbound.dedup_key,
                [v.rule for v in violations],
                reply.text,
            )
            self.metrics.errors.labels(kind="compliance_blocked").inc()
            reply = dataclasses.replace(reply, text=texts.DONT_KNOW)
        return reply


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
        router: Router[TurnContext] | None = None,
    ) -> None:
        self.runner = runner
        self.nlu = nlu
        self.metrics = metrics or Metrics()
        self.config = config or DialogueConfig()
        self.services = Services(runner, kb, orders, hours, clock, self.metrics, self.config)
        self.router = router or handlers.router
        if self.router.default is None:
            raise ValueError(f"{self.router!r} has no default handler for intents nobody registered")
        self.middlewares: list[Middleware[TurnContext]] = [
            MetricsMiddleware(self.metrics, clock),
            ConversationMiddleware(runner, clock, self.config, publish),
            ComplianceMiddleware(self.metrics),
        ]

    async def __call__(self, inbound: Inbound) -> Reply:
        """The reply, carrying the turn's conversation changes for the transaction that stores it."""
        ctx = TurnContext(inbound, self.services)
        # The intent model's call does not depend on the conversation: it starts now and runs while the
        # conversation is read. A turn that needs no parse (an agent has the conversation, the shopper
        # picks a numbered choice) lets it go.
        if self.nlu is not None and inbound.kind in ("text", "link") and ctx.text:
            ctx.parsing = asyncio.ensure_future(self.nlu.parse(ctx.text))
        parsing = ctx.parsing
        try:
            return await chain(self.middlewares, self._turn)(ctx)
        finally:
            if parsing is not None and not parsing.done():
                parsing.cancel()
            elif parsing is not None and not parsing.cancelled():
                parsing.exception()  # an unused failed parse is no error of this turn: mark it retrieved

    async def _parse(self, ctx: TurnContext) -> Parse | None:
        if ctx.parsing is not None:
            return await ctx.parsing
        return await self.nlu.parse(ctx.text) if self.nlu else None

    async def _turn(self, ctx: TurnContext) -> Reply:
        conv = ctx.conv
        if conv.state == conv_store.AGENT:
            # The agent answers; the bot stays silent.
            ctx.remember = False
            return Reply(None, intent="with_agent")
        waiting = conv.state == conv_store.QUEUED
        if waiting and (conv.handoff_reason or "") in ASKED_FOR_PERSON:
            ctx.remember = False
            reply = await self._still_waiting(ctx)
            answer = await self._faq_while_waiting(ctx) or await self._order_while_waiting(ctx)
            if answer is not None:  # "你们什么时候有人": the FAQ answers it, the place in line stays
                reply = dataclasses.replace(reply, text=f"{answer}\n{reply.text}")
            return reply
        reply = await self._answer(ctx)
        if (
            reply.text
            and reply.intent in REPEATABLE
            and not ctx.restates
            and _digest(reply.text) == conv.context.get(PREV_REPLY)
            and not (reply.intent in ORDER_INTENTS and TRACKING_ASKED.search(ctx.text))
        ):
            # "到货能提醒我吗" right after "暂时缺货", "物流一直不动" right after the tracking number: the same
            # reply again tells the shopper nothing; the FAQ entry that answers the message, if one does.
            result = await ctx.search_message()
            if (
                result
                and result.decision == ANSWER
                and result.top
                and result.top.kind == "faq"
                and ctx.words_asked(result, with_answer=True) >= REPEAT_PAIRS
            ):
                again = await ctx.answer_hit(result, intent="kb_match")
                if again.text and _digest(again.text) != _digest(reply.text):
                    reply = again
        if waiting and ctx.told_place_in_line:
            # Already in the queue: one "you are in line" instead of a second handoff text, after what
            # the FAQ says about it ("坏了一大半呢" still gets the compensation rule).
            still = await self._still_waiting(ctx)
            answer = ctx.faq_answer
            reply = dataclasses.replace(still, text=f"{answer}\n{still.text}") if answer else still
        if ctx.parse is not None:
            understood = Understood(ctx.parse.intent, ctx.parse.confidence, ctx.handed_off)
            reply = dataclasses.replace(reply, understood=understood)
        return reply

    async def _faq_while_waiting(self, ctx: TurnContext) -> str | None:
        """For a shopper waiting for the person they asked for: the FAQ's answer to a question it
        clearly answers (no intent model: until an agent answers, the bot does not take over)."""
        if ctx.inbound.kind != "text" or not ctx.text.strip() or not ABOUT_AGENTS.search(ctx.text):
            return None
        result = await ctx.search(ctx.text, ctx.conv.context.get("sku"))
        if result is None or result.decision != ANSWER or result.top is None or result.top.kind != "faq":
            return None
        return (await ctx.answer_hit(result, intent="queued")).text

    async def _order_while_waiting(self, ctx: TurnContext) -> str | None:
        """For a shopper waiting for the person they asked for: where the order of the product named is,
        when that is all the message asks ("素皮壳到了吗"): a fact from the order source, nothing decided."""
        if ctx.inbound.kind != "text" or not STATUS_ASKED.search(ctx.text) or UNWANTED.search(ctx.text) or "退" in ctx.text:
            return None
        order = await ctx.order_about_product(named_only=True)
        if order is None:
            return None
        return (await ctx.order_action("order_status", order)).text

    async def _still_waiting(self, ctx: TurnContext) -> Reply:
        position = await ctx.queue_position()
        return Reply(texts.HANDOFF_STILL_WAITING.format(ahead=max(0, position - 1)), intent="queued")

    async def _answer(self, ctx: TurnContext) -> Reply:
        kind = ctx.inbound.kind
        if kind in ("event:subscribe", "event:user_enter_tempsession"):
            return Reply(texts.WELCOME, intent="welcome")
        if kind == "image":
            return Reply(texts.IMAGE_RECEIVED, intent="image")
        if kind == "voice":
            return Reply(texts.VOICE_UNRECOGNISED, intent="voice")
        if kind == "location":
            return Reply(texts.LOCATION_RECEIVED, intent="location")
        if kind == "product_card":
            return await ctx.product_card()
        if kind == "event:other":
            return Reply(None, intent="event")
        if kind != "text" and kind != "link":
            return Reply(texts.UNSUPPORTED, intent="unsupported")
        if not ctx.text:
            return Reply(texts.UNSUPPORTED, intent="unsupported")
        picked = await self._pending_choice(ctx)
        if picked is not None:
            return picked
        try:
            ctx.parse = await self._parse(ctx)
        except NluUnavailableError:
            self.metrics.errors.labels(kind="nlu_unavailable").inc()
            ctx.parse = None
        if ctx.parse is None:
            return await self._without_nlu(ctx)
        parse = ctx.parse
        unplaced = parse.intent == FALLBACK or parse.confidence < self.config.confidence
        if (
            STATUS_ASKED.search(ctx.text)
            and not UNWANTED.search(ctx.text)
            and not ORDER_ID.search(ctx.text)
            and "退" not in ctx.text
        ):
            # "之前买的表带到了吗", "无线充电座发了吗", "化毛膏那单我还没付", even while queued for a person: where
            # the shopper's order of the product named is, not that product's card or an FAQ entry. A refund
            # asked after ("冻干面膜退款到哪一步了") is the refund handler's: where it stands and the shop's rule.
            named_order = await ctx.order_about_product(named_only=True)
            if named_order is not None:
                reply = await ctx.order_action("order_status", named_order)
                return dataclasses.replace(reply, confidence=parse.confidence)
        talked_order = ctx.conv.context.get("order_id")
        if TRACKING_ASKED.search(ctx.text) and parse.intent not in ORDER_INTENTS and isinstance(talked_order, str):
            # "顺丰单号发我下" right after where the sleeping bag's order is (taken for a shipping question):
            # that order's tracking number, not the shop's carriers.
            try:
                order = await ctx.orders.get_order(ctx.inbound.openid, talked_order)
            except OrderSourceError:
                order = None
            if order is not None:
                reply = await ctx.order_action("order_status", order)
                return dataclasses.replace(reply, confidence=parse.confidence)
        named = ctx.named_product()
        if named and parse.confidence < self.config.doubtful and ctx.kb is not None and ctx.kb.names_only(named, ctx.text):
            # "牛奶绒四件套多少" (complaint 0.42): a product's name and "how much" at most, whatever the model
            # was unsure of, asks for its card.
            reply = await ctx.answer_entry("product", named, intent="ask_price")
            return dataclasses.replace(reply, confidence=parse.confidence)
        if ctx.conv.state == conv_store.QUEUED and ctx.conv.handoff_reason == "complaint":
            pending = await self._complaint_pending(ctx, unplaced)
            if pending is not None:
                return dataclasses.replace(pending, confidence=parse.confidence)
        if UNPAID.search(ctx.text) and UNWANTED.search(ctx.text) and not ORDER_ID.search(ctx.text):
            # "我不想要了，还没付款": the shopper's unpaid order (of the product named, if several).
            unpaid = await ctx.order_about_product(("pending_payment",))
            if unpaid is not None:
                reply = await ctx.order_action("cancel_order", unpaid)
                return dataclasses.replace(reply, confidence=parse.confidence)
        if parse.intent in ("cancel_order", "return_refund") and KEEPS_ORDER.search(ctx.text) and ASKS.search(ctx.text):
            # "那不取消了 橙子有点酸咋办": the order stays; what the shopper asks next is a question.
            return await self._misunderstood(ctx)
        if parse.intent == "change_order" and parse.confidence < self.config.doubtful and not CHANGES.search(ctx.text):
            # "要是延迟发货有补偿吗" (change_order 0.44): nothing to change, a question the FAQ may answer.
            return await self._misunderstood(ctx)
        if (
            parse.intent == "order_status"
            and parse.confidence < self.config.doubtful
            and ASKS.search(ctx.text)
            and not ABOUT_DELIVERY.search(ctx.text)
            and not ORDER_ID.search(ctx.text)
        ):
            # "猫条一天喂几根" right after that order (order_status 0.37): nothing of an order is asked; the
            # product's own FAQ entry answers it, if one does.
            product = await ctx.product()
            own = await ctx.about_product(product, faq_only=True) if product is not None else None
            if own is not None:
                return dataclasses.replace(own, intent="product_question", confidence=parse.confidence)
        if (unplaced or parse.intent in NO_BUSINESS) and ORDER_WORDS.search(ctx.text):
            # "破壁机那单签收了吧" (no intent), "砂糖橘那单发了没" (taken for a goodbye): the shopper's order of
            # the product named.
            order = await ctx.order_about_product(named_only=True)
            if order is not None:
                return await ctx.order_action("order_status", order)
        about_order = parse.intent in ORDER_INTENTS and (ORDER_TALK.search(ctx.text) or ORDER_ID.search(ctx.text))
        if not about_order and (parse.intent in PRESALE or parse.intent == "out_of_scope" or unplaced):
            unsold = await ctx.unsold_asked()
            if unsold is not None:
                return dataclasses.replace(unsold, intent=parse.intent, confidence=parse.confidence)
        if ELLIPSIS.search(ctx.text) and not about_order:
            elided = await self._as_before(ctx)
            if elided is not None:
                return dataclasses.replace(elided, confidence=parse.confidence)
        if not about_order and ctx.kb is not None and any(abbreviated_keys(p, ctx.text) for p in ctx.kb.products.values()):
            product = await ctx.product()
            lines = ctx.lines_abbreviated(product) if product is not None else None
            if lines is not None:
                # "读写速度多少" of the drive talked about: its 读取速度 and 写入速度 lines, not an FAQ entry
                # that speaks of 读写.
                return dataclasses.replace(lines, intent="product_question", confidence=parse.confidence)
        covered = ctx.previous_answer_covers() if not about_order else None
        if covered is not None:
            # "能用优惠券一起吗" right after 满减: what that answer says of it, not the coupon entry.
            ctx.restates = True
            reply = await ctx.answer_entry("faq", covered, intent=parse.intent)
            return dataclasses.replace(reply, confidence=parse.confidence)
        if not about_order and PRODUCT_QUESTION.search(ctx.text):
            # "怎么吃", "礼盒里都有啥", "收到有点软正常吗" of the product in context, whatever the model took
            # it for: its own FAQ entry or spec line, when one answers it.
            product = await ctx.product()
            about = await ctx.about_product(product) if product is not None else None
            if about is not None:
                if parse.intent == "complaint":
                    about = dataclasses.replace(about, text=f"{about.text}\n{texts.HUMAN_ON_REQUEST}")
                return dataclasses.replace(about, intent="product_question", confidence=parse.confidence)
        if not about_order and SUBSTITUTE.search(ctx.text):
            substitutes = await self._substitutes(ctx)
            if substitutes is not None:
                return dataclasses.replace(substitutes, confidence=parse.confidence)
        if unplaced:
            return await self._misunderstood(ctx)
        if parse.intent in ("thanks", "goodbye") and ASKS.search(ctx.text):
            # "要我怎么弄" is no thank-you: a question is searched like any the model could not place.
            return await self._misunderstood(ctx)
        if parse.intent in ("thanks", "goodbye") and parse.confidence < self.config.doubtful and self._names_product(ctx):
            # "猕猴桃收到了 硬邦邦的" (thanks 0.46): a doubtful thank-you that names a product says something of it.
            return await self._misunderstood(ctx)
        if parse.intent == "greet" and ASKS.search(ctx.text) and len(NOT_GREETING.sub("", ctx.text)) >= 2:
            # "周末有人吗", "好剥吗": a question beyond the greeting words ("你好 在吗" is a greeting).
            return await self._misunderstood(ctx)
        runner_up = parse.ranking[1] if len(parse.ranking) > 1 else None
        if (
            parse.intent in ("thanks", "goodbye")
            and parse.confidence < SURE_COMPLAINT
            and runner_up
            and runner_up[0] == "complaint"
        ):
            # "这已经不是第一次了" (goodbye 0.57, complaint 0.41): no goodbye the model is sure of, and a
            # complaint is what else it reads as.
            ctx.parse = parse = dataclasses.replace(parse, intent="complaint", confidence=runner_up[1])
        ctx.conv.misunderstandings = 0
        if parse.intent not in PRODUCT_LINES and parse.confidence < self.config.doubtful and ASKS.search(ctx.text):
            # "好剥吗" (greet 0.41), "怎么开" (ask_invoice 0.46) right after a product: a question the
            # model is unsure of, and one of the product's own lines answers it closely.
            about = await ctx.about_context(None)
            if about is not None:
                return dataclasses.replace(about, intent="kb_match", confidence=parse.confidence)
        talk = ORDER_WORDS if parse.intent == "ask_price" else ORDER_TALK  # "我上周买的精华降价了": price protection
        # "那我后来买的蒸汽炸锅发了没" (complaint 0.40): a question about an order, no complaint the model is sure of.
        doubtful_complaint = parse.intent == "complaint" and parse.confidence < DOUBTFUL_COMPLAINT and ASKS.search(ctx.text)
        if (parse.intent in PRESALE or doubtful_complaint) and talk.search(ctx.text):
            # "破壁机那单签收了吧", "我买的蒸汽炸锅发了没": about the shopper's order of that product.
            order = await ctx.order_about_product(named_only=True)
            if order is not None:
                reply = await ctx.order_action("order_status", order)
                return dataclasses.replace(reply, confidence=parse.confidence)
        handler = self.router.handler_for(parse.intent)
        assert handler is not None  # the router has a default (checked when the dialogue is built)
        reply = await handler(ctx)
        if reply.intent is None:
            reply = Reply(reply.text, intent=parse.intent, confidence=parse.confidence)
        return reply

    async def _as_before(self, ctx: TurnContext) -> Reply | None:
        """A follow-up that asks what the message before it asked, of something else: "刷头那个呢" right
        after where an order is (the shopper's order of the 刷头), "开强力档呢" right after the vacuum's
        续航 (the line whose value gives the 强力档)."""
        context = ctx.conv.context
        if context.get("prev_intent") == "order_status":
            order = await ctx.order_about_product(named_only=True)
            if order is not None and order.order_id != context.get("order_id"):
                return await ctx.order_action("order_status", order)
        sku = context.get("sku")
        if ctx.kb is None or not sku or ctx.named_product() is not None:
            return None
        other = ctx.kb.sized_sibling(sku, ctx.text) or ctx.kb.companion_named(sku, ctx.text)
        if other is not None:
            # "那大包的呢" after the 2 kg cat food, "膜呢" after the Mate 70 Pro case: the 10 kg bag, the
            # shop's film for that phone; its card.
            return await ctx.answer_entry("product", other, intent="kb_match")
        key = ctx.kb.value_named(sku, ctx.text)
        product = await ctx.product() if key else None
        if key is None or product is None or product.sku != sku:
            return None
        return dataclasses.replace(spec_line(product, key), intent="kb_match")

    def _names_product(self, ctx: TurnContext) -> bool:
        """Does the message name one of the shop's products by a name or alias?"""
        return ctx.kb is not None and ctx.kb.named_products(ctx.text, ctx.conv.context.get("sku"))[1]

    async def _complaint_pending(self, ctx: TurnContext, unplaced: bool) -> Reply | None:
        """While the shopper waits for a person with a complaint: "怎么处理" or "能补发吗" gets the FAQ's
        rule for what went wrong again, and more detail for the agent ("电池都是新换的") that asks
        nothing the FAQ answers gets the place in line. Other questions are answered as ever."""
        if ORDER_TALK.search(ctx.text) or ORDER_ID.search(ctx.text):
            return None
        if REMEDY.search(ctx.text):
            faq_id = str(ctx.conv.context.get(COMPLAINT_FAQ, ""))
            known = ctx.kb is not None and faq_id in ctx.kb.faqs  # not an entry the shop has removed since
            rule = await ctx.answer_entry("faq", faq_id, intent="complaint") if known else None
        elif not ASKS.search(ctx.text) and (unplaced or ctx.intent in AFTER_SALE):
            # The message alone: with the complaint before it, anything about the product looks answered.
            result = await ctx.search(ctx.text, ctx.conv.context.get("sku"))
            if result is not None and result.decision == ANSWER:
                return None
            rule = None
        else:
            return None
        still = await self._still_waiting(ctx)
        return dataclasses.replace(still, text=f"{rule.text}\n{still.text}") if rule and rule.text else still

    async def _substitutes(self, ctx: TurnContext) -> Reply | None:
        """What else the shop has in stock of the category of the product talked about, if anything."""
        product = await ctx.product()
        others = await ctx.alternatives(product, texts.SUBSTITUTES) if product is not None else ""
        return Reply(others, intent="substitutes") if others else None

    async def _without_nlu(self, ctx: TurnContext) -> Reply:
        """Rasa is down or slow: answer from the knowledge base when sure, else hand off."""
        result = await ctx.search_message()
        if result and result.decision == ANSWER:
            return await ctx.answer_hit(result, intent="kb_only")
        return await ctx.handoff("nlu_unavailable", texts.NLU_DOWN_HANDOFF)

    async def _misunderstood(self, ctx: TurnContext) -> Reply:
        assert ctx.parse is not None
        conv = ctx.conv
        result = await ctx.search_message()
        if result and result.decision == ANSWER:
            conv.misunderstandings = 0
            return await ctx.answer_hit(result, intent="kb_match")
        about = await ctx.about_context(result)
        if about is not None:
            conv.misunderstandings = 0
            return dataclasses.replace(about, intent="kb_match")
        conv.misunderstandings += 1
        if conv.misunderstandings >= self.config.handoff_after_misunderstandings:
            return await ctx.handoff("misunderstood")
        likely = [name for name, _ in ctx.parse.ranking if name not in (FALLBACK, "out_of_scope")][:2]
        if len(likely) < 2:
            return Reply(texts.DONT_KNOW, intent=FALLBACK, confidence=ctx.parse.confidence)
        a, b = (texts.INTENT_MEANINGS.get(x, x) for x in likely)
        return Reply(texts.CLARIFY_INTENT.format(a=a, b=b), intent=FALLBACK, confidence=ctx.parse.confidence)

    async def _pending_choice(self, ctx: TurnContext) -> Reply | None:
        """The shopper answers a question the bot asked: which order, or which entry."""
        context = ctx.conv.context
        text = ctx.text.strip()
        if "pick_orders" in context:
            pick = context.pop("pick_orders")
            ids: list[str] = pick["orders"]
            chosen = None
            if text.isdigit() and 1 <= int(text) <= len(ids):
                chosen = ids[int(text) - 1]
            else:
                match = ORDER_ID.search(text)
                if match and match.group(0) in ids:
                    chosen = match.group(0)
            if chosen:
                order = await ctx.orders.get_order(ctx.inbound.openid, chosen)
                if order:
                    return await ctx.order_action(pick["intent"], order)
        if "choices" in context:
            choices: list[str] = context.pop("choices")
            if text.isdigit() and 1 <= int(text) <= len(choices):
                kind, _, ref = choices[int(text) - 1].partition(":")
                return await ctx.answer_entry(kind, ref, intent="clarified")
        return None


def _digest(text: str) -> str:
    """A short fingerprint of a reply, to tell the same reply given again."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()
