"""The kefu command line, run as a shop would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import server
from tests.conftest import DEMO, ROOT, RasaServer
from tests.helpers import NewDb

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


@pytest.mark.model  # the import embeds the new texts ahead
def test_kb_import_prints_counts_and_db_flag_after_command(new_db: NewDb) -> None:
    result = kefu("kb", "import", str(DEMO), "--db", new_db("shop.db"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "products.csv: 44 added, 0 changed, 0 unchanged",
        "faq.csv: 82 added, 0 changed, 0 unchanged",
        "orders.csv: 50 added, 0 changed, 0 unchanged",
    ]


def test_kb_import_reports_bad_rows(new_db: NewDb, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(DEMO / "products.csv", folder / "products.csv")
    text = (folder / "products.csv").read_text(encoding="utf-8").replace("368.00", "三百")
    (folder / "products.csv").write_text(text, encoding="utf-8")
    result = kefu("--db", new_db("x.db"), "kb", "import", str(folder))
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
@pytest.mark.model
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


def test_users_add(new_db: NewDb) -> None:
    db = new_db("users.db")
    ok = kefu("--db", db, "users", "add", "xiaomei", "--role", "manager", env={"KEFU_NEW_PASSWORD": "long-enough-1"})
    assert ok.returncode == 0, ok.stderr
    assert "user xiaomei (manager) saved" in ok.stdout
    short = kefu("--db", db, "users", "add", "bob", env={"KEFU_NEW_PASSWORD": "short"})
    assert short.returncode == 2 and "at least 8" in short.stderr


@pytest.mark.model
def test_reviews_import_and_eval(tmp_path: Path, demo_db_path: Path) -> None:
    reviews = tmp_path / "reviews.csv"
    reviews.write_text(
        "review_id,order_id,sku,openid,rating,content,created_at\n"
        "V1,KF202611100000,TEA-001,oDemo001,5,茶叶很香，包装很好,2026-11-20T10:00:00+08:00\n"
        "V2,KF202611100010,CLO-007,oDemo001,1,裙子有色差，线头很多,2026-11-21T10:00:00+08:00\n"
        "V3,,TEA-001,,7,评分错了,2026-11-21T10:00:00+08:00\n",
        encoding="utf-8",
    )
    result = kefu("--db", str(demo_db_path), "reviews", "import", str(reviews))
    assert result.returncode == 1  # one row rejected, the others kept
    assert "reviews.csv: row 4: rating 7 is not from 1 to 5" in result.stderr
    assert "2 added, 0 already imported, 1 rejected; 1 negative-review cases opened" in result.stdout
    again = kefu("--db", str(demo_db_path), "reviews", "import", str(reviews))
    assert "0 added, 2 already imported" in again.stdout
    evaluation = kefu("--db", str(demo_db_path), "reviews", "eval", str(FIXTURES / "reviews_sample.csv"))
    assert evaluation.returncode == 0, evaluation.stderr
    lines = evaluation.stdout.strip().splitlines()
    assert re.fullmatch(r"accuracy=\d\.\d{3} macro_f1=\d\.\d{3} neutral_rate=\d\.\d{3} n=34", lines[-1]), lines[-1]
    assert lines[0].split()[:3] == ["expected", "/", "predicted"]


@pytest.mark.parametrize(
    ("argv", "owner"),
    [
        (["serve"], "server"),
        (["chat"], "bot.cli"),
        (["train"], "intents.cli"),
        (["intents", "eval", "x.csv"], "intents.cli"),
        (["intents", "export", "--out", "x.csv"], "intents.cli"),
        (["kb", "import", "folder"], "kb.cli"),
        (["kb", "export", "folder"], "kb.cli"),
        (["kb", "eval", "x.csv"], "kb.cli"),
        (["reviews", "import", "x.csv"], "reviews.cli"),
        (["reviews", "eval", "x.csv"], "reviews.cli"),
        (["reviews", "train"], "reviews.cli"),
        (["report", "--since", "2025-11-24", "--until", "2025-11-30", "--out", "r.html"], "console.cli"),
        (["users", "add", "xiaomei"], "console.cli"),
    ],
)
def test_each_package_owns_its_commands(argv: list[str], owner: str) -> None:
    command = server.build_parser().parse_args(argv).func
    assert getattr(command, "func", command).__module__ == owner


def test_no_command_module_holds_sql() -> None:
    modules = sorted(ROOT.glob("*/cli.py"))
    assert [m.parent.name for m in modules] == ["bot", "console", "intents", "kb", "reviews"]
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b|\.(query|execute|executescript)\(")
    for module in modules:
        source = module.read_text(encoding="utf-8")
        assert not sql.search(source), f"{module.relative_to(ROOT)}: SQL belongs in the package's store module"
