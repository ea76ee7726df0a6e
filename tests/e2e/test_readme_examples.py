"""The README's "Using the API" examples run as written, in order, against the platform with the demo data.

The ```bash blocks of that section are run one after the other in ONE bash process (`set -euo pipefail`), so
shell variables carry from block to block as they do in a reader's terminal. The README points its helpers at
`$API` (default `localhost:4000/graphql`, what `make run` prints); here API is the router of the e2e platform,
and any literal `localhost:4000` is replaced by the router's address too. The demo data `make run` seeds is
seeded here (nexuscart/seed.py), right before the blocks, since every test starts from empty tables.

A block fails the test when a command fails (the README's `q` helper exits non-zero on a GraphQL answer with
`errors`) or when any JSON answer printed carries `errors` (e.g. a plain curl). Subscriptions (`curl -N` with
`Accept: text/event-stream`) cannot run to completion: a `curl` shell function in front of the README reads
such a stream until its first event and closes it; the stream must answer 200 and its event must carry no
errors. `productUpdated` speaks only when the product changes, so that stream is read for a few seconds only
to see that it is accepted without an error; every other stream must deliver its first event.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from redis.asyncio import Redis

from nexuscart.seed import seed_demo_data
from subgraphs.cart import repository as cart_store
from tests.e2e.test_commerce import eventually

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Using the API"

# Streams that send nothing until something changes: read briefly (an error would come at once), no event needed.
QUIET_STREAMS = ("productUpdated",)

STREAM_READER = r'''
"""`curl ... -H 'accept: text/event-stream'` as the README test runs it: print the stream until its first
event, then close it. Exit 1 on a non-200 answer, an event with errors, or a stream that ends (or stays
silent) without an event, unless it is one that speaks only on change."""
import json, queue, subprocess, sys, threading, time

args = sys.argv[1:]
body = sys.stdin.buffer.read() if "@-" in args else None
request = " ".join(args) + (body or b"").decode()
quiet = any(name in request for name in QUIET_STREAMS)
wait = 5.0 if quiet else 60.0

curl = subprocess.Popen(["curl", "-i", *args], stdout=subprocess.PIPE,
                        stdin=subprocess.PIPE if body is not None else subprocess.DEVNULL)
if body is not None:
    curl.stdin.write(body)
    curl.stdin.close()
lines: "queue.Queue[bytes | None]" = queue.Queue()
threading.Thread(target=lambda: ([lines.put(line) for line in curl.stdout], lines.put(None)), daemon=True).start()

status, event, deadline = None, None, time.monotonic() + wait
while event is None:
    try:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        break  # silent until the deadline
    if line is None:
        break  # the stream ended
    text = line.decode(errors="replace").rstrip("\r\n")
    print(text, flush=True)
    if status is None and text.startswith("HTTP/"):
        status = int(text.split()[1])
    elif text.startswith("data:") and text[5:].strip():
        event = json.loads(text[5:])
curl.terminate()
curl.wait()
if status != 200:
    sys.exit(f"the stream answered HTTP {status}")
if event is None:
    if quiet:
        print(f"(no event within {wait:.0f} s: this stream speaks only on change)")
        sys.exit(0)
    sys.exit("the stream delivered no event")
if event.get("errors"):
    sys.exit(f"the stream's event carries errors: {event['errors']}")
print("(first event received; stream closed)")
'''.replace("QUIET_STREAMS", repr(QUIET_STREAMS))

PRELUDE = """\
curl() {  # a stream (Accept: text/event-stream) is read until its first event, then closed
  case "$*" in
    *text/event-stream*) "$README_TEST_PYTHON" "$README_TEST_STREAM_READER" "$@" ;;
    *) command curl "$@" ;;
  esac
}
"""


def readme_blocks() -> list[str]:
    """The ```bash blocks of the README's "Using the API" section (its ### subsections included), in order."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION) + 2)
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)


def answers_with_errors(output: str) -> list[str]:
    """Every printed JSON answer (or SSE data line) that carries `errors`."""
    bad = []
    for line in output.splitlines():
        candidate = line[5:].strip() if line.startswith("data:") else line.strip()
        if not candidate.startswith("{"):
            continue
        try:
            answer = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(answer, dict) and answer.get("errors"):
            bad.append(candidate[:500])
    return bad


async def wait_for_demo_data_to_reach_the_cart(db_admin: asyncpg.Pool, redis: Redis) -> None:
    """`make run` seeds before anyone types: here the seed's events (product.created, inventory.stock_changed)
    must first reach the cart's projections, or addToCart would not know the demo variants yet."""
    variants = [r["id"] for r in await db_admin.fetch("SELECT id FROM catalog.product_variants")]
    stocked = [r["variant_id"] for r in await db_admin.fetch(
        "SELECT DISTINCT variant_id FROM inventory.stock_levels WHERE on_hand > 0")]
    assert variants and stocked

    async def projected() -> bool:
        return (await redis.exists(*(cart_store.variant_key(v) for v in variants)) == len(variants)
                and await redis.exists(*(cart_store.stock_key(v) for v in stocked)) == len(stocked))

    await eventually(projected, within=180, what="the demo catalogue and stock to reach the cart's projections")


async def test_readme_examples_run_as_written(platform: Any, settings: Any, db_admin: asyncpg.Pool, redis: Redis,
                                              tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 5, f"expected the README's shell examples, found {len(blocks)} ```bash blocks"
    assert "seeded demo data" in await seed_demo_data(settings)
    await wait_for_demo_data_to_reach_the_cart(db_admin, redis)

    router = urlsplit(platform.router_url)
    reader = tmp_path / "stream_reader.py"
    reader.write_text(STREAM_READER)
    script = [PRELUDE]
    for number, block in enumerate(blocks, 1):
        # On a line of its own, even after an answer printed without a final newline
        script.append(f"printf '\\n### README block {number}/{len(blocks)}\\n'\n")
        script.append(block.replace("localhost:4000", router.netloc))
    script.append("printf '\\n### README examples done\\n'\n")
    (tmp_path / "readme.sh").write_text("".join(script))

    env = {**os.environ, "API": platform.router_url, "README_TEST_PYTHON": sys.executable,
           "README_TEST_STREAM_READER": str(reader)}
    proc = await asyncio.create_subprocess_exec(
        "bash", "--noprofile", "--norc", "-euo", "pipefail", str(tmp_path / "readme.sh"), cwd=REPO, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    except TimeoutError:
        proc.kill()
        raw, _ = await proc.communicate()
    output = raw.decode(errors="replace")
    print(output)  # shown for a passing run with `pytest -rP`

    markers = re.findall(r"^### README block (\d+)/", output, flags=re.M)
    last = int(markers[-1]) if markers else 0
    where = f"README block {last}:\n{blocks[last - 1]}" if last else "the README helpers"
    assert proc.returncode == 0, f"{where}\nfailed (exit {proc.returncode}); output:\n{output[-6000:]}"
    assert output.rstrip().endswith("### README examples done"), output[-6000:]
    errors = answers_with_errors(output)
    assert not errors, "GraphQL answers with errors:\n" + "\n".join(errors) + f"\n\noutput:\n{output[-6000:]}"
