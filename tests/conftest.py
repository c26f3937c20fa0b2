"""Shared fixtures: settings on a temporary database, the fake WeChat API, a test clock."""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per test process, set before numpy loads: `make test-fast` runs two workers on
# two cores, and two-thread pools spinning against the other worker made one 6,000-row logistic fit
# take 17 s instead of 0.8 s. The encoders set their own thread counts.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib
import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import server
from console.auth import add_user
from intents.training import default_cache, default_rasa_venv, model_path
from kb.encoder import DEFAULT_MODEL, DEFAULT_VARIANT, Encoder, open_encoder
from kb.importer import import_dir
from kb.onnx_export import read_stamp
from kb.search import KnowledgeBase
from storage.db import DbRunner, Store, open_db
from tests import browser
from tests.fakes import APPID, SECRET, FakeEncoder, FakeWeChatAPI
from tests.helpers import OpenShop, StoredVectors, free_port
from tests.pushes import AES_KEY, TOKEN

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "kb" / "demo"

START = 1_764_036_000.0  # 2025-11-25 10:00 in China: agents at work


# The fixtures that start something expensive, and the marker that lets `-m` leave their tests out.
MARKED_FIXTURES = {"rasa_server": "rasa", "real_encoder": "model"}


def unmarked(items: list[pytest.Item]) -> list[str]:
    """Tests that use a fixture of MARKED_FIXTURES (directly or through another fixture) without its marker."""
    return [
        f"{item.nodeid} uses {fixture} but is not marked {mark}"
        for item in items
        for fixture, mark in MARKED_FIXTURES.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(mark) is None
    ]


