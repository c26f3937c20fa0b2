#!/bin/bash
# The first `make run` as a new user sees it: a fresh clone of this repository with an empty HOME (no pip
# cache, no ~/.cache/kefu). Prints the seconds until /healthz answers and the first push's answer time,
# then stops everything make run started (the background sentiment training too).
# Usage: bench/first_run.sh [WORKDIR]   (default: a new folder under /tmp)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/kefu-first-run-XXXX)}
export HOME=$work/home KEFU_PORT=${KEFU_PORT:-18080}
mkdir -p "$HOME"
git clone -q "$repo" "$work/kefu"
cd "$work/kefu"
start=$(date +%s)
setsid make run > "$work/make-run.log" 2>&1 &
runner=$!
trap 'kill -- -$runner 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$KEFU_PORT/healthz" > /dev/null; do
  kill -0 $runner 2> /dev/null || { echo "make run stopped: see $work/make-run.log"; exit 1; }
  sleep 2
done
echo "first make run: /healthz answered after $(( $(date +%s) - start )) s (log: $work/make-run.log)"
"$repo/.venv/bin/python" - <<'PY'
import hashlib, os, time, urllib.request
token, ts, nonce = "kefu-dev-token", str(int(time.time())), "1"
sig = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
body = ("<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[oFirstRun]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[龙井茶多少钱]]></Content>"
        f"<MsgId>{ts}001</MsgId></xml>")
url = f"http://127.0.0.1:{os.environ['KEFU_PORT']}/wechat?signature={sig}&timestamp={ts}&nonce={nonce}"
started = time.perf_counter()
answer = urllib.request.urlopen(urllib.request.Request(url, data=body.encode(), method="POST")).read().decode()
content = answer.split("<Content><![CDATA[", 1)[-1].split("]]>", 1)[0]
print(f"first push answered in {1000 * (time.perf_counter() - started):.0f} ms: {content}")
PY
