"""The dependency direction server -> bot -> intents, kb, reviews -> storage holds."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def forbidden(package: str, prefixes: tuple[str, ...]) -> list[str]:
    found = []
    for path in modules(package):
        for name in imports_of(path):
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_there_is_something_to_check() -> None:
    assert len(modules("kb")) >= 5 and len(modules("bot")) >= 5 and len(modules("intents")) >= 4


def test_kb_and_reviews_stay_below_the_bot() -> None:
    for package in ("kb", "reviews"):
        assert forbidden(package, ("aiohttp.web", "wechatpy", "bot", "intents", "server")) == []


def test_reviews_never_import_kb_search_or_web() -> None:
    assert forbidden("reviews", ("kb.search", "kb.importer", "aiohttp.web")) == []


def test_intents_know_nothing_of_the_bot() -> None:
    assert forbidden("intents", ("bot", "kb", "reviews", "wechatpy", "server")) == []


def test_wechat_types_stop_at_bot_wechat() -> None:
    users = [
        str(path.relative_to(ROOT))
        for package in ("bot", "intents", "kb", "reviews")
        for path in modules(package)
        if any(n == "wechatpy" or n.startswith("wechatpy.") for n in imports_of(path))
    ]
    assert users == ["bot/wechat.py"]


def test_bot_never_imports_server() -> None:
    assert forbidden("bot", ("server",)) == []
