"""The real-message dev set: JD shopper turns labelled with kefu's intents (shared/, never shipped).

The file lives outside the repository (no licence for redistribution) and is read only to measure
and tune. Its anonymisation placeholders ([订单x], [数字x] …) stand for real values: each is
replaced by a realistic value, seeded by the row, so the model sees what a shop would see and
never learns the placeholder as a signal.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from intents.evaluate import read_labelled

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "data" / "intents" / "jddc_dev.csv"
PLACEHOLDER = re.compile(r"\[([^\[\]]{1,8})x\]")

_NAMES = ("张伟", "李娜", "王芳", "刘洋", "陈静", "杨磊", "赵敏", "黄婷")
_PLACES = ("朝阳区建国路88号", "浦东新区世纪大道100号", "天河区体育西路20号", "西湖区文三路100号", "武侯区人民南路4段")
_SITES = ("京东", "京东自营", "京东商城")
_ORGS = ("北京华信科技有限公司", "上海申达贸易有限公司", "广州市天润电子有限公司")


def _value(kind: str, rng: random.Random) -> str:
    if kind == "订单":
        return str(rng.randint(10**10, 10**12 - 1))
    if kind == "数字":
        return str(rng.choice((rng.randint(1, 12), rng.randint(1, 60), rng.randint(100, 3000))))
    if kind == "金额":
        return f"{rng.randint(9, 5999)}.{rng.choice(('00', '90', '50'))}"
    if kind == "日期":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "时间":
        return f"{rng.randint(8, 22):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if kind == "姓名":
        return rng.choice(_NAMES)
    if kind == "地址":
        return rng.choice(_PLACES)
    if kind == "链接":
        return f"https://item.jd.com/{rng.randint(10**9, 10**12)}.html"
    if kind == "电话":
        return f"1{rng.choice('3589')}{rng.randint(10**8, 10**9 - 1)}"
    if kind == "站点":
        return rng.choice(_SITES)
    if kind == "组织机构":
        return rng.choice(_ORGS)
    if kind == "身份证号":
        return f"11010519{rng.randint(70, 99)}0{rng.randint(1, 9)}{rng.randint(10, 28)}{rng.randint(1000, 9999)}"
    if kind == "邮箱":
        return f"user{rng.randint(100, 999)}@qq.com"
    return ""


def fill_placeholders(text: str, seed: int) -> str:
    """Replace every anonymisation placeholder with a realistic value (deterministic per seed)."""
    rng = random.Random(seed)
    return PLACEHOLDER.sub(lambda m: _value(m.group(1), rng), text)


def dev_path() -> Path | None:
    """The dev set's path (``KEFU_JDDC`` overrides), or None when it is not beside the clone."""
    path = Path(os.environ.get("KEFU_JDDC", DEFAULT))
    return path if path.exists() else None


def load(path: Path | None = None) -> list[tuple[str, str]]:
    """The dev set as (text, intent) rows, placeholders filled in."""
    source = path or dev_path()
    if source is None:
        raise FileNotFoundError(f"the real-message dev set is not at {DEFAULT} (set KEFU_JDDC)")
    return [(fill_placeholders(text, n), intent) for n, (text, intent) in enumerate(read_labelled(source))]
