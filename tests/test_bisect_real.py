"""One real bisect probe on the CPU engine: GOOD's variant with one of BAD's changes, run beside GOOD, judged."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.core.files import read_records, read_run
from bench.regress import probes
from bench.regress.compare import Thresholds
from tests.conftest import BENCH_RUN, require_engine

pytestmark = pytest.mark.server
# Four in flight, and BAD lets the engine batch one: the other three queue, whatever this machine's speed.
WORKLOAD = ["load=concurrency", "load.concurrency=4", "dataset.sample_size=4", "request.max_tokens=8"]


def test_a_probe_applies_the_change_beside_good_and_the_queueing_shows(tmp_path: Path) -> None:
    require_engine()
    good = tmp_path / "good"
    done = subprocess.run([*BENCH_RUN, *WORKLOAD, f"out_dir={good}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # BAD as bisect reads it: GOOD's run.json with one server field changed (its figures are not needed here).
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    run = json.loads((bad / "single" / "run.json").read_text())
    run["spec"]["server"]["extra_args"] = ["--max-num-seqs", "1"]
    (bad / "single" / "run.json").write_text(json.dumps(run))

    s = probes.subject(good, bad, None)
    assert [str(d) for d in s.applicable] == ["server.extra_args: [] -> [--max-num-seqs, 1]"]
    prober = probes.Prober(s, tmp_path / "bisect", 1, 2, Thresholds(), ["ttft_s_p50"], lambda _: list(s.applicable))
    prober.prepare()
    probe = prober(frozenset(["server.extra_args"]), 0)

    out = tmp_path / "bisect" / "probes" / f"{probes.probe_name(['server.extra_args'])}-0"
    base, changed = read_run(out / probes.GOOD), read_run(out / probes.probe_name(["server.extra_args"]))
    assert base is not None and changed is not None and base.status == changed.status == "ok", (base, changed)
    assert changed.server is not None and "--max-num-seqs" in changed.server.command
    assert base.server is not None and "--max-num-seqs" not in base.server.command
    # The change took effect: with one sequence in the engine, a request's first token comes only after the one
    # before it has finished, though four were sent at once. (Not a speed: with 8-token answers one at a time can
    # even give a shorter median TTFT than a batch of four prefills.)
    for key in {(r.start, r.repeat) for r in read_records(out / probes.probe_name(["server.extra_args"]))}:
        done = sorted(
            (r.start_time + (r.ttft_s or 0), r.end_time)
            for r in read_records(out / probes.probe_name(["server.extra_args"]))
            if (r.start, r.repeat) == key and not r.error
        )
        assert len(done) == 4
        assert all(nxt[0] >= prev[1] - 0.05 for prev, nxt in zip(done, done[1:], strict=False)), done
    assert probe.cost_s > 0 and "ttft_s_p50" in probe.note and "change_pct" in probe.figures
