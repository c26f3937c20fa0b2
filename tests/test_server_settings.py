"""Settings come from the documented environment variables, and the README lists them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import server
from storage.db import dialect
from tests.fakes import FakeEncoder
from tests.test_bot_hardening import quick

ROOT = Path(__file__).resolve().parent.parent


def test_environment_names_are_read() -> None:
    env = {
        "KEFU_WECHAT_TOKEN": "t",
        "KEFU_WECHAT_APPID": "wx1",
        "KEFU_WECHAT_SECRET": "s",
        "KEFU_WECHAT_AES_KEY": "k" * 43,
        "KEFU_WECHAT_MODE": "safe",
        "KEFU_WECHAT_FORMAT": "json",
        "KEFU_WECHAT_API_BASE": "http://127.0.0.1:1",
        "KEFU_DB": "/tmp/x.db",
        "KEFU_HOST": "0.0.0.0",
        "KEFU_PORT": "9000",
    }
    s = server.load_settings(env)
    assert (s.wechat_token, s.wechat_appid, s.wechat_secret, s.wechat_mode, s.wechat_format) == (
        "t",
        "wx1",
        "s",
        "safe",
        "json",
    )
    assert (s.wechat_api_base, s.db, s.host, s.port) == ("http://127.0.0.1:1", "/tmp/x.db", "0.0.0.0", 9000)
    assert server.load_settings(env, db="/tmp/y.db").db == "/tmp/y.db"
    assert server.load_settings({"KEFU_REPORT_PUSH": ""}).report_push == ""
    assert server.load_settings({"KEFU_PORT": ""}).port == 8080
    pools = server.load_settings({"KEFU_DB_READERS": "2", "KEFU_DB_WRITERS": "8"})
    assert (pools.db_readers, pools.db_writers) == (2, 8)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEFU_WECHAT_MODE": "safe", "KEFU_WECHAT_AES_KEY": "short"}, "43-character"),
        ({"KEFU_WECHAT_FORMAT": "yaml"}, "KEFU_WECHAT_FORMAT"),
        ({"KEFU_PORT": "eighty"}, "KEFU_PORT"),
        ({"KEFU_AGENT_HOURS": "weekdays 9-5"}, "business hours"),
        ({"KEFU_DB_READERS": "0"}, "KEFU_DB_READERS must be from 1 to 64"),
        ({"KEFU_DB_WRITERS": "many"}, "KEFU_DB_WRITERS"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(server.SettingsError, match=message):
        server.load_settings(env)


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert server.settings_table() in readme
    assert readme.startswith("# kefu 客服\n\n```\nmake run\nmake test\n```")


def test_flags_read_as_booleans() -> None:
    assert server.load_settings({"KEFU_TRUST_PROXY": "0"}).trust_proxy is False
    assert server.load_settings({"KEFU_TRUST_PROXY": "yes"}).trust_proxy is True
    with pytest.raises(server.SettingsError, match="KEFU_TRUST_PROXY"):
        server.load_settings({"KEFU_TRUST_PROXY": "maybe"})


async def test_serve_sizes_its_database_pools_from_the_settings(aiohttp_client: Any, make_settings: Any) -> None:
    app = server.make_app(make_settings(db_readers=2, db_writers=3), responder=quick, encoder=FakeEncoder())
    await aiohttp_client(app)
    runner = app[server.RUNNER]
    expected_writers = 3 if dialect(runner.db) == "postgresql" else 1  # SQLite has one writer whatever is asked
    assert (runner.readers, runner.writers) == (2, expected_writers)
