"""Past one machine: two kefu replicas and two Rasa servers on one PostgreSQL, behind a real nginx.

``python -m bench scale`` starts a throwaway PostgreSQL server (tests/pg_cluster.py), imports the demo
shop into it, starts two Rasa servers and two ``kefu serve`` replicas (one Rasa each), and nginx
(Debian's package, installed if missing) balancing them round-robin on loopback. It sends signed
pushes through nginx at a fixed rate, each from a new shopper, and behaves as WeChat does: no answer
within 5 s, a connection error or a 5xx, and the same push (same MsgId) is sent again, up to three
times in all, so a retry lands on the other replica. Mid-run one replica is killed with SIGKILL and
started again. Then it waits for every reply (a message stored by the killed replica is answered
once its lease runs out) and counts, per push: answered (at least one reply), lost (a 200 but never
a reply) and duplicates (more than one reply). It also measures one replica's throughput alone, in
the same run. The last line is
``replicas=2 sent=0 answered=0 lost=0 duplicates=0 p99_ms=0``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import xmltodict
from aiohttp import web

from bench.common import ROOT, BenchContext, percentile, push_xml
from bench.load_bench import shopper_texts
from intents.service import RasaService
from intents.training import default_cache, default_rasa_venv, model_path
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.helpers import free_port
from tests.pg_cluster import cluster
from tests.pushes import TOKEN, signed_query

RATE = 25.0  # pushes per second through nginx: within two replicas on two cores
SECONDS = 30.0  # of traffic
KILL_AT, RESTART_AFTER = 10.0, 3.0  # seconds into the traffic; seconds the replica stays down
BURST = 24  # pushes sent at once just before the kill, so the killed replica dies holding some
WECHAT_WINDOW = 5.0
ATTEMPTS = 3  # WeChat's first push and its two retries
DRAIN = 120.0  # seconds to wait for the last replies: longer than a stored message's 60 s lease
ALONE_SECONDS, ALONE_CONCURRENCY = 10.0, 16


@dataclass
class Push:
    """One shopper's one message and what became of it."""

    openid: str
    started: float
    acknowledged: bool = False  # some attempt got a 200
    attempts: int = 0  # pushes of it sent (WeChat's retries after the first)
    replies: list[float] = field(default_factory=list)  # when each reply came (in band or through the API)


@dataclass
class Replica:
    """One ``kefu serve`` process."""

    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def nginx_binary() -> str:
    """Debian's nginx, installed if missing (we run as root)."""
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if not found:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env, stdout=subprocess.DEVNULL)
        found = shutil.which("nginx") or "/usr/sbin/nginx"
    return str(found)


