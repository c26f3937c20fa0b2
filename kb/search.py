"""Knowledge-base search: FAQ entries and products ranked for a shopper's question."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import jieba
import numpy as np
from jieba import posseg

from kb import rerank, store
from kb.encoder import Encoder
from kb.rerank import CANDIDATES, LATIN, Reranker, char_pairs, decision_values
from kb.store import Faq, Product
from kb.units import DURATIONS, asked_units, asks_per_piece, stated_units, states_unit, without_asking
from storage.db import DbRunner, Store

logger = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)

ANSWER, CLARIFY, UNKNOWN = "answer", "clarify", "unknown"


@dataclass(frozen=True)
class Thresholds:
    """Search knobs. The reranker's weights and its confidence model are fitted across every dev shop by
    ``python -m bench.tune_kb`` (kb/rerank.py); the cosine lines below serve plain ranking (another
    embedding model than the reranker was fitted with, and the baseline ``make bench`` prints)."""

    # The reranker's confidence (kb.rerank.Reranker.confidence): at or above answer_confidence
    # answer; from clarify_confidence ask which entry was meant; below, don't know.
    answer_confidence: float = 0.5
    clarify_confidence: float = 0.5
    # Plain cosine ranking (tuned across shops before the reranker; kept for the fallback and baseline).
    answer: float = 0.925  # top score at or above: answer
    clarify: float = 0.905  # between clarify and answer: ask which one was meant; below: don't know
    margin: float = 0.01  # an answer also needs this lead over the runner-up of another entry
    product_answer: float = 0.86  # a product's own FAQ entry or spec line this close answers a question about it
    spec_key_bonus: float = 0.02  # a spec line whose key shares a character with the question
    # A message the intent model could not place, with a product in context: its own FAQ entry or spec
    # line this close is the answer ("尘杯多大" after the vacuum cleaner). Turns right on the four dev shops
    # were equal at 0.88-0.92 but for fresh (0.808 / 0.799 / 0.795; worst shop 0.804 / 0.799 / 0.795);
    # 0.90 stays above the non-questions probed (尽快给我处理 scored 0.895 against a seat's 适用年龄).
    product_followup: float = 0.90


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    kind: str  # "faq" or "product"
    ref: str
    score: float

    @property
    def label(self) -> str:
        """``faq:ID`` or ``sku:SKU``, the form evaluation files use."""
        return f"faq:{self.ref}" if self.kind == "faq" else f"sku:{self.ref}"


@dataclass(frozen=True)
class Candidate:
    """An entry dense search proposes, with the reranker's features (kb.rerank.FEATURES but ptype,
    which needs the wording model)."""

    kind: str
    ref: str
    cosine: float
    features: dict[str, float]

    @property
    def label(self) -> str:
        return f"faq:{self.ref}" if self.kind == "faq" else f"sku:{self.ref}"


@dataclass(frozen=True)
class Entries:
    """Per FAQ entry or product: which rows of the matrix stand for it and its texts' character pairs."""

    keys: list[tuple[str, str]]
    doc_entry: np.ndarray  # matrix row -> entry index
    doc_title: np.ndarray  # matrix row is a title (FAQ question or alternative, product name or alias)
    text: list[str]  # every text of the entry, lower case
    models: list[str]  # the same with model numbers' hyphens dropped (squeeze_models), for the Latin tokens
    pairs: list[set[str]]
    title_pairs: list[set[str]]
    faq_sku: list[str | None]

    @classmethod
    def build(cls, docs: list[store.Doc], faqs: dict[str, Faq]) -> Entries:
        keys: list[tuple[str, str]] = []
        index: dict[tuple[str, str], int] = {}
        texts: list[list[str]] = []
        titles: list[list[str]] = []
        doc_entry, doc_title = [], []
        for d in docs:
            if d.kind == "spec":
                key, title = ("product", d.ref.split(store.SPEC_SEP, 1)[0]), False
            elif d.kind == "product":
                key, title = ("product", d.ref), True
            else:
                faq = faqs[d.ref]
                key, title = ("faq", d.ref), d.text != f"{faq.question} {faq.answer}"
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
                texts.append([])
                titles.append([])
            doc_entry.append(index[key])
            doc_title.append(title)
            texts[index[key]].append(d.text)
            if title:
                titles[index[key]].append(d.text)
        joined = [" ".join(t).lower() for t in texts]
        return cls(
            keys=keys,
            doc_entry=np.asarray(doc_entry, dtype=np.int64),
            doc_title=np.asarray(doc_title, dtype=bool),
            text=joined,
            models=[squeeze_models(t) for t in joined],
            pairs=[char_pairs(t) for t in joined],
            title_pairs=[char_pairs(" ".join(t)) for t in titles],
            faq_sku=[faqs[ref].sku or None if kind == "faq" else None for kind, ref in keys],
        )


@dataclass(frozen=True)
class SearchResult:
    """Ranked hits, the products the question names, and what to do with it."""

    hits: tuple[Hit, ...]
    mentioned: tuple[str, ...]
    decision: str
    confidence: float | None = None  # the reranker's (None under plain ranking)

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None


_LATIN = re.compile(r"[A-Za-z0-9]+")
# A hyphen inside a model number, which shoppers leave out ("RC-40IH" typed "rc40ih"); a letter on one side
# at least, for a hyphen between numbers is a range ("3-12岁").
_MODEL_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z0-9])|(?<=[0-9])-(?=[a-z])")


def squeeze_models(text: str) -> str:
    """The text (lower case) with the hyphens inside model numbers dropped: "sm-12" -> "sm12", "3-12" kept."""
    return _MODEL_HYPHEN.sub("", text)


# A product named right after 和 / 跟 / 与 / 配 is what goes with the one asked about.
_WITH = re.compile(r"(?:和|跟|与|同|配|搭配|混)\s*$")
# A product named right after "能用" / "可以装" / "送" is what the one talked about is used with or comes with.
_USE = re.compile(r"(?:用|装|放|配|接|连|插|送|赠|附带|带)\s*$")
_NUMBER = re.compile(r"[0-9.]+")
_OPTION_SEP = re.compile(r"[/、|，,]")


def _options(value: str) -> list[str]:
    """The choices a spec value lists (黑色/藏青/卡其, S/M/L/XL)."""
    return [o.strip() for o in _OPTION_SEP.split(value) if o.strip()]


# "甜吗", "甜不甜", "硬不硬": a yes-or-no question about a quality names the key of its degree (甜度).
_QUALITY = re.compile(r"([\u4e00-\u9fff])(?:吗|嘛|么|不\1)")


def named_spec(product: Product, text: str) -> tuple[str, str] | None:
    """The product's spec line whose key the text names (the longest key wins), else the line of the
    degree of the quality the text asks about ("甜吗": 甜度), else None."""
    found = next((kv for kv in sorted(product.specs, key=lambda kv: -len(kv[0])) if kv[0] in text), None)
    if found is None:
        qualities = {m.group(1) for m in _QUALITY.finditer(text)}
        found = next((kv for kv in product.specs if len(kv[0]) == 2 and kv[0][1] == "度" and kv[0][0] in qualities), None)
    if found is None:
        heads = _key_heads(product)
        by_head = [kv for kv in product.specs if kv[0] in heads and heads[kv[0]] in text]
        found = by_head[0] if len(by_head) == 1 else None
    return found


def _key_heads(product: Product) -> dict[str, str]:
    """Each spec key's part before the ending it shares with another key of the product, when two
    characters or more ("极限温度" beside "舒适温度": 极限), what a follow-up names it by ("极限呢")."""
    keys = [key for key, _ in product.specs]
    heads: dict[str, str] = {}
    for key in keys:
        for other in keys:
            shared = 0
            while other != key and shared < min(len(key), len(other)) and key[-1 - shared] == other[-1 - shared]:
                shared += 1
            if shared and len(key) - shared >= 2:
                heads[key] = key[: len(key) - shared]
    return heads