# `make test-postgres` sets this to a database on a throwaway server (tests/pg_cluster.py): the tests
# that keep their data through the new_db fixture then run on PostgreSQL, and only those run.
TEST_PG = os.environ.get("KEFU_TEST_DB", "")
_schemas = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a suite in which `-m "not rasa"` would still start Rasa (or load the model); on
    PostgreSQL, leave out the tests whose data is not kept through new_db (they run on SQLite only)."""
    if missing := unmarked(items):
        raise pytest.UsageError("tests without the marker of what they start:\n  " + "\n  ".join(missing))
    if TEST_PG:
        sqlite_only = [item for item in items if not on_postgres_too(item)]
        if sqlite_only:
            config.hook.pytest_deselected(items=sqlite_only)
            items[:] = [item for item in items if on_postgres_too(item)]


def on_postgres_too(item: pytest.Item) -> bool:
    """Whether a test runs on PostgreSQL: it is marked postgres (PostgreSQL only), or it keeps its data
    through new_db or module_db (or the demo shop's copy) and is not marked sqlite (it tests SQLite itself)."""
    if item.get_closest_marker("postgres") is not None:
        return True
    fixtures = getattr(item, "fixturenames", ())
    kept = {"new_db", "module_db", "demo_db_path"} & set(fixtures)
    return bool(kept) and item.get_closest_marker("sqlite") is None


def pg_database(name: str) -> str:
    """A new, empty database on the run's PostgreSQL server; its URL."""
    import psycopg

    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{TEST_PG.rsplit('/', 1)[0]}/{name}"


def db_target(folder: Path) -> Callable[[str], str]:
    """Databases by name: SQLite files in ``folder``, or under `make test-postgres` a schema each on the
    run's PostgreSQL server (a URL whose search_path is that schema)."""
    made: dict[str, str] = {}

    def target(name: str) -> str:
        if name not in made:
            if TEST_PG:
                import psycopg

                schema = f"t{next(_schemas)}_{os.getpid()}_{re.sub(r'[^a-z0-9]+', '_', name.lower())}"
                with psycopg.connect(TEST_PG, autocommit=True) as admin:
                    admin.execute(f'CREATE SCHEMA "{schema}"')
                made[name] = f"{TEST_PG}?options=-csearch_path%3D{schema}"
            else:
                made[name] = str(folder / name)
        return made[name]

    return target


@pytest.fixture
def new_db(tmp_path: Path) -> Callable[[str], str]:
    """Where this test keeps a database called ``name`` (``open_db`` takes it; the same name again is
    the same database): a SQLite file in tmp_path, or under `make test-postgres` a schema of its own."""
    return db_target(tmp_path)


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """new_db for a module's shared fixtures (one app served for a whole module)."""
    return db_target(tmp_path_factory.mktemp("module-db"))


@pytest.fixture(autouse=True)
def _chromium_is_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that launched Chromium must carry the browser marker."""
    before = browser.launches
    yield
    if browser.launches != before and request.node.get_closest_marker("browser") is None:
        pytest.fail(f"{request.node.nodeid} drives Chromium but is not marked browser")


class Clock:
    """A clock tests move by hand; the app takes it as a parameter."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_runner() -> Iterator[Callable[[Store], DbRunner]]:
    """Puts a database behind a DbRunner; every runner made is closed, with its connections, after the test."""
    made: list[DbRunner] = []

    def make(db: Store) -> DbRunner:
        runner = DbRunner(db)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


SHOPS = ROOT / "bench" / "data" / "shops"
# Each shop's stored embeddings per encoder, kept from its first load in this run: the real model embeds
# a shop's ~700 texts once, not in every test (the index built from stored vectors is the same).
_EMBEDDED: dict[tuple[str, str], list[dict[str, Any]]] = {}


def load_shop(db: Store, folder: Path, encoder: Encoder) -> KnowledgeBase:
    """Import a shop's CSV files into ``db`` and load its knowledge base (each shop embedded once a run)."""
    import_dir(db, folder)
    if (folder.name, encoder.name) in _EMBEDDED:
        db.table("kb_embeddings").insert_all(_EMBEDDED[folder.name, encoder.name])
    kb = KnowledgeBase(encoder)
    kb.load(db)
    _EMBEDDED.setdefault((folder.name, encoder.name), list(db.table("kb_embeddings").rows))
    return kb


@pytest.fixture
def open_shop(new_db: Callable[[str], str], make_runner: Callable[[Store], DbRunner]) -> OpenShop:
    """A dev shop's database (its CSV files imported) and knowledge base; runners closed after the test."""

    def open_shop(name: str, encoder: Encoder) -> tuple[DbRunner, KnowledgeBase]:
        db = open_db(new_db(f"{name}.db"), server.MIGRATIONS)
        kb = load_shop(db, SHOPS / name, encoder)
        return make_runner(db), kb

    return open_shop


@pytest.fixture
async def fake_wechat(aiohttp_server: Callable[..., Any], clock: Clock) -> tuple[FakeWeChatAPI, TestServer]:
    fake = FakeWeChatAPI(now=clock.now)
    srv = await aiohttp_server(fake.app())
    return fake, srv


@pytest.fixture
def make_settings(new_db: Callable[[str], str]) -> Callable[..., server.Settings]:
    def build(**overrides: Any) -> server.Settings:
        values: dict[str, Any] = {
            "db": new_db("kefu.db"),
            "wechat_token": TOKEN,
            "wechat_appid": APPID,
            "wechat_secret": SECRET,
            "wechat_aes_key": AES_KEY,
            "wechat_api_base": "http://127.0.0.1:9",  # nothing listens: tests that send pass the fake
            "log_format": "text",
        }
        values.update(overrides)
        return server.Settings(**values)

    return build


@pytest.fixture
async def wechat_client(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., server.Settings],
    clock: Clock,
    fake_wechat: tuple[FakeWeChatAPI, TestServer],
) -> Callable[..., Any]:
    """An app wired to the fake WeChat API; pass a responder and settings overrides."""

    async def build(responder: Any = None, nlu: Any = None, encoder: Any = None, **overrides: Any) -> TestClient:
        _, srv = fake_wechat
        settings = make_settings(wechat_api_base=str(srv.make_url("")).rstrip("/"), **overrides)
        app = server.make_app(settings, responder=responder, nlu=nlu, encoder=encoder or FakeEncoder(), clock=clock)
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return build


USERS = (("xiaomei", "agent-pass-1", "agent"), ("boss", "manager-pass-1", "manager"))
_user_rows: list[dict[str, Any]] = []


def add_users(db_path: str | Path) -> None:
    """The console users the browser tests log in as: an agent and a manager.

    The first call creates them through ``add_user``; later calls copy the rows it stored (the same
    Argon2 hashes, so logins verify for real), since each hash costs a quarter of a second by design."""
    db = open_db(db_path, server.MIGRATIONS)
    if not _user_rows:
        for username, password, role in USERS:
            add_user(db, username, password, role, time.time())
        names = [username for username, _, _ in USERS]
        _user_rows.extend(db.table("users").rows_where("username IN (?, ?)", names, select="username, password_hash, role"))
    else:
        with db.atomic():
            db.table("users").upsert_all([{**row, "created_at": time.time()} for row in _user_rows], pk="username")
    db.close()


