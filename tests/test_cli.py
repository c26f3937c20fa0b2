"""The kefu command line, run as a shop would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT, RasaServer

FIXTURES = Path(__file__).parent / "fixtures"


def kefu(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_kb_import_prints_counts_and_db_flag_after_command(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    result = kefu("kb", "import", str(DEMO), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "products.csv: 44 added, 0 changed, 0 unchanged",
        "faq.csv: 82 added, 0 changed, 0 unchanged",
        "orders.csv: 50 added, 0 changed, 0 unchanged",
    ]


def test_kb_import_reports_bad_rows(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(DEMO / "products.csv", folder / "products.csv")
    text = (folder / "products.csv").read_text(encoding="utf-8").replace("368.00", "三百")
    (folder / "products.csv").write_text(text, encoding="utf-8")
    result = kefu("--db", str(tmp_path / "x.db"), "kb", "import", str(folder))
    assert result.returncode == 1
    assert "products.csv: row 2, column price: '三百' is not a price" in result.stderr


@pytest.mark.model
def test_kb_eval_last_line(tmp_path: Path, demo_db_path: Path) -> None:
    result = kefu("--db", str(demo_db_path), "kb", "eval", str(FIXTURES / "kb_heldout.csv"))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"top1=\d\.\d{3} top3=\d\.\d{3} n=158", last), last


@pytest.mark.rasa
def test_intents_eval_last_line(rasa_server: RasaServer) -> None:
    env = {"KEFU_RASA_URL": rasa_server.url, "KEFU_RASA_TOKEN": rasa_server.token}
    result = kefu("intents", "eval", str(FIXTURES / "intents_heldout.csv"), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"accuracy=\d\.\d{3} macro_f1=\d\.\d{3} n=270", lines[-1]), lines[-1]
    assert lines[0].split() == ["intent", "precision", "recall", "f1", "n"]
    assert any(line.startswith("ask_price ") for line in lines)


def test_intents_eval_rejects_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("question,label\n你好,greet\n", encoding="utf-8")
    result = kefu("intents", "eval", str(bad))
    assert result.returncode == 2
    assert "text,intent" in result.stderr


@pytest.mark.rasa
def test_chat_answers_one_line_per_message(rasa_server: RasaServer, demo_db_path: Path) -> None:
    env = {"KEFU_RASA_URL": rasa_server.url, "KEFU_RASA_TOKEN": rasa_server.token, "KEFU_DB": str(demo_db_path)}
    result = kefu("chat", env=env, stdin="西湖龙井多少钱\n\n谢谢\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "368.00" in lines[0]
    assert "不客气" in lines[1]


def test_bad_setting_is_a_clear_error() -> None:
    result = kefu("chat", env={"KEFU_WECHAT_MODE": "secret"})
    assert result.returncode == 2
    assert "KEFU_WECHAT_MODE must be one of plain, compat, safe" in result.stderr
