"""Aspects per clause (物流, 包装, 服务 …), each with its polarity, and the keyword phrases reports count.

A lexicon, not a trained model: which words name an aspect and which words praise or fault it
hold across shops, and a manager can read why a review was tagged the way it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AspectRule:
    """How an aspect is recognised and what its keyword phrases are."""

    name: str
    triggers: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    good_phrase: str
    bad_phrase: str
    # Words that carry both the aspect and its polarity (好吃 = 口感 + good).
    good_words: tuple[str, ...] = ()
    bad_words: tuple[str, ...] = ()


GOOD = ("好", "不错", "满意", "棒", "赞", "给力", "优秀", "完美", "很好", "挺好", "可以")
BAD = ("差", "不好", "垃圾", "糟糕", "失望", "太差", "很差", "不行", "一般般")

RULES: tuple[AspectRule, ...] = (
    AspectRule(
        "物流",
        ("物流", "快递", "发货", "送货", "配送", "到货", "送达", "送到", "速度", "外卖小哥", "骑手", "派送"),
        ("快", "迅速", "及时", "神速", "准时", "很快", "挺快", "超快", *GOOD),
        ("慢", "太慢", "很慢", "延迟", "迟迟", "晚", "超时", "不送", "丢", *BAD),
        "物流快",
        "物流慢",
        good_words=("送得快", "发货快", "到得快", "次日达", "第二天就到"),
        bad_words=("送得慢", "发货慢", "等了好久", "等了半天", "等了一个", "迟到"),
    ),
    AspectRule(
        "包装",
        ("包装", "盒子", "箱子", "外包装", "打包", "封口", "礼盒", "袋子"),
        ("好", "精美", "严实", "完好", "结实", "用心", "漂亮", "精致", "仔细", "高档", *GOOD),
        ("破", "烂", "简陋", "压坏", "漏", "破损", "压扁", "撒", "洒", *BAD),
        "包装好",
        "包装破损",
    ),
    AspectRule(
        "服务",
        ("客服", "服务", "态度", "售后", "卖家", "商家", "店家", "老板", "前台", "服务员"),
        ("专业", "耐心", "热情", "周到", "及时", "贴心", "细心", "友好", "负责", *GOOD),
        ("冷淡", "不理", "敷衍", "推诿", "恶劣", "不耐烦", "没人理", "不回", *BAD),
        "服务专业",
        "服务差",
    ),
    AspectRule(
        "质量",
        ("质量", "做工", "品质", "材质", "用料", "面料", "质感", "手感"),
        ("好", "过硬", "精致", "扎实", "结实", "细腻", "厚实", *GOOD),
        ("差", "粗糙", "次", "坏", "劣质", "起球", "掉色", "开线", "薄", *BAD),
        "质量好",
        "质量差",
        bad_words=("坏了", "用坏", "开胶", "断了", "裂了"),
    ),
    AspectRule(
        "价格",
        ("价格", "价钱", "性价比", "价位", "划算", "实惠", "便宜", "贵"),
        ("实惠", "便宜", "划算", "高", "值", "合理", "公道", *GOOD),
        ("贵", "不值", "坑", "虚高", *BAD),
        "性价比高",
        "价格贵",
        good_words=("便宜", "实惠", "划算", "性价比高", "物美价廉", "物超所值"),
        bad_words=("太贵", "好贵", "不值", "偏贵", "有点贵"),
    ),
    AspectRule(
        "描述相符",
        ("描述", "图片", "实物", "色差", "宣传", "介绍", "详情"),
        ("一致", "相符", "一样", "符合", "没有色差", "无色差", "一模一样"),
        ("不符", "不一样", "色差", "差距", "不一致", "差别", "骗人", "虚假"),
        "描述相符",
        "与描述不符",
        good_words=("没有色差", "无色差", "和描述一致", "与描述一致", "和图片一样", "跟图片一样"),
        bad_words=("有色差", "货不对板", "和描述不符", "与描述不符", "和图片不一样"),
    ),
    AspectRule(
        "口感/效果",
        ("口感", "味道", "口味", "效果", "香味", "茶汤", "回甘", "滋味", "用起来", "吃起来", "喝起来"),
        ("好", "香", "醇", "鲜", "甜", "棒", "明显", "好用", "舒服", *GOOD),
        ("难吃", "难喝", "苦", "涩", "咸", "淡", "腥", "没效果", "不明显", "难闻", *BAD),
        "口感好",
        "口感差",
        good_words=("好吃", "好喝", "香甜", "入口即化", "回甘", "好用", "很香"),
        bad_words=("难吃", "难喝", "不好吃", "不好喝", "没效果", "不新鲜", "变质", "难闻"),
    ),
)

_CLAUSE_SPLIT = re.compile(r"[，,。.!！?？;；~～\n\r\t ]+|(?:但是|但|不过|可是|就是)")
_NEGATION = ("不", "没", "没有", "不太", "不是", "别", "无")


@dataclass(frozen=True)
class AspectTag:
    """One aspect found in one clause."""

    aspect: str
    polarity: str  # "positive", "negative" or "neutral"
    clause: str
    keyword: str | None  # the phrase reports count, e.g. 物流快


def split_clauses(text: str) -> list[str]:
    """Clauses of a review, split at punctuation and at 但是/不过 turns."""
    return [c for c in _CLAUSE_SPLIT.split(text) if c and c.strip()]


def _negated(clause: str, index: int) -> bool:
    before = clause[max(0, index - 3) : index]
    return any(before.endswith(n) for n in _NEGATION)


def _polarity(clause: str, rule: AspectRule, after: int) -> str | None:
    """Polarity words after the aspect word, with a negation just before them flipping it."""
    tail = clause[after:]
    hits: list[tuple[int, str]] = []
    for word in rule.negative:
        i = tail.find(word)
        if i >= 0:
            hits.append((i, "negative"))
    for word in rule.positive:
        i = tail.find(word)
        if i >= 0:
            # "不好" is in the negative list; a bare 好 inside it must not count as praise
            if any(tail[max(0, i - len(n)) : i] == n for n in _NEGATION):
                hits.append((i, "negative"))
            else:
                hits.append((i, "positive"))
    if not hits:
        return None
    return min(hits)[1]  # the polarity word closest after the aspect word


def tag_aspects(text: str) -> list[AspectTag]:
    """Every aspect mentioned, per clause, with its polarity and keyword phrase."""
    tags: list[AspectTag] = []
    for clause in split_clauses(text):
        for rule in RULES:
            polarity: str | None = None
            for word in rule.bad_words:
                i = clause.find(word)
                if i >= 0:
                    polarity = "positive" if _negated(clause, i) else "negative"  # 没有色差
                    break
            if polarity is None:
                for word in rule.good_words:
                    i = clause.find(word)
                    if i >= 0:
                        polarity = "negative" if _negated(clause, i) else "positive"
                        break
            if polarity is None:
                positions = [clause.find(t) + len(t) for t in rule.triggers if t in clause]
                if not positions:
                    continue
                polarity = _polarity(clause, rule, min(positions)) or "neutral"
            keyword = rule.good_phrase if polarity == "positive" else rule.bad_phrase if polarity == "negative" else None
            tags.append(AspectTag(rule.name, polarity, clause, keyword))
    return tags
