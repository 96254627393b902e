"""Every console page answers in under 100 ms with many keys in the account (2,000 in CI, seeded with
concurrent CreateKey calls through the public API; set OPENKMS_CONSOLE_PERF_KEYS=10000 to measure
10,000). Cold pages (keys the server has not described since it started) and warm ones are measured
over HTTP; timings are written to ``test-artifacts/console/timings.json``."""

from __future__ import annotations

import html
import json
import os
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Server, launch
from tests.e2e.console.conftest import SHOTS
from tests.e2e.console.http import ConsoleHttp

KEYS = int(os.environ.get("OPENKMS_CONSOLE_PERF_KEYS", "2000"))
BUDGET_MS = 100.0
SAMPLES = 5


def seed(server: Server, count: int) -> list[str]:
    kms = server.client(max_pool_connections=32)

    def one(i: int) -> str:
        key_id: str = kms.create_key(Description=f"perf {i}")["KeyMetadata"]["KeyId"]
        if i % 10 == 0:
            kms.create_alias(AliasName=f"alias/perf-{i:05d}", TargetKeyId=key_id)
        return key_id

    with ThreadPoolExecutor(32) as pool:
        return list(pool.map(one, range(count)))


def next_link(page_html: str) -> str | None:
    match = re.search(r'href="([^"]+)" rel="next"', page_html)
    return html.unescape(match.group(1)) if match else None


@pytest.mark.serial
def test_pages_are_fast_with_many_keys(workdir: Path) -> None:
    server = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="console-perf-")), None)
    try:
        started = time.time()
        key_ids = seed(server, KEYS)
        seeding = time.time() - started
        client = ConsoleHttp(server.endpoint)
        assert client.sign_in(server.access_key, server.secret_key).status == 303
        timings: dict[str, list[float]] = {}

        def measure(name: str, path: str, samples: int = SAMPLES) -> str:
            text = ""
            for _ in range(samples):
                answer = client.get(path)
                assert answer.status == 200, (path, answer.status)
                timings.setdefault(name, []).append(answer.seconds * 1000)
                text = answer.text
            return text

        # The server process warms up (threads started, statements compiled) on any first page; the
        # keys of the list stay cold: no request has described them since the server started.
        for path in ("/console/keys/create", "/console/audit", f"/console/keys/{key_ids[-1]}?tab=aliases"):
            assert client.get(path).status == 200
        # Cold: the first view of pages of the list whose keys no request has described yet.
        first = client.get("/console/keys")
        cold = "key list, first views of pages 1-10 (cold)"
        timings[cold] = [first.seconds * 1000]
        link = next_link(first.text)
        for _ in range(2, 11):
            assert link is not None
            answer = client.get(link)
            timings[cold].append(answer.seconds * 1000)
            link = next_link(answer.text)
        assert first.text.count('data-label="Key ID"') == 25  # the default page size
        # Warm: the pages people move between.
        measure("key list page 1", "/console/keys")
        page2 = next_link(measure("key list page 1 (again)", "/console/keys", 1))
        assert page2 is not None
        measure("key list page 2", page2)
        middle = (KEYS // 2) // 10 * 10  # a key far down the list, found at once by its full alias
        found = measure("key list filtered by an alias", f"/console/keys?filter=perf-{middle:05d}")
        assert key_ids[middle] in found
        measure("key list filtered, no match", "/console/keys?filter=no-such-key")
        key_id = key_ids[0]
        for tab in ("policy", "crypto", "tags", "rotation", "aliases", "grants", "events"):
            measure(f"key page, {tab} tab", f"/console/keys/{key_id}?tab={tab}")
        measure("schedule deletion page", f"/console/keys/{key_id}/delete")
        measure("create key wizard", "/console/keys/create")
        measure("event history", "/console/audit")
        measure("event history, all events", "/console/audit?read_only=all")
        measure("event history of a key", f"/console/audit?key_id={key_id}&read_only=all")

        # The other page sizes of the preferences.
        for size in ("10", "50"):
            token = client.get("/console/keys").csrf()
            assert client.post("/console/preferences", {"csrf_token": token, "page_size": size}).status == 303
            listed = measure(f"key list, {size} per page", "/console/keys")
            assert listed.count('data-label="Key ID"') == int(size)
        # Cold pages of 50 keys: pages 6-8 hold keys 250-399, which no request has described yet.
        link = next_link(client.get("/console/keys").text)
        for _ in range(4):
            assert link is not None
            link = next_link(client.get(link).text)
        cold50 = "key list, 50 per page, first views of pages 6-8 (cold)"
        for _ in range(3):
            assert link is not None
            answer = client.get(link)
            assert answer.text.count('data-label="Key ID"') == 50
            timings.setdefault(cold50, []).append(answer.seconds * 1000)
            link = next_link(answer.text)

        report = {
            "keys": KEYS,
            "seeding_seconds": round(seeding, 1),
            "pages_ms": {
                name: {
                    "median": round(statistics.median(values), 1),
                    "max": round(max(values), 1),
                    "samples": len(values),
                }
                for name, values in timings.items()
            },
        }
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "timings.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        # The median of each kind of page: one sample slowed down by another process on a shared CI
        # machine must not fail the build (the maxima are in the report).
        slow = {name: t for name, t in report["pages_ms"].items() if t["median"] >= BUDGET_MS}  # type: ignore[union-attr]
        assert not slow, f"pages slower than {BUDGET_MS} ms with {KEYS} keys: {slow}"
    finally:
        server.stop()
