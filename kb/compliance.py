"""The check every outbound text passes: no reward for reviews, no forced sharing.

Review platforms' rules and China's E-commerce Law (art. 17) forbid rewarding a good review or
paying for a bad one to be changed or deleted; WeChat's operating rules (mini-program 5.1,
official account 3.3.1) forbid forced or rewarded sharing. See shared/notes/wechat.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REWARD = r"(返现|返利|红包|奖励|礼品|赠品|优惠券|代金券|积分|现金|小样|试吃装|试用装)"
_REVIEW = r"(好评|五星|5星|满分|晒图|评价)"
_BAD_REVIEW = r"(差评|中评|评价|评论|低分)"

RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "reward_for_review",
        re.compile(rf"{_REVIEW}.{{0,12}}{_REWARD}|{_REWARD}.{{0,12}}{_REVIEW}"),
        "不能以任何好处换取好评或评价（电子商务法第十七条、平台评价规则）",
    ),
    (
        "pay_to_change_review",
        re.compile(
            rf"(删除|删掉|删了|撤销|撤回|修改|改成|改为|追评|追加).{{0,8}}{_BAD_REVIEW}|{_BAD_REVIEW}.{{0,8}}(删除|删掉|删了|撤销|改掉|改成|改为)"
        ),
        "不能要求或以补偿换取删除、修改评价",
    ),
    (
        "forced_sharing",
        re.compile(r"(转发|分享|集赞).{0,10}(才能|才可以|就能|即可|可得|可领|领取|免费)|不转不是|转发到.{0,6}(群|朋友圈)"),
        "不能诱导或强制分享（微信运营规范）",
    ),
)


@dataclass(frozen=True)
class Violation:
    """Why a text may not be sent."""

    rule: str
    excerpt: str
    explanation: str


class ComplianceError(Exception):
    """A text broke a compliance rule and was not sent."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v.explanation}：「{v.excerpt}」" for v in violations))
        self.violations = violations


def check_text(text: str) -> list[Violation]:
    """Every rule the text breaks (empty when it may be sent)."""
    compact = re.sub(r"\s+", "", text)
    found = []
    for rule, pattern, explanation in RULES:
        match = pattern.search(compact)
        if match:
            found.append(Violation(rule, match.group(0), explanation))
    return found


def ensure_compliant(text: str) -> None:
    """Raise ComplianceError when the text may not be sent."""
    violations = check_text(text)
    if violations:
        raise ComplianceError(violations)
