"""Wrong-shaped stream chunks from a real (stand-in) endpoint, with both clients: each fails its own request with
its reason, the run goes on and ends as a verdict (exit 1), never a crash."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_hostile import HOSTILE, _wait_for_port, bench

# kind of tests/hostile_endpoint.py's BAD_CHUNKS -> what its failed request's error says (the SDK parses JSON itself)
SAYS = {
    "delta_string": "delta is str",
    "content_number": "content is int",
    "surrogate": "lone surrogate",
    "deep": "nested too deep|maximum recursion depth",
    "usage_text": "not a count",
    "finish_list": "finish_reason is list",
}


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_a_wrong_shaped_chunk_fails_its_request_and_the_run_goes_on(client: str, tmp_path: Path) -> None:
    from bench.run.server import free_port

    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, HOSTILE, "bad_chunks", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    out = tmp_path / "out"
    n = 2 * len(SAYS)  # every other request has a wrong-shaped chunk, each kind once
    try:
        _wait_for_port(port)
        p = bench("run", f"endpoint=http://127.0.0.1:{port}", f"out_dir={out}", f"load.max_requests={n}",
                  "telemetry_interval_s=0", f"load.client={client}", cwd=tmp_path)  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = (out / "single" / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    errors = [r["error"] for r in records if r["error"]]
    assert len(records) == n and len(errors) == len(SAYS), errors  # the others were measured
    assert all(any(re.search(says, e) for e in errors) for says in SAYS.values()), errors