def abbreviated_keys(product: Product, text: str) -> list[str]:
    """The product's spec keys a question names together by their first characters ("读写速度": 读取速度
    and 写入速度, "长宽高多少": 长度, 宽度, 高度), when it names no key whole: a run of two or more
    characters, each the first of a different key, followed by the tail those keys share, or a run of
    three without it."""
    if named_spec(product, text) is not None:
        return []
    firsts: dict[str, list[str]] = {}
    for key, _ in product.specs:
        if len(key) >= 2:
            firsts.setdefault(key[0], []).append(key)
    lowered = text.lower()
    for start in range(len(lowered)):
        end = start
        while end < len(lowered) and len(firsts.get(lowered[end], [])) == 1 and lowered[end] not in lowered[start:end]:
            end += 1
        if end - start < 2:
            continue
        keys = [firsts[c][0] for c in lowered[start:end]]
        tail = keys[0]
        while tail and not all(k.endswith(tail) for k in keys):
            tail = tail[1:]
        if (tail and len(tail) < min(len(k) for k in keys) and lowered.startswith(tail, end)) or end - start >= 3:
            return keys
    return []


# A name word found in more than this share of the shop's other texts (FAQ entries, other products'
# descriptions and specs) is the shop's everyday vocabulary, not a name: 宝宝 in a baby shop (0.15 of
# its texts) as against 推车 0.05, 洗地机 0.04, 防晒 0.10 in the four shops measured.
GENERIC_SHARE = 0.12
# A spec line whose value states the quantity the question asks for scores this much more among a
# product's own lines (kb.units): a count or measure ("一箱几根": "10根"), or less, since a product has
# several, a duration ("能放多久": "冷藏7-10天", but "敷多久" is the FAQ's 15-20 minutes, not 保质期 3年).
UNIT_BONUS = 0.05
# Two products of one category whose names share at least this share of their character pairs (of the
# shorter name) are variants of one another: 30ml and 50ml 大瓶装 of one essence 0.85, 贝乐滋 2段 and 3段
# 0.67, 脐橙 5斤 and 10斤 0.53, against 0.07 or less for other products of a category in the dev shops.
SIBLING_NAME = 0.5
DURATION_BONUS = 0.03
# How far below the best spec line an FAQ entry sharing more of a duration question's words may score
# and still answer it (KnowledgeBase._faq_asking_as).
FAQ_WORDS_GAP = 0.05


# What a message that only names a product may hold besides the name: particles, punctuation, "这个".
_FILLER = re.compile(r"[\s的吗呢啊呀吧么嘛哦哈亲～~?？!！,，。.、]|这个|那个|这款|那款")
# "那膜呢", "还有膜吗": words that lead a follow-up on to something else.
_LEAD = re.compile(r"^(?:那还有|那再|还有|那|再)?(?:有没有|有)?")
# Characters that ask rather than say what is asked about ("刀头能洗吗": 洗 is what is asked).
_ASKING_CHARS = re.compile(r"怎么|怎样|如何|什么|为什么|为啥|[吗呢吧啊呀么嘛的了能会可以是不有没要多少几哪啥这那个吧\s\W\d]")
# Where a description's clauses end.
_CLAUSE = re.compile(r"[，。；！？,;!?]")
# "带防晒吗", "有没有送充电头": the verb that asks whether it comes with something, not a word of the thing.
_COMES_WITH = re.compile(r"(?:^|(?<=\s))(?:是不是|有没有|带不带|含不含|送不送|自带|带|有|含|送|配)")
# "口红那个", "带灯的那款": a product pointed at by what it is like.
_POINTING = re.compile(r"([\u4e00-\u9fff]{2,8}?)的?(?:那个|那款|那种|那只|那台|那支|那件)")
_NOT_LIKE = re.compile(r"便宜|贵|最|刚才|刚刚|上面|前面|之前|后面|说的|推荐|第|这|那|哪|一样")
# "大包的", "小一点的", "大瓶装": a bigger or smaller one of the same product, nothing else asked.
_SIZE_ASKED = re.compile(r"(大|小)(?:一点|一些|点|些)?(?:包|袋|瓶|罐|盒|桶|箱|支|份|容量|规格|分量|份量)?装?(?:一点|一些|点|些)?")
# An amount in a product's name ("2kg", "500毫升") and its size in grams, millilitres or millimetres.
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*(千克|公斤|kg|克|g|斤|毫升|ml|升|l|厘米|cm|毫米|mm)(?![a-z])")
_AMOUNT_SCALE = {
    "千克": (1000.0, "g"),
    "公斤": (1000.0, "g"),
    "kg": (1000.0, "g"),
    "克": (1.0, "g"),
    "g": (1.0, "g"),
    "斤": (500.0, "g"),
    "毫升": (1.0, "ml"),
    "ml": (1.0, "ml"),
    "升": (1000.0, "ml"),
    "l": (1000.0, "ml"),
    "厘米": (10.0, "mm"),
    "cm": (10.0, "mm"),
    "毫米": (1.0, "mm"),
    "mm": (1.0, "mm"),
}
# ... and "how much" at most: the product's card (price and stock) answers it.
_PRICE_ONLY = frozenset(("", "多少", "多少钱", "啥价", "什么价", "价格", "价钱", "怎么卖", "咋卖"))


# Amounts a shopper types, figures or Chinese numerals before a unit or 人 ("8mm的", "那三人的呢", "两升的"),
# and the same in a product's name or spec values ("云栖3 三人帐篷", "1.8m床"), scaled to one unit each.
_NUMERALS = {"一": 1.0, "单": 1.0, "二": 2.0, "两": 2.0, "双": 2.0, "三": 3.0, "四": 4.0, "五": 5.0, "六": 6.0}
_AMOUNTS = re.compile(
    r"(\d+(?:\.\d+)?|[一单二两双三四五六])\s*(千克|公斤|kg|克|g|斤|毫升|ml|升|l|厘米|cm|毫米|mm|米|m|人)(?![a-z])"
)
_AMOUNTS_SCALE = {**_AMOUNT_SCALE, "米": (1000.0, "mm"), "m": (1000.0, "mm"), "人": (1.0, "人")}


def _amounts(text: str) -> frozenset[tuple[float, str]]:
    """Every amount the text gives, scaled ("三人": 3 人, "1.8m": 1800 mm)."""
    found = set()
    for figure, unit in _AMOUNTS.findall(text.lower()):
        scale, base = _AMOUNTS_SCALE[unit]
        found.add((round((_NUMERALS.get(figure) or float(figure)) * scale, 3), base))
    return frozenset(found)


def _amount(name: str) -> tuple[float, str] | None:
    """The first amount a product's name gives, in grams, millilitres or millimetres ("10kg家庭装": 10000 g)."""
    match = _AMOUNT.search(name.lower())
    if match is None:
        return None
    scale, unit = _AMOUNT_SCALE[match.group(2)]
    return float(match.group(1)) * scale, unit


def _cjk_pairs(text: str) -> set[str]:
    """The text's pairs of adjacent Chinese characters."""
    return {text[i : i + 2] for i in range(len(text) - 1) if all("\u4e00" <= c <= "\u9fff" for c in text[i : i + 2])}


def _naming_words(products: list[Product], faqs: list[Faq]) -> dict[str, set[str]]:
    """Words of product names that point at one or two products when a question uses them alone."""
    word_skus: dict[str, set[str]] = {}
    for p in products:
        for word in jieba.lcut(p.name):
            word = word.strip().lower()
            if len(word) >= 2 and not _LATIN.fullmatch(word) and not _NUMBER.fullmatch(word):
                word_skus.setdefault(word, set()).add(p.sku)
    # A word shared by many names (款, 套装, 礼盒 …) names no product in particular.
    word_skus = {w: s for w, s in word_skus.items() if len(s) <= 2}
    texts = [(f.sku, f"{f.question} {f.answer}".lower()) for f in faqs]
    texts += [(p.sku, _details(p)) for p in products]
    if not texts:
        return word_skus
    limit = GENERIC_SHARE * len(texts)
    return {w: s for w, s in word_skus.items() if sum(1 for sku, t in texts if sku not in s and w in t) <= limit}