NGINX_CONF = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    upstream kefu {{
        server 127.0.0.1:{a} max_fails=1 fail_timeout=3s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=3s;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1m;
        location / {{
            proxy_pass http://kefu;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_connect_timeout 1s;
            proxy_read_timeout 6s;
        }}
    }}
}}
"""


@asynccontextmanager
async def nginx(a: int, b: int) -> AsyncIterator[str]:
    """nginx on a free loopback port, round-robin over the two replicas; yields its URL."""
    folder = Path(tempfile.mkdtemp(prefix="kefu-nginx-"))
    port = free_port()
    (folder / "nginx.conf").write_text(NGINX_CONF.format(folder=folder, a=a, b=b, port=port))
    proc = subprocess.Popen([nginx_binary(), "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off; user root;"])
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def wait_healthy(http: aiohttp.ClientSession, url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(url + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s")


class Driver:
    """Sends pushes as WeChat does and keeps every reply, in band or through the fake API."""

    def __init__(self, http: aiohttp.ClientSession, fake: FakeWeChatAPI, texts: list[str]) -> None:
        self.http = http
        self.pushes: dict[str, Push] = {}
        self.texts = texts
        self.ids: Iterator[int] = itertools.count(50_000_000)
        self._seen_sent = 0
        self.fake = fake

    def collect_sent(self) -> None:
        """Replies the replicas sent through the customer-service API since the last look."""
        now = time.perf_counter()
        for message in self.fake.sent[self._seen_sent :]:
            push = self.pushes.get(message["touser"])
            if push is not None:
                push.replies.append(now)
        self._seen_sent = len(self.fake.sent)

    async def push(self, url: str, prefix: str) -> Push:
        n = next(self.ids)
        openid = f"{prefix}{n}"
        push = self.pushes[openid] = Push(openid, time.perf_counter())
        body = push_xml(openid, self.texts[n % len(self.texts)], n).encode()
        for _ in range(ATTEMPTS):
            push.attempts += 1
            try:
                async with self.http.post(
                    url + "/wechat",
                    params=signed_query(int(time.time())),
                    data=body,
                    timeout=aiohttp.ClientTimeout(total=WECHAT_WINDOW),
                ) as resp:
                    answer = await resp.text()
                    if resp.status != 200:
                        continue  # a 502 from nginx while a replica is down, a 503: WeChat sends it again
            except (TimeoutError, aiohttp.ClientError):
                continue
            push.acknowledged = True
            if answer and answer != "success":
                if xmltodict.parse(answer)["xml"].get("Content"):
                    push.replies.append(time.perf_counter())
            return push
        return push


async def fake_api() -> tuple[FakeWeChatAPI, web.AppRunner, str]:
    fake = FakeWeChatAPI(now=time.time())
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return fake, runner, f"http://127.0.0.1:{port}"


def replica_env(url: str, port: int, api: str, rasa: RasaService) -> dict[str, str]:
    return {
        **os.environ,
        "KEFU_DB": url,
        "KEFU_PORT": str(port),
        "KEFU_WECHAT_TOKEN": TOKEN,
        "KEFU_WECHAT_APPID": APPID,
        "KEFU_WECHAT_SECRET": SECRET,
        "KEFU_WECHAT_API_BASE": api,
        "KEFU_RASA_URL": rasa.url,
        "KEFU_RASA_TOKEN": rasa.token,
        "KEFU_AGENT_HOURS": "mon-sun 00:00-23:59",
        "KEFU_LOG_FORMAT": "text",
        "PYTHONPATH": str(ROOT),
    }


async def alone(driver: Driver, url: str) -> float:
    """Replies per second from one replica with ALONE_CONCURRENCY shoppers waiting for theirs."""
    done = 0
    deadline = time.monotonic() + ALONE_SECONDS

    async def shopper() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            push = await driver.push(url, "oAlone")
            for _ in range(int(3 * WECHAT_WINDOW / 0.02)):
                driver.collect_sent()
                if push.replies:
                    done += 1
                    break
                await asyncio.sleep(0.02)

    started = time.monotonic()
    await asyncio.gather(*(shopper() for _ in range(ALONE_CONCURRENCY)))
    return done / (time.monotonic() - started)


async def run(ctx: BenchContext) -> list[str]:
    """Two replicas behind nginx through a SIGKILL; one replica alone; then the summary line."""
    lines: list[str] = []
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    second = RasaService(Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(cache)), model_path(cache))
    folder = Path(tempfile.mkdtemp(prefix="kefu-scale-"))
    with cluster() as url:
        code = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "server", "--db", url, "kb", "import", str(ROOT / "kb" / "demo")],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env=code,
        )
        await second.start()
        fake, fake_runner, api = await fake_api()
        ports = (free_port(), free_port())
        replicas = [
            Replica(port, replica_env(url, port, api, rasa), folder / f"replica{i}.log")
            for i, (port, rasa) in enumerate(zip(ports, (ctx.rasa, second), strict=True))
        ]
        try:
            async with aiohttp.ClientSession() as http:
                for replica in replicas:
                    replica.start()
                for replica in replicas:
                    await wait_healthy(http, f"http://127.0.0.1:{replica.port}")
                driver = Driver(http, fake, shopper_texts())
                async with nginx(*ports) as front:
                    lines.extend(await traffic(driver, front, replicas[0], http))
                alone_rps = await alone(driver, f"http://127.0.0.1:{ports[1]}")
                lines.append(
                    f"scale: one replica alone (its own Rasa, {ALONE_CONCURRENCY} shoppers waiting): {alone_rps:.1f} replies/s"
                )
                lines.append(summary(driver, "oScale"))
        finally:
            for replica in replicas:
                replica.stop()
            await fake_runner.cleanup()
            await second.stop()
    shutil.rmtree(folder, ignore_errors=True)
    return lines


async def traffic(driver: Driver, front: str, victim: Replica, http: aiohttp.ClientSession) -> list[str]:
    """Open-loop pushes through nginx, one replica killed and restarted mid-run, then the drain."""
    tasks: list[asyncio.Task[Push]] = []
    started = time.monotonic()
    killed = restarted = False
    n = 0
    while (elapsed := time.monotonic() - started) < SECONDS:
        if not killed and elapsed >= KILL_AT:
            tasks.extend(asyncio.create_task(driver.push(front, "oScale")) for _ in range(BURST))
            await asyncio.sleep(0.15)  # stored, not answered yet: the intent model is still at work
            victim.kill()
            killed = True
        if killed and not restarted and elapsed >= KILL_AT + RESTART_AFTER:
            victim.start()
            restarted = True
        while n < elapsed * RATE:
            tasks.append(asyncio.create_task(driver.push(front, "oScale")))
            n += 1
        driver.collect_sent()
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + DRAIN
    while time.monotonic() < deadline:
        driver.collect_sent()
        pushes = [p for p in driver.pushes.values() if p.openid.startswith("oScale")]
        if all(p.replies for p in pushes if p.acknowledged):
            await asyncio.sleep(3)  # a late duplicate would come now
            driver.collect_sent()
            break
        await asyncio.sleep(0.2)
    await wait_healthy(http, f"http://127.0.0.1:{victim.port}")
    pushes = [p for p in driver.pushes.values() if p.openid.startswith("oScale")]
    unacked = sum(1 for p in pushes if not p.acknowledged)
    retried = sum(1 for p in pushes if p.attempts > 1)
    return [
        f"scale: {len(pushes)} pushes at {RATE:g}/s for {SECONDS:g} s through nginx, {BURST} of them at once at {KILL_AT:g} s, "
        f"then replica 1 killed (SIGKILL), started again {RESTART_AFTER:g} s later; {retried} pushes sent again by WeChat's rule "
        f"(no 200 within 5 s), {unacked} never got a 200 in {ATTEMPTS} attempts; "
        f"{len(driver.fake.sent)} replies through the customer-service API, the rest in band"
    ]


def summary(driver: Driver, prefix: str) -> str:
    pushes = [p for p in driver.pushes.values() if p.openid.startswith(prefix)]
    answered = [p for p in pushes if p.replies]
    lost = sum(1 for p in pushes if p.acknowledged and not p.replies)
    duplicates = sum(1 for p in pushes if len(p.replies) > 1)
    latencies = [(min(p.replies) - p.started) * 1000 for p in answered]
    p99 = percentile(latencies, 99) if latencies else 0.0
    return f"replicas=2 sent={len(pushes)} answered={len(answered)} lost={lost} duplicates={duplicates} p99_ms={p99:.0f}"