@pytest.fixture
def live_shop(
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., server.Settings],
    demo_db_path: str,
) -> Callable[..., Any]:
    """The demo shop served with the real model and Rasa, the console's users, and a fake WeChat API."""

    async def build(rasa: RasaServer, encoder: Encoder, **overrides: Any) -> tuple[TestServer, FakeWeChatAPI]:
        fake = FakeWeChatAPI(now=time.time())
        fake_srv = await aiohttp_server(fake.app())
        add_users(demo_db_path)
        settings = make_settings(
            db=str(demo_db_path),
            wechat_api_base=str(fake_srv.make_url("")).rstrip("/"),
            rasa_url=rasa.url,
            rasa_token=rasa.token,
            **overrides,
        )
        srv = await aiohttp_server(server.make_app(settings, encoder=encoder))
        return srv, fake

    return build


@pytest.fixture
async def console_server(
    live_shop: Callable[..., Any], rasa_server: RasaServer, real_encoder: Encoder
) -> tuple[TestServer, FakeWeChatAPI]:
    """The live demo shop with agents at work around the clock, for the console's browser tests."""
    result: tuple[TestServer, FakeWeChatAPI] = await live_shop(rasa_server, real_encoder, agent_hours="mon-sun 00:00-23:59")
    return result


@pytest.fixture(scope="session")
def real_encoder() -> Iterator[Encoder]:
    """The real embedding model, loaded once per test session; its vectors of the texts the suite
    embeds every run are kept in the cache folder, under the model's export stamp."""
    model = os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL)
    encoder = open_encoder(model, os.environ.get("KEFU_EMBED_VARIANT", DEFAULT_VARIANT))
    stamp = read_stamp(Path(model).expanduser()) or {}
    made = json.dumps([encoder.name, stamp.get("source"), stamp.get("seconds")], sort_keys=True)
    key = hashlib.sha256(made.encode()).hexdigest()[:16]
    stored = StoredVectors(encoder, Path(os.environ.get("KEFU_CACHE") or default_cache()) / "test-vectors" / f"{key}.npz")
    yield stored
    stored.save()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory, real_encoder: Encoder) -> str:
    """A database holding the demo shop with its embeddings, built once and copied per test: a SQLite
    file, or under `make test-postgres` a database that each test's copy is made from."""
    target = pg_database(f"kefu_demo_{os.getpid()}") if TEST_PG else str(tmp_path_factory.mktemp("demo") / "demo.db")
    db = open_db(target, server.MIGRATIONS)
    import_dir(db, DEMO)
    KnowledgeBase(real_encoder).load(db)
    if not TEST_PG:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return target


@pytest.fixture
def demo_db_path(tmp_path: Path, demo_template: str) -> str:
    """This test's own copy of the demo shop database (a file, or a PostgreSQL database's URL)."""
    if TEST_PG:
        import psycopg

        template = demo_template.rsplit("/", 1)[1]
        name = f"{template}_{next(_schemas)}"
        with psycopg.connect(TEST_PG, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return f"{TEST_PG.rsplit('/', 1)[0]}/{name}"
    path = tmp_path / "kefu.db"
    shutil.copy(demo_template, path)
    return str(path)


@dataclass(frozen=True)
class RasaServer:
    """A real ``rasa run --enable-api`` serving the trained model."""

    url: str
    token: str


@pytest.fixture(scope="session")
def rasa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    """The real Rasa server with the trained model, started once per test session."""
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    venv = Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(cache))
    model = model_path(cache)
    if not model.exists():
        pytest.fail(f"no trained Rasa model at {model}: `make setup` trains it")
    port = free_port()
    token = "test-rasa-token"
    log = open(tmp_path_factory.mktemp("rasa") / "rasa.log", "wb")
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "rasa"),
            "run",
            "--enable-api",
            "-m",
            str(model),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            f"--auth-token={token}",  # a token starting with "-" must not read as an option
        ],
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Rasa exited with {proc.returncode} (log: {log.name})")
            try:
                with urllib.request.urlopen(f"{url}/status?token={token}", timeout=2) as resp:
                    if b"model_file" in resp.read():
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("Rasa did not become ready in 240 s")
            time.sleep(0.5)
        yield RasaServer(url, token)
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def server_env(rasa_server: RasaServer) -> dict[str, str]:
    """Environment for a ``kefu serve`` subprocess: the session's Rasa server."""
    return {"KEFU_RASA_URL": rasa_server.url, "KEFU_RASA_TOKEN": rasa_server.token}