def _words_cut(text: str, naming: Iterable[str]) -> list[str]:
    """jieba's words of the text, and the naming words that jieba's cut runs across: one that starts
    where a word starts and ends inside a later one ("表带到了吗" is cut 表 / 带到, and 表带 names the
    watch bands). A naming word inside a longer word ("充电" in 充电宝) stays unnamed, as jieba reads it."""
    words = jieba.lcut(text)
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word))
    inside = set(starts)
    held = [name for name in naming if name in text]
    across = [
        name
        for i, start in enumerate(starts[:-1])
        for name in held
        if text.startswith(name, start) and start + len(name) not in inside and len(name) > len(words[i])
    ]
    return [w.strip() for w in words] + across


def _shop_terms(products: list[Product]) -> set[tuple[str, str]]:
    """(term, sku) for every product's naming strings (_terms), but a name's first segment that another
    product's name holds further on names no product: "华为" leads the name of the Mate 70 Pro film and
    stands inside the Mate 70 Pro case's ("壳士 华为 Mate 70 Pro …"), a maker's name, not the film's."""
    firsts = {p.sku: p.name.split()[0].lower() for p in products if p.name.split()}
    inner = [(p.sku, p.name.lower()[len(firsts.get(p.sku, "")) :]) for p in products]
    terms = set()
    for p in products:
        first = firsts.get(p.sku)
        for term in _terms(p):
            if (
                term == first
                and term not in {a.lower() for a in p.aliases}
                and any(sku != p.sku and term in rest for sku, rest in inner)
            ):
                continue
            terms.add((term, p.sku))
    return terms


def _named_by_terms(text: str, terms: list[tuple[str, str]]) -> list[str]:
    """Products the text names by a name, the name's first segment or an alias (the longest match;
    ``terms`` longest first); "mate70pro的壳" names the alias mate70pro壳."""
    lowered = text.lower()
    plain = lowered.replace("的", "")
    best_len = 0
    found: list[str] = []
    for term, sku in terms:
        if len(term) < best_len:
            break
        if term in lowered or term in plain:
            best_len = len(term)
            if sku not in found:
                found.append(sku)
    return found


def _faq_products(faqs: list[Faq], terms: list[tuple[str, str]], products: list[Product]) -> dict[str, frozenset[str]]:
    """The products each FAQ entry is about: its ``sku`` column, else those its question names
    ("沐森护发素可以涂头皮吗" is about the conditioner; "润境加湿器多久清洗一次" about every 润境
    humidifier), else those of the category it names ("窗帘包安装吗": the shop's curtains), else none
    (a shop-wide entry)."""
    about: dict[str, frozenset[str]] = {}
    for f in faqs:
        named = [f.sku] if f.sku else _named_by_terms(f.question, terms)
        if not named:
            asked = f.question.lower()
            named = [p.sku for p in products if len(p.category) >= 2 and p.category.lower() in asked]
        about[f.id] = frozenset(named)
    return about


def _units_of(text: str) -> tuple[frozenset[str], float]:
    """The units a line's value should state to answer the question, and the bonus of such a line: the
    units asked for, else those of a quantity the question states ("宝宝7公斤穿啥码": the line giving
    sizes by weight, 适用体重 S 4-8kg/M 6-11kg)."""
    units = asked_units(text) or stated_units(text)
    return units, DURATION_BONUS if DURATIONS <= units else UNIT_BONUS


def _stating(product: Product, text: str) -> dict[str, float]:
    """The product's spec keys whose values state a quantity in the unit the question asks for, each
    with its bonus; of one piece ("一个多大", "多大个"), the lines of one (单果重, not 净重) when it has some."""
    units, bonus = _units_of(text)
    if not units:
        return {}
    stating = [key for key, value in product.specs if states_unit(value, units)]
    if asks_per_piece(text):
        stating = [key for key in stating if key.startswith("单")] or stating
    return dict.fromkeys(stating, bonus)


# A number with its unit in a spec value ("60天", "45分钟", "300ml"), to find in the shop's own texts.
_QUANTITY = re.compile(r"\d[\d.]*\s*(?:[a-z]+|[\u4e00-\u9fff]{1,2})")
# How many characters before a value the shop's texts are read for the words that introduce it, and how
# many character pairs of a question those words must share to tell the line asked for.
GLOSS_CHARS = 8
GLOSS_PAIRS = 2
_CLAUSE = re.compile(r"[，。；;,、！!？?：:]")
_RANGE = frozenset("0123456789.-~～到至/")


def _key_glosses(products: list[Product], faqs: list[Faq]) -> dict[str, set[str]]:
    """Per spec key, the character pairs of what the shop writes right before that key's quantities in a
    product's description and its own FAQ answers ("充一次电可用60天": 续航 60天), over all products."""
    answers: dict[str, list[str]] = {}
    for faq in faqs:
        if faq.sku:
            answers.setdefault(faq.sku, []).append(faq.answer.lower())
    gloss: dict[str, set[str]] = {}
    for p in products:
        texts = [p.description.lower(), *answers.get(p.sku, [])]
        for key, value in p.specs:
            for quantity in _QUANTITY.findall(value.lower()):
                for t in texts:
                    at = t.find(quantity)
                    # Not the end of another number ("1-3天" holds no 3天), and only the clause it ends.
                    if at > 0 and t[at - 1] not in _RANGE:
                        gloss.setdefault(key, set()).update(char_pairs(_CLAUSE.split(t[max(0, at - GLOSS_CHARS) : at])[-1]))
    return gloss


def _details(product: Product) -> str:
    """A product's description and specs (lower case)."""
    return f"{product.description} {' '.join(f'{k}{v}' for k, v in product.specs)}".lower()


def _product_text(product: Product) -> str:
    """A product's own words: name, description and specs (lower case)."""
    return f"{product.name.lower()} {_details(product)}"


def _without_names(product: Product, text: str, *, name_words: bool = False) -> str:
    """The text (lower case) with the product's names and aliases blanked out, and with ``name_words``
    every word of its name too: what is left asks about it."""
    lowered = text.lower()
    for term in _terms(product):
        lowered = lowered.replace(term, " ")
    if name_words:
        for word in jieba.lcut(product.name.lower()):
            if len(word.strip()) >= 2:
                lowered = lowered.replace(word.strip(), " ")
    return lowered


def _terms(product: Product) -> list[str]:
    """Strings that name a product: its name, the name's first segment, its aliases."""
    terms = [t.lower() for t in (product.name, product.name.split()[0], *product.aliases) if len(t) >= 2]
    return list(dict.fromkeys(terms + [squeeze_models(t) for t in terms]))


@dataclass
class LoadPlan:
    """What one (re)load read from the database, and the texts it must embed."""

    generation: int
    products: list[Product]
    faqs: list[Faq]
    docs: list[store.Doc]
    keys: list[tuple[str, str, str]]
    stored: dict[tuple[str, str, str], np.ndarray]
    todo: list[store.Doc]


