"""Request bodies from outside: JSON parsed with bounded nesting and text that a UTF-8 store can hold."""

from __future__ import annotations

import json
from typing import Any


class BadBody(Exception):
    """A body no honest client sends: the view answers 400 with this message."""


def json_depth_ok(data: object, limit: int) -> bool:
    """Whether ``data`` nests no deeper than ``limit`` (iterative: a deep document cannot overflow it)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


def load_json(raw: bytes | str, limit: int) -> Any:
    """Parse UTF-8 JSON nesting at most ``limit`` levels, or raise BadBody with a clear reason."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise BadBody(f"body is not UTF-8 (byte {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadBody(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise BadBody(f"JSON nested deeper than {limit} levels") from exc
    if not json_depth_ok(data, limit):
        raise BadBody(f"JSON nested deeper than {limit} levels")
    try:
        # A lone surrogate (\\ud800) parses, but no UTF-8 store or reply could ever hold it.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadBody("JSON holds invalid Unicode (a lone surrogate)") from exc
    return data


def load_json_object(raw: bytes | str, limit: int) -> dict[str, Any]:
    """Like load_json, for a body that must be one JSON object."""
    data = load_json(raw, limit)
    if not isinstance(data, dict):
        raise BadBody("JSON body is not an object")
    return data
