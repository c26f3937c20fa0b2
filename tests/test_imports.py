"""The dependency direction server -> console -> bot, reviews -> kb, intents -> storage holds."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "kb", "intents", "reviews", "bot", "console")
KEFU = (*PACKAGES, "server", "settings")

# What each package may import of kefu, beside itself: the layers below it, never above or beside.
ALLOWED = {
    "storage": (),
    "kb": ("storage",),
    "intents": ("storage",),
    "reviews": ("kb", "storage"),
    "bot": ("intents", "kb", "storage"),
    "console": ("bot", "reviews", "intents", "kb", "storage"),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden(package: str, prefixes: tuple[str, ...]) -> list[str]:
    found = []
    for path in modules(package):
        for name in imports_of(path):
            if any(matches(name, p) for p in prefixes):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_there_is_something_to_check() -> None:
    for package in PACKAGES:
        assert len(modules(package)) >= 3, package


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from bot.dialogue import Dialogue\nimport console.app\n", encoding="utf-8")
    assert {"bot.dialogue", "bot.dialogue.Dialogue", "console.app"} <= imports_of(module)


def test_each_package_imports_only_the_layers_below_it() -> None:
    for package, allowed in ALLOWED.items():
        others = tuple(p for p in KEFU if p != package and p not in allowed)
        assert forbidden(package, others) == [], package


def test_kb_and_reviews_stay_apart_from_each_other_where_the_rule_says() -> None:
    assert forbidden("kb", ("reviews",)) == []
    assert forbidden("reviews", ("kb.search", "kb.importer")) == []


def test_web_code_stays_in_the_console_and_the_wechat_endpoint() -> None:
    for package in ("storage", "kb", "intents", "reviews"):
        assert forbidden(package, ("aiohttp.web",)) == [], package
    users = sorted(str(p.relative_to(ROOT)) for p in modules("bot") if any(matches(n, "aiohttp.web") for n in imports_of(p)))
    assert users == ["bot/security.py", "bot/views.py"]


def test_wechat_types_stop_at_bot_wechat() -> None:
    users = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in modules(package)
        if any(matches(n, "wechatpy") for n in imports_of(path))
    ]
    assert users == ["bot/wechat.py"]


def test_the_console_templates_live_in_the_console() -> None:
    assert (ROOT / "console" / "templates" / "queue.html").exists()
    assert not (ROOT / "bot" / "templates").exists()