class KnowledgeBase:
    """In-memory search index over the shop's FAQ and catalogue, built from SQLite."""

    def __init__(self, encoder: Encoder, thresholds: Thresholds | None = None, *, reranked: bool = True) -> None:
        """``reranked=False``: plain cosine ranking (the baseline); otherwise the shipped reranker when it
        was fitted with this encoder (one probe encode to tell)."""
        self.encoder = encoder
        self.thresholds = thresholds or Thresholds()
        self.reranker: Reranker | None = None
        if reranked:
            fitted = rerank.load()
            if fitted is not None and fitted.fits(encoder):
                self.reranker = fitted
            elif fitted is not None:
                logger.info("the reranker was fitted with another embedding model: plain cosine ranking")
        self._entries = Entries.build([], {})
        self._lock = threading.Lock()
        self.products: dict[str, Product] = {}
        self.faqs: dict[str, Faq] = {}
        self._doc_kind: list[str] = []
        self._doc_ref: list[str] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._terms: list[tuple[str, str]] = []  # (term, sku), longest first
        self._word_skus: dict[str, set[str]] = {}
        self._variant_values: dict[str, set[str]] = {}  # spec key -> every option the shop offers
        self._spec_keys: frozenset[str] = frozenset()  # every spec key of the shop's products
        self._shop_text = ""  # every product's and FAQ entry's words, lower case
        self._shop_squeezed = ""  # the same without spaces and model numbers' hyphens ("iphone15", "sm12")
        self._spec_cache: dict[str, tuple[tuple[tuple[str, str], ...], np.ndarray]] = {}
        self._key_gloss: dict[str, set[str]] = {}  # spec key -> the words the shop writes before its values
        self._spec_rows: dict[str, int] = {}  # SKU<TAB>key -> its row in the matrix
        self._faq_products: dict[str, frozenset[str]] = {}  # FAQ id -> the products it is about
        self.generation = -1  # the catalogue generation the index was built from (kb.store.generation)

    def load(self, db: Store) -> int:
        """(Re)build the index; embeds only texts not embedded before. Returns texts embedded now."""
        plan = self.plan(db)
        vectors = self.encoder.encode([d.text for d in plan.todo])
        self.store_vectors(db, plan, vectors)
        return self.install(plan, vectors)

    def plan(self, db: Store) -> LoadPlan:
        """Read the catalogue and FAQ and find the texts that still need embedding (reads only: a read connection)."""
        gen = store.generation(db)  # read first: a change made while loading triggers another load
        products = store.all_products(db)
        faqs = store.all_faq(db)
        docs = store.search_docs(products, faqs)
        stored = store.stored_vectors(db, self.encoder.name)
        keys = [(d.kind, d.ref, store.text_hash(d.text)) for d in docs]
        todo = [d for d, k in zip(docs, keys, strict=True) if k not in stored]
        return LoadPlan(gen, products, faqs, docs, keys, stored, todo)

    def store_vectors(self, db: Store, plan: LoadPlan, vectors: np.ndarray) -> None:
        """Keep the texts' new embeddings and drop those of texts gone (a write: the writer)."""
        new = list(zip(plan.todo, vectors, strict=True)) if plan.todo else []
        store.replace_vectors(db, self.encoder.name, set(plan.keys), new)

    def install(self, plan: LoadPlan, vectors: np.ndarray) -> int:
        """Build the index from the plan and the new embeddings and swap it in; returns texts embedded now.

        CPU only (jieba over every product name and text), no database: run it off the database threads.
        """
        products, faqs, docs, keys, stored = plan.products, plan.faqs, plan.docs, plan.keys, plan.stored
        for doc, vec in zip(plan.todo, vectors, strict=True) if plan.todo else ():
            stored[(doc.kind, doc.ref, store.text_hash(doc.text))] = vec
        matrix = np.vstack([stored[k] for k in keys]) if keys else np.zeros((0, 1), dtype=np.float32)
        # Longest terms first; ties in a fixed order, so the same question finds the same product in every process.
        terms = sorted(_shop_terms(products), key=lambda x: (-len(x[0]), x[0], x[1]))
        word_skus = _naming_words(products, faqs)
        entries = Entries.build(docs, {f.id: f for f in faqs})
        variant_values: dict[str, set[str]] = {}
        for p in products:
            for key, value in p.specs:
                if len(_options(value)) >= 2:
                    variant_values.setdefault(key, set()).update(_options(value))
        with self._lock:
            self.products = {p.sku: p for p in products}
            self.faqs = {f.id: f for f in faqs}
            self._doc_kind = [d.kind for d in docs]
            self._doc_ref = [d.ref for d in docs]
            self._matrix = matrix
            self._terms = terms
            self._word_skus = word_skus
            self._variant_values = variant_values
            self._spec_keys = frozenset(key for p in products for key, _ in p.specs)
            self._shop_text = " ".join(
                [f"{_product_text(p)} {' '.join(p.aliases)} {p.category}" for p in products]
                + [f"{f.question} {' '.join(f.alt_questions)} {f.answer}" for f in faqs]
            ).lower()
            self._shop_squeezed = squeeze_models(self._shop_text.replace(" ", ""))
            self._spec_cache = {}
            self._key_gloss = _key_glosses(products, faqs)
            self._spec_rows = {d.ref: i for i, d in enumerate(docs) if d.kind == "spec"}
            self._entries = entries
            self._faq_products = _faq_products(faqs, terms, products)
            self.generation = plan.generation
        logger.info(
            "knowledge base: %d products, %d FAQ, %d texts (%d embedded now)",
            len(products),
            len(faqs),
            len(docs),
            len(plan.todo),
        )
        return len(plan.todo)

    def unknown_names(self, text: str, *, places: bool = True) -> list[str]:
        """The nouns and Latin words of the text (two characters or more) that nothing of the shop's
        speaks of, none of its products, aliases, descriptions, specs or FAQ entries ("安克的充电宝": 安克);
        without ``places``, not the words jieba takes for place names ("到厦门要几天": where the shopper
        is, not what the shop lacks)."""
        with self._lock:
            said, joined = self._shop_text, self._shop_squeezed
        words = [
            w.word.strip().lower()
            for w in posseg.lcut(text)
            if (w.flag.startswith("n") or w.flag == "eng") and (places or w.flag != "ns")
        ]
        return [w for w in dict.fromkeys(words) if len(w) >= 2 and w not in said and w not in joined]

    def names_unsold(self, text: str) -> bool:
        """Does the text name a make or thing none of the shop's texts speaks of (place names aside)? What
        the reranker's confidence model reads as ``unsold``."""
        return bool(self.unknown_names(text, places=False))

    def mentioned_products(self, text: str, context_sku: str | None = None) -> list[str]:
        """Products the text names, by name or alias (longest match), else by a distinctive word."""
        return self.named_products(text, context_sku)[0]

    def named_products(self, text: str, context_sku: str | None = None) -> tuple[list[str], bool]:
        """Products the text names and whether by a name or alias (True) or only by a word of a name.

        A word that the product being talked about (``context_sku``) has in its own name, description
        or specs is about that product: "带防晒吗" after the foundation asks about its SPF, not for the
        sunscreen.
        """
        lowered = text.lower()
        found = _named_by_terms(lowered, self._terms)
        if found:
            return found, True
        context = self.products.get(context_sku) if context_sku else None
        own = _product_text(context) if context else ""
        if context is not None:
            # ... or its own FAQ entries: "那能水洗吗" after the silk quilt, whose entry says 不能水洗, asks of
            # it, not for the 水洗棉 bedding set.
            own += " " + " ".join(f"{self.faqs[f].question} {self.faqs[f].answer}" for f in self._own_faqs(context.sku)).lower()
        counts: Counter[str] = Counter()
        for word in _words_cut(lowered, self._word_skus):
            if word in own:
                continue
            for sku in sorted(self._word_skus.get(word, ())):
                counts[sku] += 1
        return [sku for sku, _ in counts.most_common(2)], False

    def names_only_companions(self, text: str) -> bool:
        """Does the text name products by name only as what goes with another one ("能和维C水一起用吗",
        "跟小白瓶比呢": the product talked about is still the one asked about)?"""
        lowered = text.lower()
        best = next((len(term) for term, _ in self._terms if term in lowered), 0)
        terms = {term for term, _ in self._terms if len(term) == best and term in lowered}
        return bool(terms) and all(_WITH.search(lowered[: lowered.index(term)]) for term in terms)

    def names_only_used_with(self, sku: str, text: str) -> bool:
        """Does the text name products by name only as what the product talked about is used with, and
        does that product's own description, spec values or FAQ entries speak of each ("能用豆腐砂吗"
        after the self-cleaning litter box, whose FAQ says which litters it takes)?"""
        product = self.products.get(sku)
        if product is None:
            return False
        lowered = text.lower()
        best = next((len(term) for term, _ in self._terms if term in lowered), 0)
        terms = {term for term, _ in self._terms if len(term) == best and term in lowered}
        own = " ".join(
            [product.description, *(value for _, value in product.specs)]
            + [f"{self.faqs[f].question} {self.faqs[f].answer}" for f, about in self._faq_products.items() if sku in about]
        ).lower()
        return bool(terms) and all(_USE.search(lowered[: lowered.index(term)]) and term in own for term in terms)

    def names_a_spec_of(self, sku: str, text: str) -> bool:
        """Is every product name or alias the text gives part of one of this product's spec keys?
        ("带防晒吗" names the sunscreen by its alias 防晒, which is also the foundation's 防晒指数.)"""
        product = self.products.get(sku)
        lowered = text.lower()
        best = next((len(term) for term, _ in self._terms if term in lowered), 0)
        terms = {term for term, _ in self._terms if len(term) == best and term in lowered}
        keys = [key.lower() for key, _ in product.specs] if product else []
        return bool(terms) and all(any(term in key for key in keys) for term in terms)

    def faq_products(self, faq_id: str) -> frozenset[str]:
        """The products an FAQ entry is about: its ``sku``, or those its question names (empty: shop-wide)."""
        return self._faq_products.get(faq_id, frozenset())

    def sibling_named(self, sku: str, text: str) -> str | None:
        """A variant of the product talked about that the text names by a part of its name or aliases
        which that product does not have in its own words: "有没有大瓶一点的" after the 30ml essence is
        its 50ml 大瓶装, "那二段的有吗" after 贝乐滋三段 is 贝乐滋二段. A variant is a product of the same
        category whose name is mostly the same (SIBLING_NAME). None unless one leads."""
        product = self.products.get(sku)
        if product is None:
            return None
        own = f"{_product_text(product)} {' '.join(_terms(product))}"
        name_pairs = char_pairs(product.name.lower())
        lowered = without_asking(text)  # "多少毫安" asks a measure, whatever variant's alias holds 毫安
        # Two characters of the message, both Chinese or Latin with a letter ("3j"), that the product lacks.
        grams = {
            g
            for g in (lowered[i : i + 2] for i in range(len(lowered) - 1))
            if (all("\u4e00" <= c <= "\u9fff" for c in g) or (g.isascii() and g.isalnum() and not g.isdigit())) and g not in own
        }
        if not grams:
            return None
        scores: Counter[str] = Counter()
        for other in self.products.values():
            if other.sku == sku or other.category != product.category:
                continue
            other_pairs = char_pairs(other.name.lower())
            if len(name_pairs & other_pairs) < SIBLING_NAME * min(len(name_pairs), len(other_pairs)):
                continue
            names = " ".join(_terms(other))
            scores[other.sku] = sum(1 for g in grams if g in names)
        ranked = scores.most_common(2)
        if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return None
        return ranked[0][0]

    def described(self, text: str) -> str | None:
        """The one product whose own description holds the word the shopper points with ("口红那个有苹果
        接口吗": the power bank described as 口红大小), when no name or alias is given."""
        match = _POINTING.search(text.lower())
        if match is None:
            return None
        word = match.group(1)
        for start in range(len(word) - 1):  # "有口红那个": the longest ending that one description holds
            part = word[start:]
            if _NOT_LIKE.search(part):
                return None  # "便宜的那个", "刚才那个": which one the shopper means, not what it is like
            found = [p.sku for p in self.products.values() if part in p.description.lower()]
            if len(found) == 1:
                return found[0]
            if found:
                return None
        return None

    def description_says(self, sku: str, text: str) -> str | None:
        """The one clause of the product's description that answers what its spec lines and own FAQ
        entries do not: a count or measure asked ("能给手机充几次": "能给 iPhone 16 充约4次") that no line
        states, or a thing asked about ("带充电头吗": "不含充电头") that its names and own FAQ entries do
        not speak of and one clause does."""
        product = self.products.get(sku)
        if product is None or not product.description:
            return None
        clauses = [c.strip() for c in _CLAUSE.split(product.description) if c.strip()]
        units = asked_units(text)
        values = [value for _, value in product.specs]
        if units:
            answers = [self.faqs[f].answer for f in self._own_faqs(sku)]
            if any(states_unit(said, units) for said in values + answers):
                return None  # a line or the product's own FAQ entry gives it
            stating = [c for c in clauses if states_unit(c, units)]
            return stating[0] if len(stating) == 1 else None
        faqs = [self.faqs[f] for f in self._own_faqs(sku)]
        own = " ".join(
            [product.name, *product.aliases] + [f"{f.question} {' '.join(f.alt_questions)} {f.answer}" for f in faqs]
        ).lower()
        asked = _COMES_WITH.sub("", _without_names(product, text))
        # Runs of three or more Chinese characters of the question ("带充电头吗": 充电头), however jieba cuts them.
        words = {
            asked[i:j]
            for i in range(len(asked))
            for j in range(i + 3, min(len(asked), i + 6) + 1)
            if all("\u4e00" <= c <= "\u9fff" for c in asked[i:j]) and asked[i:j] not in own
        }
        said = [c for c in clauses if any(w in c.lower() for w in words)]
        return said[0] if len(said) == 1 else None

    def _own_faqs(self, sku: str) -> list[str]:
        return [faq_id for faq_id, about in self._faq_products.items() if sku in about]

    def sized_sibling(self, sku: str, text: str) -> str | None:
        """The next bigger (or smaller) variant of the product talked about, when the text asks for
        nothing but that ("那大包的呢" after the 2 kg cat food is its 10 kg bag): of the products of
        its category whose names are mostly the same (SIBLING_NAME), the one whose name's first
        amount, in the same unit, is the nearest above (below) its own."""
        product = self.products.get(sku)
        core = _FILLER.sub("", _LEAD.sub("", text.lower()))
        asked = _SIZE_ASKED.fullmatch(core)
        own = _amount(product.name) if product else None
        if product is None or asked is None or own is None:
            return None
        bigger = asked.group(1) == "大"
        name_pairs = char_pairs(product.name.lower())
        best: tuple[float, str] | None = None
        for other in self.products.values():
            if other.sku == sku or other.category != product.category:
                continue
            other_pairs = char_pairs(other.name.lower())
            if len(name_pairs & other_pairs) < SIBLING_NAME * min(len(name_pairs), len(other_pairs)):
                continue
            amount = _amount(other.name)
            if amount is None or amount[1] != own[1] or (amount[0] > own[0]) != bigger or amount[0] == own[0]:
                continue
            gap = abs(amount[0] - own[0])
            if best is None or gap < best[0]:
                best = (gap, other.sku)
        return best[1] if best else None

    def amount_named(self, sku: str, text: str) -> str | None:
        """The one other product of the category of the product talked about whose name gives an amount
        the text asks for and that product's name and specs do not ("8mm的多重" after the 4.5 mm yoga
        mat is the 8 mm mat, "那三人的呢" after the two-person tent the three-person one)."""
        product = self.products.get(sku)
        asked = _amounts(text)
        if product is None or not asked:
            return None
        if asked & _amounts(" ".join([product.name, *(value for _, value in product.specs)])):
            return None
        found = [
            p for p in self.products.values() if p.sku != sku and p.category == product.category and asked & _amounts(p.name)
        ]
        if len(found) > 1:  # "那1.8米的呢" after the 1.5 m cotton set: the 1.8 m one of that line, not the tencel set
            pairs = char_pairs(product.name.lower())
            found = [
                p
                for p in found
                if len(pairs & (other := char_pairs(p.name.lower()))) >= SIBLING_NAME * min(len(pairs), len(other))
            ]
        return found[0].sku if len(found) == 1 else None

    def companion_named(self, sku: str, text: str) -> str | None:
        """A product of another category that the text names by that category's word alone ("膜呢"
        after the Mate 70 Pro case is the shop's Mate 70 Pro film, category 手机膜): of the categories
        the text's word is part of, the product whose name shares the most with the product talked
        about, if one leads. None when the text says more than the word (and "how much")."""
        product = self.products.get(sku)
        if product is None:
            return None
        core = _FILLER.sub("", _LEAD.sub("", text.lower()))
        for price in sorted(_PRICE_ONLY, key=len, reverse=True):
            if price and core.endswith(price):
                core = core[: -len(price)]
                break
        if not core or not all("\u4e00" <= c <= "\u9fff" for c in core):
            return None
        categories = {p.category for p in self.products.values() if p.category and p.category != product.category}
        asked = {c for c in categories if core in c.lower()}
        if not asked:
            return None
        own = char_pairs(product.name)
        scores = Counter({p.sku: len(own & char_pairs(p.name)) for p in self.products.values() if p.category in asked})
        ranked = scores.most_common(2)
        if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return None
        return ranked[0][0]

    def named_among(self, text: str, skus: list[str]) -> list[str]:
        """The one product of ``skus`` whose name or aliases share the most words with the text, if
        one leads ("吹风机那单呢" among the shopper's orders, though the shop sells three dryers)."""
        candidates = [self.products[sku] for sku in dict.fromkeys(skus) if sku in self.products]
        naming = {w.strip() for p in candidates for term in _terms(p) for w in jieba.lcut(term) if len(w.strip()) >= 2}
        words = {w for w in _words_cut(text.lower(), naming) if len(w) >= 2}
        scores: Counter[str] = Counter()
        for sku in dict.fromkeys(skus):
            product = self.products.get(sku)
            if product is not None:
                names = " ".join(_terms(product))
                scores[sku] = sum(1 for w in words if w in names)
        ranked = scores.most_common(2)
        if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return []
        return [ranked[0][0]]

    def raw_scores(self, text: str, context_sku: str | None = None) -> tuple[dict[tuple[str, str], float], list[str]]:
        """Best cosine per entry and the products named, before any bonus (blocking).

        A spec line counts for its product.
        """
        mentioned = self._mentioned(text, context_sku)
        query = self.encoder.encode([text])[0]
        best: dict[tuple[str, str], float] = {}
        with self._lock:
            if self._doc_ref:
                scores = self._matrix @ query
                for kind, ref, score in zip(self._doc_kind, self._doc_ref, scores.tolist(), strict=True):
                    if kind == "spec":
                        kind, ref = "product", ref.split(store.SPEC_SEP, 1)[0]
                    if score > best.get((kind, ref), -1.0):
                        best[(kind, ref)] = score
        return best, mentioned

    def about_product(self, sku: str, text: str, at_least: float | None = None) -> Hit | None:
        """The best of a product's own FAQ entries and spec lines for the question, if at least
        ``at_least`` close (default ``product_answer``; blocking). A spec line comes back as kind
        ``spec`` with ref ``SKU<TAB>key``."""
        product = self.products.get(sku)
        if product is None:
            return None
        prefix = f"{sku}{store.SPEC_SEP}"
        named = named_spec(product, text)
        units, unit_bonus = _units_of(text)
        fallback = Hit("spec", prefix + named[0], 1.0) if named else None
        if named and not (DURATIONS <= units and not states_unit(named[1], units)):
            # The question names one of the product's own spec keys: its line, unless an FAQ entry of the
            # product's asks of that key what the line does not say ("刀头能洗吗": "刀头能水洗吗？", not 刀头：
            # 陶瓷动刀+不锈钢定刀).
            return self._faq_asking_of_key(product, named, text) or fallback
        own = {faq_id for faq_id, about in self._faq_products.items() if sku in about}
        # The topic the question names when no line of the product gives what it asks: "滤芯多久换" of a
        # 滤芯 line that gives no time, "座椅保修多久" of a seat without a 保修 line in a shop whose other
        # products have one and whose FAQ tells (KnowledgeBase._keys_it_lacks). Then only its FAQ entries
        # on that topic giving what is asked answer it ("滤芯建议3个月更换一次"; else the line named, or
        # the shop-wide FAQ).
        lacking = self._keys_it_lacks(product, text)
        topic = [named[0]] if named else lacking
        if topic:
            own = {
                f
                for f in own
                if any(key in f"{self.faqs[f].question} {self.faqs[f].answer}" for key in topic)
                and (not units or states_unit(self.faqs[f].answer, units))
            }
            if not own:
                return fallback
        query = self.encoder.encode([text])[0]
        stating = _stating(product, text)
        best: Hit | None = None
        faq_scores: dict[str, float] = {}
        with self._lock:
            for i, (kind, ref) in enumerate(zip(self._doc_kind, self._doc_ref, strict=True)):
                if (kind == "faq" and ref in own) or (not topic and kind == "spec" and ref.startswith(prefix)):
                    score = float(self._matrix[i] @ query)
                    if kind == "faq":
                        faq_scores[ref] = max(score, faq_scores.get(ref, -1.0))
                    if kind == "spec" and set(ref[len(prefix) :]) & set(text):
                        score += self.thresholds.spec_key_bonus  # "多重" shares 重 with the key 车重
                    if kind == "spec":
                        score += stating.get(ref[len(prefix) :], 0.0)
                    elif unit_bonus == UNIT_BONUS and states_unit(self.faqs[ref].answer, units):
                        # As a spec line stating the count or measure asked for. Not a duration: the
                        # FAQ's "常温放3-7天" is how long it takes to ripen, not how long it keeps.
                        score += unit_bonus
                    if best is None or score > best.score:
                        best = Hit(kind, ref, round(score, 4))
        if best is None or best.score < (self.thresholds.product_answer if at_least is None else at_least):
            return fallback
        if best.kind == "spec" and DURATIONS <= units:
            asking = self._faq_asking_as(product, text, faq_scores, best.score)
            if asking is not None:
                return asking
        if best.kind == "spec":
            # Which line: the lines embedded with the product's name all look alike; the key alone and
            # "key：value" without the name tell 车重 from 承重 and 容量 from 功率.
            return Hit("spec", prefix + self._spec_line(product, text, query), best.score)
        return best

    def _faq_asking_of_key(self, product: Product, line: tuple[str, str], text: str) -> Hit | None:
        """The product's own FAQ entry whose question (or alternative) names the spec key the text names
        and the most of the text's other characters that the line's value lacks (question words aside)."""
        key, value = line
        rest = _ASKING_CHARS.sub("", _without_names(product, text).replace(key.lower(), " "))
        wanted = {c for c in rest if "\u4e00" <= c <= "\u9fff" and c not in value}
        if not wanted:
            return None
        best: tuple[int, str] | None = None
        for faq_id in self._own_faqs(product.sku):
            faq = self.faqs[faq_id]
            for asked in (faq.question, *faq.alt_questions):
                if key in asked:
                    shared = sum(1 for c in wanted if c in asked)
                    if shared and (best is None or shared > best[0]):
                        best = (shared, faq_id)
        return Hit("faq", best[1], 1.0) if best else None

    def _faq_asking_as(self, product: Product, text: str, faq_scores: dict[str, float], top: float) -> Hit | None:
        """Of a duration question a spec line leads for, the product's own FAQ entry whose questions
        share more of the question's words (not those asking how long) than any of its spec lines, if
        one leads and is close enough
        ("到了多久能吃": the durian's "榴莲什么时候能吃" (ripening, 1-3天), not its 开口后果肉 冷藏2-3天)."""
        asked = _cjk_pairs(without_asking(_without_names(product, text, name_words=True)))
        if not asked:
            return None
        # A line's words are its key, its value and what the shop writes before its values ("充一次电可用60天").
        in_lines = max(
            (sum(g in f"{k}{v}".lower() or g in self._key_gloss.get(k, set()) for g in asked) for k, v in product.specs),
            default=0,
        )
        shared = {
            ref: sum(g in " ".join((self.faqs[ref].question, *self.faqs[ref].alt_questions)).lower() for g in asked)
            for ref in faq_scores
        }
        ranked = sorted(shared.items(), key=lambda kv: (-kv[1], -faq_scores[kv[0]]))
        if not ranked or ranked[0][1] <= in_lines or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return None
        ref = ranked[0][0]
        if faq_scores[ref] < max(top - FAQ_WORDS_GAP, self.thresholds.product_answer):
            return None
        return Hit("faq", ref, round(faq_scores[ref], 4))

    def restates_asked(self, faq_id: str, sku: str, key: str, text: str) -> bool:
        """Does the FAQ entry's answer give the measure the question asks for, in more of the question's
        words than the product's spec line ``key`` does? ("那平时冲奶设多少度" right after the entry on the
        warmer's boiling: its 45℃ for 冲奶, not the 温度范围 line.)"""
        faq, product = self.faqs.get(faq_id), self.products.get(sku)
        units = asked_units(text)
        if faq is None or product is None or not units or not states_unit(faq.answer, units):
            return False
        line = f"{key}{dict(product.specs).get(key, '')}"
        asked = _cjk_pairs(text)
        return sum(g in faq.answer for g in asked) > sum(g in line for g in asked)

    def names_only(self, sku: str, text: str) -> bool:
        """Is the text the product's name and nothing else asked ("16pro透明壳", "100w的充电器",
        "三合一无线充电座多少"): no word left once its names, the characters of its name and particles
        are taken out, or only "how much"?"""
        product = self.products.get(sku)
        if product is None:
            return False
        name = product.name.lower()
        left = "".join(c for c in _without_names(product, text, name_words=True) if c not in name)
        left = _FILLER.sub("", left)
        return left in _PRICE_ONLY

    def without_names(self, sku: str, text: str) -> str:
        """The text (lower case) with the product's names and aliases blanked out: what it asks of it."""
        product = self.products.get(sku)
        return _without_names(product, text) if product else text.lower()

    def complaint_faq(self, sku: str | None, text: str, at_least: float | None = None) -> Hit | None:
        """The FAQ entry closest to a complaint, if at least ``at_least`` close (default
        ``product_answer``; blocking): the product's own entries and the shop-wide ones (about no
        product), scored on the message with the product's names blanked out. With its name in the
        message every entry about the product looks close ("气垫收到盒子是碎的" and how to change the
        cushion's refill); what is wrong is what the shop's rule for it answers (broken on arrival)."""
        product = self.products.get(sku) if sku else None
        query = self.encoder.encode([_without_names(product, text) if product else text])[0]
        best: Hit | None = None
        with self._lock:
            for i, (kind, ref) in enumerate(zip(self._doc_kind, self._doc_ref, strict=True)):
                if kind != "faq":
                    continue
                about = self._faq_products.get(ref, frozenset())
                if about and (product is None or product.sku not in about):
                    continue
                score = float(self._matrix[i] @ query)
                if best is None or score > best.score:
                    best = Hit("faq", ref, round(score, 4))
        if best is None or best.score < (self.thresholds.product_answer if at_least is None else at_least):
            return None
        return best

    def states_measure_asked(self, sku: str, text: str) -> bool:
        """Does one of the product's spec lines give the count or measure the question asks for (no
        duration: "几天能到" asks none of its lines)?"""
        return bool(self.lines_stating_measure(sku, text))

    def lines_stating_measure(self, sku: str, text: str) -> list[str]:
        """The keys of the product's spec lines that give the count or measure the question asks for."""
        product = self.products.get(sku)
        units = asked_units(text)
        if product is None or not units or DURATIONS <= units:
            return []
        return [key for key, value in product.specs if states_unit(value, units)]

    def value_named(self, sku: str, text: str) -> str | None:
        """The one spec line of the product whose value holds a part of the text that its key and name
        do not ("开强力档呢" after the vacuum's 续航: 45分钟(标准档)/12分钟(强力档)), else None."""
        product = self.products.get(sku)
        if product is None:
            return None
        lowered = text.lower()
        grams = {g for g in (lowered[i : i + 2] for i in range(len(lowered) - 1)) if all("\u4e00" <= c <= "\u9fff" for c in g)}
        grams -= set(char_pairs(product.name.lower()))
        keys = [key for key, value in product.specs if any(g in value.lower() and g not in key.lower() for g in grams)]
        return keys[0] if len(keys) == 1 else None

    def _keys_it_lacks(self, product: Product, text: str) -> list[str]:
        """The shop's spec keys the question names that no key of this product shares a character with,
        and that an FAQ question of the shop's is about ("保修多久" of a seat whose lines are 适用年龄,
        重量, 颜色 …, in a shop whose FAQ asks "电器和推车保修多久？"). Without such an entry one of the
        product's own lines may still answer it (a fruit's 储存 "冷藏可放30天" for "保质期多久")."""
        keys = [key for key, _ in product.specs]
        return [
            key
            for key in self._spec_keys
            if len(key) >= 2
            and key in text
            and not any(set(key) & set(k) for k in keys)
            and any(key in faq.question for faq in self.faqs.values())
        ]

    def _spec_line(self, product: Product, text: str, query: np.ndarray) -> str:
        """The product's spec key that fits the question best (blocking): the mean cosine of the key
        alone, the line alone and the line with the product's name (as search embedded it)."""
        cached = self._spec_cache.get(product.sku)
        if cached is None or cached[0] != product.specs:
            keys = [k for k, _ in product.specs]
            alone = self.encoder.encode(keys + [f"{k}：{v}" for k, v in product.specs])
            with self._lock:
                rows = [self._spec_rows.get(f"{product.sku}{store.SPEC_SEP}{k}") for k in keys]
                named = np.vstack([self._matrix[r] if r is not None else alone[len(keys) + i] for i, r in enumerate(rows)])
            cached = (product.specs, (alone[: len(keys)] + alone[len(keys) :] + named) / 3)
            self._spec_cache[product.sku] = cached
        # The product's own name says nothing about which line is asked for ("高速吹风机多重" is "多重").
        bare = _without_names(product, text, name_words=True)
        if bare.strip() and bare != text.lower():
            text, query = bare, self.encoder.encode([bare.strip()])[0]
        bonus = self.thresholds.spec_key_bonus
        lowered = text.lower()
        stating = _stating(product, text)
        pairs = char_pairs(lowered)
        ranked = [
            (
                # A line whose whole value the question states is what the shopper knows, not what they
                # ask: "5斤大概几个" asks 数量, not 净重 5斤.
                not (len(value) >= 2 and value.lower() in lowered),
                key in stating,  # "一箱几根": a line stating a count in 根
                # The shop's own words before the line's values: "充一次电能用多久" is the T7's "充一次电可用
                # 60天" (续航), whatever the embedding makes of 充电 (Type-C约3小时).
                len(pairs & self._key_gloss.get(key, set())) >= GLOSS_PAIRS,
                float(score) + (bonus if set(key) & set(text) else 0.0),
                key,
            )
            for (key, value), score in zip(product.specs, cached[1] @ query, strict=True)
        ]
        return max(ranked)[-1]

    def choice_spec(self, sku: str, text: str) -> tuple[str, str] | None:
        """The one spec of the product that lists choices and whose key shares a character with the
        question ("有什么颜色" -> 色号: #01正红/#05豆沙 …), else None."""
        product = self.products.get(sku)
        if product is None:
            return None
        hits = [(k, v) for k, v in product.specs if len(_options(v)) >= 2 and set(k) & set(text)]
        return hits[0] if len(hits) == 1 else None

    def variant(self, sku: str, text: str) -> tuple[str, str, list[str], bool] | None:
        """A variant the question asks for (a colour, a size …): (key, wanted, options, available).

        Options come from the product's own multi-valued specs; a value another product of the shop
        offers under the same key counts as asked for too (and is then unavailable here).
        """
        product = self.products.get(sku)
        if product is None:
            return None
        lowered = _without_names(product, text)  # the product's own name is not a variant asked for ("素颜隔离")
        named = named_spec(product, text)
        for key, value in [named] if named else product.specs:
            options = _options(value)
            if len(options) < 2:
                continue
            for option in sorted(options, key=len, reverse=True):
                if option.lower() in lowered or (option.endswith("色") and len(option) > 2 and option[:-1].lower() in lowered):
                    return key, option, options, True
                if len(option) == 2 and option.endswith("色") and f"{option[0]}的" in lowered:  # "有白的吗": 白色
                    return key, option, options, True
            for other in sorted(self._variant_values.get(key, set()) - set(options), key=len, reverse=True):
                if len(other) >= 2 and other.lower() in lowered:
                    # "有蓝色吗" of a case in 奶白/雾蓝/薄荷绿: its one blue is what is asked for.
                    stem = other[:-1] if other.endswith("色") else other
                    like = [option for option in options if stem.lower() in option.lower()]
                    if len(like) == 1:
                        return key, like[0], options, True
                    return key, other, options, False
        return None

    def rank(self, best: dict[tuple[str, str], float], mentioned: list[str], top_k: int = 5) -> SearchResult:
        """Plain ranking: sort by cosine and decide by the cosine lines."""
        hits = [Hit(kind, ref, round(score, 4)) for (kind, ref), score in best.items()]
        hits.sort(key=lambda h: -h.score)
        top = hits[:top_k]
        return SearchResult(tuple(top), tuple(mentioned), self.decide(top))

    def _faq_sku(self, faq_id: str) -> str | None:
        faq = self.faqs.get(faq_id)
        return faq.sku if faq else None

    def search(self, text: str, top_k: int = 5, context_sku: str | None = None) -> SearchResult:
        """Rank FAQ entries and products for ``text`` (blocking: runs the encoder)."""
        if self.reranker is None:
            best, mentioned = self.raw_scores(text, context_sku)
            return self.rank(best, mentioned, top_k)
        query, candidates = self.candidates(text)
        mentioned = self._mentioned(text, context_sku)
        return self.rerank(candidates, query, self.reranker, mentioned, top_k, unsold=self.names_unsold(text))

    def _mentioned(self, text: str, context_sku: str | None) -> list[str]:
        mentioned = self.mentioned_products(text, context_sku)
        if context_sku and context_sku in self.products and (not mentioned or context_sku in mentioned):
            return [context_sku]  # of the products named, the one being talked about
        return mentioned

    def candidates(self, text: str) -> tuple[np.ndarray, list[Candidate]]:
        """The question's embedding and the entries dense search puts first, with their features
        (blocking). What the question names counts here, not the conversation's product: that one is
        the dialogue's to weigh."""
        query = self.encoder.encode([text])[0]
        with self._lock:
            matrix, e = self._matrix, self._entries
        if not e.keys:
            return query, []
        scores = matrix @ query
        title = np.full(len(e.keys), -np.inf, dtype=np.float64)
        body = np.full(len(e.keys), -np.inf, dtype=np.float64)
        np.maximum.at(title, e.doc_entry[e.doc_title], scores[e.doc_title])
        np.maximum.at(body, e.doc_entry[~e.doc_title], scores[~e.doc_title])
        best = np.maximum(title, body)
        title = np.where(np.isinf(title), best, title)  # an entry without a title or body line
        body = np.where(np.isinf(body), best, body)
        order = np.argsort(-best, kind="stable")[:CANDIDATES]
        named, by_name = self.named_products(text)
        pairs = char_pairs(text)
        latin = {squeeze_models(t) for t in LATIN.findall(text.lower())}
        top = float(best[order[0]])
        out = []
        for position, i in enumerate(order.tolist()):
            kind, ref = e.keys[i]
            is_product = kind == "product"
            about = e.faq_sku[i]
            cov = len(pairs & e.pairs[i]) / max(len(pairs), 1)
            tcov = len(pairs & e.title_pairs[i]) / max(len(pairs), 1)
            features = {
                "cos": float(best[i]),
                "gap": top - float(best[i]),
                "rank": 1.0 / (1 + position),
                "cos_title": float(title[i]),
                "cos_body": float(body[i]),
                "cov": cov,
                "tcov": tcov,
                "bcov": cov - tcov,
                "latm": sum(1 for t in latin if t in e.models[i]) / len(latin) if latin else 0.0,
                "isp": float(is_product),
                "faqsku": float(about is not None),
                "named_self": float(is_product and by_name and ref in named),
                "faq_named": float(about is not None and about in named),
                "faq_other": float(about is not None and bool(named) and about not in named),
            }
            out.append(Candidate(kind, ref, float(best[i]), features))
        return query, out

    def rerank(
        self,
        candidates: list[Candidate],
        query: np.ndarray,
        reranker: Reranker,
        mentioned: list[str],
        top_k: int = 5,
        *,
        unsold: bool = False,
    ) -> SearchResult:
        """Order the candidates by the reranker and decide from its confidence (``unsold``: the question
        names something nothing of the shop's speaks of, `names_unsold`)."""
        if not candidates:
            return SearchResult((), tuple(mentioned), UNKNOWN, 0.0)
        wording = reranker.product_wording(query)
        scored = sorted(
            ((reranker.score({**c.features, "ptype": wording if c.kind == "product" else 1 - wording}), c) for c in candidates),
            key=lambda sc: -sc[0],
        )
        confidence = reranker.confidence(
            decision_values(
                scored[0][0],
                scored[0][1].cosine,
                scored[1][0] if len(scored) > 1 else None,
                unsold,
                reranker.no_answer_wording(query),
            )
        )
        t = self.thresholds
        decision = ANSWER if confidence >= t.answer_confidence else CLARIFY if confidence >= t.clarify_confidence else UNKNOWN
        hits = tuple(Hit(c.kind, c.ref, round(c.cosine, 4)) for _, c in scored[:top_k])
        return SearchResult(hits, tuple(mentioned), decision, round(confidence, 4))

    def decide(self, hits: list[Hit]) -> str:
        """Answer, ask to clarify, or admit not knowing, from the top scores."""
        t = self.thresholds
        if not hits or hits[0].score < t.clarify:
            return UNKNOWN
        top = hits[0]
        # A product's own FAQ entries are no rival to the product: the dialogue then picks between its
        # card and those entries by what the question asks (KnowledgeBase.about_product).
        rivals = [h for h in hits[1:] if not (top.kind == "product" and h.kind == "faq" and self._faq_sku(h.ref) == top.ref)]
        lead = top.score - rivals[0].score if rivals else 1.0
        if hits[0].score >= t.answer and lead >= t.margin:
            return ANSWER
        return CLARIFY


async def refresh_if_changed(kb: KnowledgeBase, runner: DbRunner) -> bool:
    """(Re)load the index when products or FAQ changed since it was built: at start-up, after an FAQ
    edit in the console, after ``kefu kb import`` or any other writer.

    The catalogue is read on a read connection and only the new embeddings go through the writer; the
    embedding and the index build (jieba) run in a worker thread, so that messages keep flowing while a
    large catalogue is re-embedded.
    """
    if await runner.read(store.generation) == kb.generation:
        return False
    plan = await runner.read(kb.plan)
    loop = asyncio.get_running_loop()
    vectors = await loop.run_in_executor(None, kb.encoder.encode, [d.text for d in plan.todo])
    await runner.run(kb.store_vectors, plan, vectors)
    await loop.run_in_executor(None, kb.install, plan, vectors)
    return True
