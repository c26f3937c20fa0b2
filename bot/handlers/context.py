"""What every handler receives: one turn's context, with the shop's services behind public methods.

A handler reads the message, the conversation and what the intent model said from the context, and
asks it for products, knowledge-base answers, orders and handoffs; it reaches into nothing else.
Nothing a handler does is written before the turn ends: the conversation middleware saves what the
turn changed (a handoff included) with the reply, in one transaction.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import jieba

from bot import conversations as conv_store
from bot import texts
from bot.conversations import Conversation, Handoff
from bot.dispatch import Reply
from bot.metrics import Metrics
from bot.orders import OrderSource, OrderSourceError
from bot.wechat import Inbound
from intents.client import Parse
from intents.ensemble import FALLBACK_THRESHOLD
from kb import store as kb_store
from kb.hours import BusinessHours
from kb.rerank import LATIN, char_pairs
from kb.search import ANSWER, CLARIFY, KnowledgeBase, SearchResult, abbreviated_keys, named_spec
from kb.store import Order, Product
from kb.units import without_asking
from storage.db import DbRunner

# Real shoppers' messages run to 162 characters (460 JD messages); the encoder reads 256 tokens.
# Cutting at 256 characters leaves accuracy unchanged there (python -m bench text-cap), while Rasa
# takes 2.7 s over 10,000 characters and fails on 100,000, holding up every shopper behind them.
MAX_UNDERSTOOD = 256
ORDER_ID = re.compile(r"(?<![A-Za-z0-9])(?!1[3-9]\d{9}(?!\d))[A-Za-z]{0,4}\d{10,20}(?!\d)")
SKU_IN_PATH = re.compile(r"[?&]sku=([A-Za-z0-9_\-.]+)")
# Words that ask rather than say what about: a follow-up's pairs of characters without them are its topic.
QUESTION_WORDS = re.compile(
    r"怎么|怎样|如何|什么|为什么|为啥|是不是|能不能|可不可以|可以|一般|还是|[吗呢吧啊呀么嘛的了要能是那这]"
)
# A follow-up that asks of what the message before it spoke of with something else ("能跟优惠券一起用吗"
# after "双十二有活动吗").
TOGETHER = re.compile(r"一起|同时|一块|叠加|同享|共用")
# An FAQ entry this close (cosine) behind a product card answers what the message asks beside the
# product's name (TurnContext.faq_asked_beside).
BESIDE_GAP = 0.05
# Asking the price or stock: the card's own business.
PRICE_OR_STOCK = re.compile(r"钱|价|块|元|贵|便宜|货|库存")
# A follow-up's candidate this close to its top entry (cosine) is as likely; the question before it decides.
FOLLOW_UP_GAP = 0.02
# The conversation context's key for the FAQ entry the bot's last reply gave.
PREV_FAQ = "prev_faq"
LISTED = "listed"  # the products the reply before listed
# The conversation context's key for the FAQ entry that answers the shopper's complaint.
COMPLAINT_FAQ = "complaint_faq"
# A shipping note that says itself that the product is out ("暂时缺货，预计12月3日补货"): not said twice.
SAYS_OUT = re.compile(r"^\s*(?:暂时|目前|暂)?(?:缺货|无货|没货|售罄)")
# A message that asks something: no thank-you or goodbye, whatever the intent model says.
ASKS = re.compile(r"怎么|如何|咋|吗|呢|？|\?|多久|多少|多[大重长高宽厚远]|什么|啥|几|哪|能不能|可不可以|是不是|要不要|了没")


# "买的", "收到的", "到的": the shopper speaks of something already bought.
BOUGHT = re.compile(r"买的|收到的|到的|拍的|下单的|订的")
# How many products a "do you have" question lists.
MAX_LISTED = 4
# "能用的支架", "适合iPad的": what the thing asked for must fit, not a make of it.
FITS = re.compile(r"能用|可用|用的|适用|适合|配")
# "有X吗", "有没有X", "卖X吗": is there such a thing in the shop.
AVAILABILITY = re.compile(r"^(?:你们|你家|店里|请问)*(?:有没有|有|卖不卖|卖)(.{2,}?)(?:的)?(?:吗|嘛|么|啊|呀)?[?？]?$")


@dataclass(frozen=True)
class DialogueConfig:
    """Knobs of the conversation policy."""

    confidence: float = FALLBACK_THRESHOLD  # below this NLU confidence the bot asks what was meant
    # Below this the intent is a guess: a question one of the product's own lines answers closely gets
    # that line, whatever the intent (TurnContext.about_context).
    doubtful: float = 0.5
    handoff_after_misunderstandings: int = 2
    minutes_per_case: float = 3.0  # an agent's average handling time, for the expected wait
    low_stock: int = 10
    presale_target_seconds: float = 15.0


@dataclass(frozen=True)
class Services:
    """What a turn may use: the database, the knowledge base, the shopper's orders, the agents' hours."""

    runner: DbRunner
    kb: KnowledgeBase | None
    orders: OrderSource
    hours: BusinessHours
    clock: Callable[[], float]
    metrics: Metrics
    config: DialogueConfig


class TurnContext:
    """One shopper message on its way through the dialogue: the message, its conversation (loaded by the
    conversation middleware), what the intent model said, and the public methods handlers answer with."""

    def __init__(self, inbound: Inbound, services: Services) -> None:
        self.inbound = inbound
        self.services = services
        self.kb = services.kb
        self.orders = services.orders
        self.metrics = services.metrics
        self.config = services.config
        self.conversation: Conversation | None = None
        self.parse: Parse | None = None
        self.parsing: asyncio.Future[Parse] | None = None  # the intent model's call, started before the conversation is read
        # False: the turn leaves what the dialogue remembers as it was (an agent has the conversation,
        # or the shopper waits for the person they asked for).
        self.remember = True
        self.handoff_request: Handoff | None = None  # queued with the reply
        self.handed_off = False
        self.told_place_in_line = False  # the reply says the shopper was put in the queue
        self.faq_answer: str | None = None  # what the FAQ says about a complaint, kept for "you are in line"
        self.answered_faq: str | None = None  # the FAQ entry the reply gives, for the next turn's follow-up
        self.listed: list[str] = []  # the products the reply lists, one of which the next turn may pick
        self.restates = False  # the reply gives the answer before again, on purpose

    @property
    def conv(self) -> Conversation:
        """The shopper's open conversation (a new one not stored yet has id 0)."""
        if self.conversation is None:
            raise RuntimeError("the conversation middleware loads the conversation before any handler runs")
        return self.conversation

    @property
    def text(self) -> str:
        """What the bot reads of the message: its first MAX_UNDERSTOOD characters (all of it is stored)."""
        return self.inbound.text[:MAX_UNDERSTOOD]

    @property
    def intent(self) -> str | None:
        """The intent the model gave the message (None before the parse, or without the model)."""
        return self.parse.intent if self.parse else None

    # ----- the knowledge base -------------------------------------------------------------

    async def search(self, text: str, context_sku: str | None = None) -> SearchResult | None:
        """Knowledge-base search (off the event loop); None without a knowledge base."""
        if self.kb is None:
            return None
        loop = asyncio.get_running_loop()
        kb = self.kb
        return await loop.run_in_executor(None, lambda: kb.search(text, context_sku=context_sku))

    async def search_message(self) -> SearchResult | None:
        """Search for the message; a follow-up that search cannot place alone ("多久能到账" after a
        refund question) is searched again together with the shopper's previous message."""
        context_sku = self.conv.context.get("sku")
        result = await self.search(self.text, context_sku)
        prev = self.conv.context.get("prev")
        if result is None or not prev or prev == self.text:
            return result
        if result.decision == ANSWER and (result.confidence is None or self.named_product() is not None):
            return result  # plain ranking's answer, or a question that names its product, stands alone
        joined = await self.search(f"{prev} {self.text}", context_sku)
        # Only an FAQ entry: the product talked about before is the context's job (TurnContext.product).
        if joined is None or joined.decision != ANSWER or joined.top is None or joined.top.kind != "faq":
            return result
        # The reranker is sure of most questions; the question with the one before it wins when it is surer,
        # unless the follow-up's own entry asks of more of the words the follow-up says ("有满减吗" after
        # "满多少包邮" is about 满减, not 包邮; "一般多久能习惯" shares only 多久 with the shipping entry it finds).
        if result.decision != ANSWER or (
            (joined.confidence or 0.0) > (result.confidence or 0.0)
            and (TOGETHER.search(self.text) or self.words_asked(result) <= self.words_asked(joined))
        ):
            return joined
        # Or when it picks one of the follow-up's own close candidates: "多久能到账" after a refund question
        # is as close to "退款多久到账" as to "发货后几天能收到"; the question before it tells which.
        assert result.top is not None
        if any(hit.label == joined.top.label and result.top.score - hit.score <= FOLLOW_UP_GAP for hit in result.hits[1:3]):
            return joined
        return result

    def faq_asked_beside(self, result: SearchResult, product: Product) -> str | None:
        """Of the FAQ entries close behind a product card search put first, the one whose questions hold a
        pair of characters the message asks beside the product's names and that the product's own words
        lack ("mate70壳用着不错 保修吗": 保修, "保修多久？"), unless it asks the price or stock."""
        assert self.kb is not None and result.top is not None
        rest = self.kb.without_names(product.sku, self.text)
        if not ASKS.search(rest) or PRICE_OR_STOCK.search(rest):
            return None
        own = f"{product.name} {product.description} {' '.join(f'{k}{v}' for k, v in product.specs)}".lower()
        pairs = {p for part in QUESTION_WORDS.sub(" ", rest).split() for p in char_pairs(part) if p not in own}
        for hit in result.hits[1:3]:
            faq = self.kb.faqs.get(hit.ref) if hit.kind == "faq" else None
            if faq is None or result.top.score - hit.score > BESIDE_GAP:
                continue
            about = self.kb.faq_products(faq.id)
            if about and product.sku not in about:
                continue
            asked = " ".join((faq.question, *faq.alt_questions)).lower()
            if any(p in asked for p in pairs):
                return faq.id
        return None

    def previous_answer_covers(self) -> str | None:
        """The FAQ entry just given, when the follow-up asks whether it goes "together with" a thing its
        answer says it goes together with ("能用优惠券一起吗" after 满减: 可以和店铺优惠券叠加)."""
        before = self.conv.context.get(PREV_FAQ)
        faq = self.kb.faqs.get(before) if self.kb is not None and isinstance(before, str) else None
        if faq is None or self.named_product() is not None:
            return None
        answer = faq.answer.lower()
        if TOGETHER.search(self.text) and TOGETHER.search(answer):
            rest = QUESTION_WORDS.sub(" ", TOGETHER.sub(" ", self.text.lower()))
            words = [w.strip() for w in jieba.lcut(rest) if len(w.strip()) >= 2]
            if words and all(w in answer for w in words):
                return faq.id
        return None

    def words_asked(self, result: SearchResult, *, with_answer: bool = False) -> int:
        """How many pairs of the message's own characters (question words aside) its top FAQ entry's
        question or alternative questions (and ``with_answer`` its answer) hold."""
        top = result.top
        faq = self.kb.faqs.get(top.ref) if self.kb is not None and top is not None and top.kind == "faq" else None
        if faq is None:
            return 0
        assert self.kb is not None
        about, talked = self.kb.faq_products(faq.id), self.conv.context.get("sku")
        if about and talked and talked not in about:
            return 0  # an entry about another product than the one talked about ("要卸妆吗" after 儿童防晒)
        asked = " ".join((faq.question, *faq.alt_questions, *((faq.answer,) if with_answer else ()))).lower()
        own = QUESTION_WORDS.sub(" ", without_asking(self.text))
        return sum(1 for pair in {p for part in own.split() for p in char_pairs(part)} if pair in asked)

    async def about_product(self, product: Product, *, faq_only: bool = False, at_least: float | None = None) -> Reply | None:
        """The product's own FAQ entry (or spec line) when one clearly answers the question."""
        if self.kb is None:
            return None
        kb = self.kb
        hit = await asyncio.get_running_loop().run_in_executor(None, kb.about_product, product.sku, self.text, at_least)
        if hit is None or (faq_only and hit.kind != "faq"):
            return None
        if hit.kind == "spec":
            key = hit.ref.split(kb_store.SPEC_SEP, 1)[1]
            before = self.conv.context.get(PREV_FAQ)
            if isinstance(before, str) and kb.restates_asked(before, product.sku, key, self.text):
                # "那平时冲奶设多少度": the entry just given says it for what is asked, the line only its range.
                return await self.answer_entry("faq", before, intent=self.parse.intent if self.parse else "kb")
            return spec_line(product, key)
        return await self.answer_entry("faq", hit.ref, intent=self.parse.intent if self.parse else "kb")

    def spec_asked(self, product: Product) -> Reply | None:
        """The product's one spec line whose key ("保质期多久") or, failing that, whose value ("都是哑光的吗":
        质地 哑光/珠光/亮片) the message names, if one does."""
        named = named_spec(product, self.text)
        key = named[0] if named else (self.kb.value_named(product.sku, self.text) if self.kb else None)
        return spec_line(product, key) if key is not None else None

    def lines_abbreviated(self, product: Product) -> Reply | None:
        """The product's spec lines the message names together by their keys' first characters
        ("读写速度多少": 读取速度 and 写入速度), if it does (kb.search.abbreviated_keys)."""
        keys = abbreviated_keys(product, self.text)
        if not keys:
            return None
        specs = dict(product.specs)
        return Reply(texts.SPECS.format(name=product.name, specs="\n".join(f"· {k}：{specs[k]}" for k in keys)))

    async def complaint_faq(self, product: Product | None, *, at_least: float | None = None) -> Reply | None:
        """The FAQ entry for what the complaint says is wrong (KnowledgeBase.complaint_faq), if one is close."""
        if self.kb is None:
            return None
        kb = self.kb
        sku = product.sku if product else None
        hit = await asyncio.get_running_loop().run_in_executor(None, kb.complaint_faq, sku, self.text, at_least)
        if hit is None:
            return None
        self.conv.context[COMPLAINT_FAQ] = hit.ref  # what a follow-up asking how it is put right gets again
        return await self.answer_entry("faq", hit.ref, intent="complaint")

    async def about_context(self, result: SearchResult | None) -> Reply | None:
        """For a message the intent model could not place: the product it names by name (its card,
        when search agrees), else a line of the product named or talked about that is very close."""
        if self.kb is None:
            return None
        named = self.named_product()
        if named and ((result and result.top and result.top.label == f"sku:{named}") or self.kb.names_only(named, self.text)):
            stating = self.kb.lines_stating_measure(named, self.text)
            if len(stating) == 1:
                # "那遮光帘最高能做多高": the one line stating the measure asked (高度2.7米以内), not the card.
                self.conv.context["sku"] = named
                return spec_line(self.kb.products[named], stating[0])
            return await self.answer_entry("product", named, intent="kb_match")  # "想看看那个可视空气炸锅"
        product = await self.product()
        if product is None:
            return None
        return await self.about_product(product, at_least=self.kb.thresholds.product_followup)

    def named_product(self) -> str | None:
        """The one product the message names by a name or alias, if it names exactly one."""
        if self.kb is None:
            return None
        named, by_name = self.kb.named_products(self.text, self.conv.context.get("sku"))
        return named[0] if by_name and len(named) == 1 else None

    async def product(self) -> Product | None:
        """The product the message is about: named in it, or the one talked about before."""
        candidates: list[str] = []
        context_sku = self.conv.context.get("sku")
        if self.kb:
            # A name or alias in the whole message ("防晒喷雾") beats the entity Rasa marked ("防晒"),
            # which beats a single word of a name.
            candidates, by_name = self.kb.named_products(self.text, context_sku)
            if by_name and context_sku and context_sku not in candidates and self.kb.names_a_spec_of(context_sku, self.text):
                candidates = []  # "带防晒吗" after the foundation asks for its 防晒指数, not for the sunscreen
            if by_name and context_sku and context_sku not in candidates and self.kb.names_only_companions(self.text):
                candidates = []  # "能和维C水一起用吗" right after the niacinamide essence asks about the essence
            if by_name and context_sku and context_sku not in candidates and self.kb.names_only_used_with(context_sku, self.text):
                candidates = []  # "能用豆腐砂吗" right after the litter box asks which litter the box takes
            entity = self.parse.entity("product") if self.parse else None
            if entity and not by_name:
                candidates = self.kb.mentioned_products(entity, context_sku) or candidates
            described = self.kb.described(self.text) if not by_name else None
            if described is not None:
                candidates = [described]  # "口红那个有苹果接口吗": the power bank described as 口红大小
        if context_sku and not candidates and self.kb:
            # "有没有大瓶一点的", "那二段的有吗", "大包的有吗": no name, but a variant of the product talked
            # about; "还有膜吗" after the Mate 70 Pro case: the shop's film that goes with it.
            sibling = (
                self.kb.amount_named(context_sku, self.text)
                or self.kb.sibling_named(context_sku, self.text)
                or self.kb.sized_sibling(context_sku, self.text)
                or self.kb.companion_named(context_sku, self.text)
            )
            candidates = [sibling] if sibling else []
        if not candidates and self.kb and BOUGHT.search(self.text):
            # "买的128g卡怎么只有119g啊" while the earphones are talked about: of the shopper's orders, the
            # one the message names a part of.
            try:
                bought = [o.sku for o in await self.orders.orders_of(self.inbound.openid)]
            except OrderSourceError:
                bought = []
            candidates = self.kb.named_among(self.text, bought) if bought else []
        listed = self.conv.context.get(LISTED)
        among = self.kb.named_among(self.text, listed) if self.kb and isinstance(listed, list) else []
        if among:
            candidates = among  # "硅胶的有45mm吗" right after the two watch bands listed: the silicone one
        before = self.conv.context.get(PREV_FAQ)
        if not candidates and self.kb and isinstance(before, str):
            # "那256g的吧 多少钱" right after the entry on which memory cards work in a Switch: of the
            # products that entry is about, the one the message names a part of.
            candidates = self.kb.named_among(self.text, sorted(self.kb.faq_products(before)))
        if context_sku and (not candidates or context_sku in candidates):
            # "座椅本身多重" names both seats; the one being talked about is meant.
            candidates = [context_sku]
        if not candidates and self.conv.context.get("order_sku"):
            candidates = [self.conv.context["order_sku"]]  # the product of the order talked about
        if not candidates:
            # "收到了怎么用": a shopper who bought one product is asking about it.
            try:
                only = {o.sku for o in await self.orders.orders_of(self.inbound.openid)}
            except OrderSourceError:
                only = set()
            candidates = list(only) if len(only) == 1 else []
        for sku in candidates:
            product = await self.services.runner.run(kb_store.get_product, sku)
            if product:
                self.conv.context["sku"] = product.sku
                return product
        return None

    def entry_title(self, kind: str, ref: str) -> str:
        """How a knowledge-base entry is named to the shopper: the FAQ question or the product name."""
        assert self.kb is not None
        if kind == "faq":
            return self.kb.faqs[ref].question if ref in self.kb.faqs else ref
        return self.kb.products[ref].name if ref in self.kb.products else ref

    async def answer_hit(self, result: SearchResult, intent: str) -> Reply:
        """The answer of the search's top entry."""
        top = result.top
        assert top is not None
        return await self.answer_entry(top.kind, top.ref, intent=intent)

    async def answer_entry(self, kind: str, ref: str, intent: str) -> Reply:
        """An FAQ entry's answer, or a product's price line; the product becomes the one talked about."""
        runner = self.services.runner
        if kind == "faq":
            faq = await runner.run(kb_store.get_faq, ref)
            if faq:
                if faq.sku:
                    self.conv.context["sku"] = faq.sku
                self.answered_faq = faq.id
                return Reply(faq.answer, intent=intent)
        else:
            product = await runner.run(kb_store.get_product, ref)
            if product:
                self.conv.context["sku"] = product.sku
                return Reply(await self.price_text(product), intent=intent)
        return Reply(texts.DONT_KNOW, intent=intent)

    async def answer_from_kb(self) -> Reply:
        """Policy and how-to questions: the FAQ entry search finds, or a clarifying question."""
        return await self.answer_result(await self.search_message())

    async def answer_result(self, result: SearchResult | None) -> Reply:
        """The reply to the message's search result (answer_from_kb, for a handler that searched already)."""
        if result is None or result.top is None:
            return Reply(texts.DONT_KNOW)
        if result.decision == ANSWER:
            if self.asks_for_unsold(result):
                return Reply(texts.NOT_CARRIED)
            top = result.top
            product = await self.services.runner.run(kb_store.get_product, top.ref) if top.kind == "product" else None
            line = self.spec_asked(product) if product is not None else None
            if line is not None:
                self.conv.context["sku"] = product.sku  # type: ignore[union-attr]
                return line  # "送猫薄荷吗" of the scratcher: its 附赠 line, not its price
            beside = self.faq_asked_beside(result, product) if product is not None else None
            if beside is not None and product is not None:
                # "mate70壳用着不错 保修吗": the product is named, the warranty entry is what is asked.
                self.conv.context["sku"] = product.sku
                return await self.answer_entry("faq", beside, intent=self.parse.intent if self.parse else "kb")
            return await self.answer_hit(result, intent=self.parse.intent if self.parse else "kb")
        if result.decision == CLARIFY and len(result.hits) >= 2:
            first, second = result.hits[0], result.hits[1]
            self.conv.context["choices"] = [
                first.label.replace("sku:", "product:"),
                second.label.replace("sku:", "product:"),
            ]
            return Reply(
                texts.CLARIFY_ENTRIES.format(
                    a=self.entry_title(first.kind, first.ref), b=self.entry_title(second.kind, second.ref)
                )
            )
        if self.asks_for_a_thing_unnamed():
            return Reply(texts.NOT_CARRIED)  # "有switch手柄吗" that nothing in the shop answers
        self.conv.misunderstandings += 1
        return Reply(texts.DONT_KNOW)

    def asks_for_a_thing_unnamed(self) -> bool:
        """Does the message ask whether the shop has a thing ("有X吗") while no product is named or talked about?"""
        if AVAILABILITY.match(self.text.strip().lower()) is None or self.kb is None:
            return False
        return not self.conv.context.get("sku") and not self.kb.named_products(self.text)[0]

    def asks_for_unsold(self, result: SearchResult) -> bool:
        """Does the message ask whether the shop has a thing ("有switch手柄吗", "你们有iPad的壳吗") that
        no product names and the FAQ entry found does not speak of, word for word?"""
        asked = AVAILABILITY.match(self.text.strip().lower())
        if asked is None or self.kb is None or result.top is None or result.top.kind != "faq":
            return False
        if self.conv.context.get("sku") or self.kb.named_products(self.text)[0]:
            return False
        faq = self.kb.faqs.get(result.top.ref)
        if faq is None:
            return False
        said = " ".join((faq.question, *faq.alt_questions, faq.answer)).lower()
        words = [w.strip() for w in jieba.lcut(asked.group(1)) if len(w.strip()) >= 2]
        # Spoken of with a few characters between its own: "满减" in "满199减20", "包邮" in "满99元包邮".
        return bool(words) and any(re.search(".{0,6}".join(map(re.escape, word)), said) is None for word in words)

    async def unsold_asked(self) -> Reply | None:
        """The shopper asks for a make or a thing that nothing of the shop's speaks of ("有没有安克的充电宝",
        "你们有iPad的壳吗"): it has none, and which products of the kind named it has instead."""
        asked = AVAILABILITY.match(self.text.strip().lower())
        if asked is None or self.kb is None or FITS.search(asked.group(1)):
            return None
        unknown = self.kb.unknown_names(asked.group(1))
        named = self.kb.named_products(asked.group(1))[0] or [
            p.sku for p in self.kb.products.values() if p.category and p.category.lower() in asked.group(1)
        ]
        if not unknown and len(named) >= 2 and not self.conv.context.get("sku"):
            # "有apple watch表带吗": the shop has several; which ones.
            self.listed = named[:MAX_LISTED]
            products = [self.kb.products[sku] for sku in self.listed]
            return Reply(texts.WE_HAVE.format(items="、".join(f"【{p.name}】¥{p.price}" for p in products)))
        # A Chinese word the shop does not use may be the shopper's own for what it sells ("狗绳" for its
        # 牵引绳): only a make of a kind it sells ("安克的充电宝") or a Latin name ("iPad") is known absent.
        if not unknown or not (named or any(LATIN.fullmatch(w) for w in unknown)):
            return None
        text = texts.NOT_CARRIED_NAMED.format(thing=asked.group(1))
        product = self.kb.products.get(named[0]) if named else None
        if product is not None:
            kind = await self.services.runner.run(kb_store.in_stock_alternatives, product.category, "")
            if kind:
                items = "、".join(f"【{p.name}】¥{p.price}" for p in kind)
                return Reply(text + texts.OURS_OF_KIND.format(category=product.category, items=items))
        return Reply(text + texts.NOT_CARRIED_ASK)

    def faq_about_other(self, result: SearchResult, product: Product) -> bool:
        """Is the top FAQ entry about a different product than the one asked about?"""
        assert self.kb is not None and result.top is not None
        about = self.kb.faq_products(result.top.ref)  # its sku column, or the products its question names
        return bool(about) and product.sku not in about

    # ----- products -------------------------------------------------------------

    def stock_text(self, product: Product) -> str:
        """In stock (how many, when it ships), low, or out."""
        shipping = product.shipping or texts.SHIPS_SOON
        if product.stock <= 0:
            # When it is back, if the shop says ("预售，11月28日起陆续发货", "本产季已售罄，明年5月下旬补货").
            if not product.shipping:
                return texts.STOCK_OUT_SHORT
            out = texts.STOCK_OUT_UNTIL_SAID if SAYS_OUT.search(product.shipping) else texts.STOCK_OUT_UNTIL
            return out.format(shipping=product.shipping)
        if product.stock <= self.config.low_stock:
            return texts.STOCK_LOW.format(stock=product.stock, shipping=shipping)
        return texts.STOCK_IN.format(stock=product.stock, shipping=shipping)

    async def price_text(self, product: Product) -> str:
        """The product's price and stock line; out of stock, with alternatives."""
        text = texts.PRICE.format(name=product.name, price=product.price, stock=self.stock_text(product))
        if product.stock <= 0:
            text += await self.alternatives(product)
        return text

    async def alternatives(self, product: Product, template: str = texts.ALTERNATIVES) -> str:
        """Products of the same category in stock ("" if none), listed in ``template``."""
        others = await self.services.runner.run(kb_store.in_stock_alternatives, product.category, product.sku)
        if not others:
            return ""
        items = "、".join(f"【{p.name}】¥{p.price}" for p in others)
        return template.format(name=product.name, items=items)

    async def product_card(self) -> Reply:
        """A product card the shopper sent: the product's price and stock."""
        sku = None
        if self.inbound.product_hint:
            match = SKU_IN_PATH.search(self.inbound.product_hint)
            sku = match.group(1) if match else None
        if not sku and self.kb:
            found = self.kb.mentioned_products(self.text)
            sku = found[0] if found else None
        product = await self.services.runner.run(kb_store.get_product, sku) if sku else None
        if product is None:
            return Reply(texts.WHICH_PRODUCT, intent="product_card")
        self.conv.context["sku"] = product.sku
        text = texts.PRODUCT_CARD.format(name=product.name, price=product.price, stock=self.stock_text(product))
        return Reply(text, intent="product_card")

    # ----- orders -------------------------------------------------------------

    async def mentioned_order(self) -> Order | None:
        """The shopper's order whose id the message gives."""
        ids = [self.parse.entity("order_id")] if self.parse and self.parse.entity("order_id") else []
        match = ORDER_ID.search(self.text)
        if match:
            ids.append(match.group(0))
        for order_id in ids:
            if order_id:
                order = await self.orders.get_order(self.inbound.openid, order_id)
                if order:
                    return order
        return None

    async def order_about_product(self, states: tuple[str, ...] = (), *, named_only: bool = False) -> Order | None:
        """The one order (in the given states) of the product the message names; with no product named,
        the shopper's only such order (or None when ``named_only``). The newest when several orders are
        of that one product."""
        try:
            orders = [o for o in await self.orders.orders_of(self.inbound.openid) if not states or o.status in states]
        except OrderSourceError:
            return None
        named = self.kb.mentioned_products(self.text, self.conv.context.get("sku")) if self.kb else []
        if not named and self.kb:
            # "吹风机那单呢": a word that names no product of the shop may still name one of the shopper's orders.
            named = self.kb.named_among(self.text, [o.sku for o in orders])
        if named_only and not named:
            return None
        if named:  # "眼影盘也想退" is not about the face mask being refunded
            mine = [o for o in orders if o.sku in named]
            if not mine and self.kb:
                # "我那四件浴袍到哪了": a word the shop's three bathrobes share, of which the shopper ordered one.
                among = self.kb.named_among(self.text, [o.sku for o in orders])
                mine = [o for o in orders if o.sku in among]
            orders = mine
            if len({o.sku for o in orders}) == 1:
                return orders[0]
        return orders[0] if len(orders) == 1 else None

    async def order_action(self, intent: str, order: Order) -> Reply:
        """What to say (and do) about one of the shopper's orders; with no product talked about, its
        product is the one a follow-up means ("水杨酸那个到哪了", then "收到了怎么用")."""
        self.conv.context["order_id"] = order.order_id
        self.conv.context["order_sku"] = order.sku
        product = await self.services.runner.run(kb_store.get_product, order.sku)
        name = product.name if product else order.sku
        fields = {
            "order_id": order.order_id,
            "name": name,
            "quantity": order.quantity,
            "carrier": order.carrier or texts.CARRIER_UNKNOWN,
            "tracking_no": order.tracking_no or texts.TRACKING_NONE,
            "shipping": (product.shipping if product and product.shipping else texts.SHIPS_WITHIN_48_HOURS),
            "status": kb_store.ORDER_STATES.get(order.status, order.status),
        }
        if intent == "order_status":
            template = texts.ORDER_STATUS.get(order.status, texts.ORDER_STATUS["paid"])
            return Reply(template.format(**fields), intent=intent)
        shipped = order.status in ("shipped", "delivered")
        if intent == "change_order":
            if order.status in ("pending_payment", "paid"):
                await self.handoff(f"change_order:{order.order_id}", quiet=True)
                return Reply(texts.CHANGE_TASK.format(**fields), intent=intent)
            if shipped:
                return Reply(texts.CHANGE_SHIPPED.format(**fields), intent=intent)
            return Reply(texts.CHANGE_CLOSED.format(**fields), intent=intent)
        if order.status == "pending_payment":
            # Nothing to refund and nobody needed: the shop's own rule for unpaid orders, if its FAQ has one.
            result = await self.search_message()
            rule = await self.answer_hit(result, intent=intent) if result and result.decision == ANSWER else None
            text = texts.CANCEL_UNPAID.format(**fields)
            return Reply(f"{text}\n{rule.text}" if rule and rule.text else text, intent=intent)
        if order.status == "paid":
            await self.handoff(f"cancel_order:{order.order_id}", quiet=True)
            return Reply(texts.CANCEL_TASK.format(**fields), intent=intent)
        if shipped:
            return Reply(texts.CANCEL_SHIPPED.format(**fields), intent=intent)
        return Reply(texts.CANCEL_DONE.format(**fields), intent=intent)

    # ----- people -------------------------------------------------------------

    async def queue_position(self) -> int:
        """Where the (queued) conversation stands in the agents' queue (1 = next)."""
        return await self.services.runner.run(conv_store.queue_position, self.conv.id)

    async def handoff(self, reason: str, prefix: str | None = None, *, quiet: bool = False) -> Reply:
        """Queue the conversation for an agent and tell the shopper where they stand."""
        services = self.services
        now = services.clock()
        # Queued with the reply (TurnRecord.handoff); a second handoff in one turn keeps the first's place.
        at = self.handoff_request.at if self.handoff_request else now
        self.handoff_request = Handoff(reason, at)
        position = await services.runner.run(conv_store.handoff_position, self.conv.id, at)
        self.conv.state = conv_store.QUEUED
        self.handed_off = True
        self.metrics.errors.labels(kind=f"handoff_{reason.split(':')[0]}").inc()
        if quiet:
            return Reply(None, intent="handoff")
        self.told_place_in_line = True
        hours = services.hours
        if hours.is_open(now):
            ahead = max(0, position - 1)
            if ahead == 0:
                text = texts.HANDOFF_NEXT
            else:
                text = texts.HANDOFF_QUEUED.format(ahead=ahead, minutes=math.ceil(ahead * self.config.minutes_per_case))
        else:
            back = hours.next_open(now)
            text = texts.HANDOFF_CLOSED_HOURS.format(hours=hours.describe(), back=_when(back, now, hours))
        if prefix:
            text = prefix + "\n" + text
        return Reply(
            text,
            intent="handoff" if self.parse is None else self.parse.intent,
            confidence=self.parse.confidence if self.parse else None,
        )


def spec_line(product: Product, key: str) -> Reply:
    """The reply that gives one spec line of the product ("【…】容量：20000mAh。")."""
    return Reply(texts.SPEC_ONE.format(name=product.name, key=key, value=dict(product.specs)[key]))


def _when(moment: datetime | None, now: float, hours: BusinessHours) -> str:
    if moment is None:
        return texts.WORKDAY
    today = datetime.fromtimestamp(now, hours.tz).date()
    days = (moment.date() - today).days
    day = (
        texts.TODAY if days == 0 else texts.TOMORROW if days == 1 else texts.MONTH_DAY.format(month=moment.month, day=moment.day)
    )
    return f"{day} {moment:%H:%M}"
