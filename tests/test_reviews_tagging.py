"""Review tags: aspects per clause, the text-and-stars verdict, and the compliance check."""

from __future__ import annotations

import pytest

from kb.compliance import ComplianceError, check_text, ensure_compliant
from reviews.aspects import split_clauses, tag_aspects
from reviews.sentiment import judge, text_label


def keywords(text: str) -> set[str | None]:
    return {t.keyword for t in tag_aspects(text)}


def test_clauses_split_at_punctuation_and_turns() -> None:
    assert split_clauses("东西不错，但是快递太慢了！") == ["东西不错", "快递太慢了"]


def test_each_clause_gets_its_own_polarity() -> None:
    tags = tag_aspects("包装很用心，可是物流也太慢了")
    assert [(t.aspect, t.polarity) for t in tags] == [("包装", "positive"), ("物流", "negative")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("发货速度很快，包装完好", {"物流快", "包装好"}),
        ("客服很专业，耐心解答", {"服务专业"}),
        ("客服态度冷淡，问了半天不理人", {"服务差"}),
        ("做工粗糙，线头很多", {"质量差"}),
        ("实物和图片不一样，色差严重", {"与描述不符"}),
        ("没有色差，和描述一致", {"描述相符"}),
        ("茶汤清亮，回甘明显", {"口感好"}),
        ("价格实惠，性价比很高", {"性价比高"}),
    ],
)
def test_keyword_phrases(text: str, expected: set[str]) -> None:
    assert expected <= keywords(text)


def test_negation_flips_praise() -> None:
    assert "包装破损" in keywords("包装不好，盒子都压扁了")
    assert "物流快" not in keywords("物流不快")


def test_no_aspect_no_tag() -> None:
    assert tag_aspects("嗯") == []


def test_stars_and_text_together() -> None:
    assert judge(0.95, 5).sentiment == "positive"
    five_star_but_awful = judge(0.05, 5)
    assert five_star_but_awful.sentiment == "negative" and five_star_but_awful.needs_look
    assert judge(0.6, 1).sentiment == "negative" and not judge(0.6, 1).needs_look
    assert judge(0.97, 1).needs_look  # kind words with one star: probably a mis-tap
    assert judge(0.3, 4).sentiment == "neutral"
    assert judge(0.5, 3).sentiment == "neutral"
    assert text_label(0.9) == "positive" and text_label(0.1) == "negative" and text_label(0.5) == "neutral"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("亲，给个五星好评返现5元", "reward_for_review"),
        ("晒图好评送小样一份", "reward_for_review"),
        ("好评后联系客服领红包", "reward_for_review"),
        ("麻烦您把差评删除，我们给您退款", "pay_to_change_review"),
        ("差评改成好评的话给您补偿", "pay_to_change_review"),
        ("转发到3个群即可免费领取", "forced_sharing"),
        ("不转不是中国人", "forced_sharing"),
    ],
)
def test_forbidden_texts_are_caught(text: str, rule: str) -> None:
    assert rule in [v.rule for v in check_text(text)]
    with pytest.raises(ComplianceError):
        ensure_compliant(text)


@pytest.mark.parametrize(
    "text",
    [
        "非常抱歉，我们马上为您补发一件新的",
        "已为您办理退款，请留意微信支付通知",
        "这款好评率很高，物流也快",
        "欢迎您如实评价，我们会继续改进",
        "分享给朋友也可以一起看看",
    ],
)
def test_ordinary_service_texts_pass(text: str) -> None:
    assert check_text(text) == []
    ensure_compliant(text)
