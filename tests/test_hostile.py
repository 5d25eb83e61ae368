"""Hostile and careless input, verb by verb: each case's exit code, one `bench: error` line, no traceback, and
nothing changed outside the folder the command may write (the tree is hashed before and after)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.core.folder import locked

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
ENDPOINT = str(ROOT / "benchmarks" / "instant_endpoint.py")


def tree_hash(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Path -> content hash (or link target) of everything under root, less `skip` (the folder a case may write)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_DEBUG": "0"}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)  # fmt: skip


def sweep(tmp: Path, name: str = "sweep") -> Path:
    dst = tmp / name
    shutil.copytree(REFERENCE / "history" / "nights" / "night-01", dst)
    return dst


@dataclass
class Case:
    name: str
    setup: Callable[[Path], tuple[list[str], Path | None]]  # -> (arguments, the folder it may write or None)
    rc: int
    says: str  # in the error line


def _torn(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    (d / "spec_ngram" / "run.json").write_text('{"variant": "spec_ngram", "status": "o')
    return ["analyze", str(d)], d


def _compare_torn_current(tmp: Path) -> tuple[list[str], Path | None]:
    base, cur = sweep(tmp, "base"), sweep(tmp, "cur")
    (cur / "spec_ngram" / "run.json").write_text("{")
    return ["compare", str(base), str(cur)], None


def _compare_text_count(tmp: Path) -> tuple[list[str], Path | None]:
    base, cur = sweep(tmp, "base"), sweep(tmp, "cur")
    run = json.loads((cur / "spec_ngram" / "run.json").read_text())
    run["trials"][0]["start"] = "first"  # a count that is text
    (cur / "spec_ngram" / "run.json").write_text(json.dumps(run))
    return ["compare", str(base), str(cur)], None


def _compare_list_for_object(tmp: Path) -> tuple[list[str], Path | None]:
    base, cur = sweep(tmp, "base"), sweep(tmp, "cur")
    run = json.loads((cur / "spec_ngram" / "run.json").read_text())
    run["provenance"] = ["not", "an", "object"]
    (cur / "spec_ngram" / "run.json").write_text(json.dumps(run))
    return ["compare", str(base), str(cur)], None


def _compare_markdown_under_a_file(tmp: Path) -> tuple[list[str], Path | None]:
    base = sweep(tmp, "base")
    (tmp / "afile").write_text("x")
    return ["compare", str(base), str(base), "--markdown", str(tmp / "afile" / "out.md")], None


def _history_store_with_junk(tmp: Path) -> tuple[list[str], Path | None]:
    store = tmp / "store"
    shutil.copytree(REFERENCE / "history" / "store", store)
    (store / "runs" / "zz-not-parquet.parquet").write_text("hello")
    return ["history", "report", "--store", str(store), "--out", str(tmp / "page")], tmp / "page"


def _history_add_torn(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    (d / "spec_ngram" / "run.json").write_text("[1, 2")
    return ["history", "add", str(d), "--store", str(tmp / "store")], tmp / "store"


def _promote_onto_source(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    return ["baseline", "promote", str(d), "--to", str(d)], None


def _promote_inside_source(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    return ["baseline", "promote", str(d), "--to", str(d / "baseline")], None


def _promote_onto_parent(tmp: Path) -> tuple[list[str], Path | None]:
    parent = tmp / "x"
    d = sweep(parent, "nightly")
    (parent / "notes.txt").write_text("mine")
    sweep(parent, "other-sweep")
    return ["baseline", "promote", str(d), "--to", str(parent)], None


def _promote_onto_foreign(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    baselines = tmp / "baselines"
    (baselines / "lab" / "nightly").mkdir(parents=True)
    (baselines / "lab" / "nightly" / "paper.tex").write_text("mine")
    return ["baseline", "promote", str(d), "--to", str(baselines)], None


def _promote_without_figures(tmp: Path) -> tuple[list[str], Path | None]:
    d = sweep(tmp)
    run = json.loads((d / "spec_ngram" / "run.json").read_text())
    run["trials"], run["wall_clock_s"] = [], None
    (d / "spec_ngram" / "run.json").write_text(json.dumps(run))
    return ["baseline", "promote", str(d), "--to", str(tmp / "b")], None


def _args(*args: str) -> Callable[[Path], tuple[list[str], Path | None]]:
    def setup(tmp: Path) -> tuple[list[str], Path | None]:
        return [a.replace("{tmp}", str(tmp)) for a in args], None

    return setup


def _symlinked_run(tmp: Path) -> tuple[list[str], Path | None]:
    (tmp / "out").mkdir()
    (tmp / "elsewhere").mkdir()
    (tmp / "out" / "single").symlink_to(tmp / "out" / ".." / "elsewhere")
    return ["run", f"out_dir={tmp / 'out'}", "endpoint=http://127.0.0.1:9"], None


def _out_dir_is_a_file(tmp: Path) -> tuple[list[str], Path | None]:
    (tmp / "afile").write_text("x")
    return ["run", f"out_dir={tmp / 'afile'}", "endpoint=http://127.0.0.1:9"], None


CASES = [
    Case("unknown verb", _args("frobnicate"), 2, "unknown verb"),
    Case("unknown variant", _args("run", "server=nope", "out_dir={tmp}/o"), 2, "unknown server variant nope"),
    Case("concurrency 0", _args("run", "load.concurrency=0", "out_dir={tmp}/o"), 2, "load.concurrency=0"),
    Case("negative TTFT SLO", _args("run", "slo.ttft_ms=-5", "out_dir={tmp}/o"), 2, "slo.ttft_ms=-5"),
    Case("share above 1", _args("run", "slo.min_share=5", "out_dir={tmp}/o"), 2, "slo.min_share=5"),
    Case("F1 above 1", _args("run", "slo.min_f1=2", "out_dir={tmp}/o"), 2, "slo.min_f1=2"),
    Case("run_name climbing out", _args("run", "run_name=../../x", "out_dir={tmp}/o"), 2, "outside out_dir"),
    Case("run_name too long", _args("run", "run_name=" + "x" * 300, "out_dir={tmp}/o"), 2, "longer than a file name"),
    Case("out_dir is a file", _out_dir_is_a_file, 2, "is a file, not a folder"),
    Case("run folder is a symlink", _symlinked_run, 2, "symbolic link"),
    Case("negative lock wait", _args("run", "lock_wait_s=-1", "out_dir={tmp}/o"), 2, "lock_wait_s=-1"),
    Case("analyze nothing", _args("analyze", "{tmp}/nope"), 2, "no results folder"),
    Case("analyze a torn run.json", _torn, 2, "spec_ngram/run.json"),
    Case("compare, current side torn", _compare_torn_current, 2, "could not be parsed"),
    Case("compare, a count that is text", _compare_text_count, 2, "could not be parsed"),
    Case("compare, provenance a list", _compare_list_for_object, 2, "could not be parsed"),
    Case("compare, nothing there", _args("compare", "{tmp}/a", "{tmp}/b"), 2, "no results folder"),
    Case("compare, Markdown under a file", _compare_markdown_under_a_file, 2, "out.md"),
    Case("compare, unknown metric", _args("compare", "{tmp}/a", "{tmp}/b", "--metric", "speed"), 2, "invalid choice"),
    Case("history store with junk", _history_store_with_junk, 2, "not a history file"),
    Case("history add of a torn run", _history_add_torn, 2, "not added"),
    Case("promote onto its source", _promote_onto_source, 2, "overlaps"),
    Case("promote inside its source", _promote_inside_source, 2, "overlaps"),
    Case("promote onto its parent", _promote_onto_parent, 2, "overlaps"),
    Case("promote onto foreign files", _promote_onto_foreign, 2, "not a baseline bench promoted"),
    Case("promote a run without figures", _promote_without_figures, 2, "no measured figures"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_in_one_line_and_touches_nothing_else(case: Case, tmp_path: Path) -> None:
    args, may_write = case.setup(tmp_path)
    before = tree_hash(tmp_path, may_write)
    p = bench(*args, cwd=tmp_path)
    errors = [line for line in p.stderr.splitlines() if line.startswith("bench: error")]
    argparse_error = p.returncode == 2 and "error:" in p.stderr and "usage:" in p.stderr
    assert p.returncode == case.rc, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert len(errors) == 1 or argparse_error, p.stderr[-2000:]
    assert case.says in (errors[0] if errors else p.stderr), p.stderr[-2000:]
    assert tree_hash(tmp_path, may_write) == before


def test_promote_keeps_every_replaced_baseline(tmp_path: Path) -> None:
    d, to = sweep(tmp_path), tmp_path / "baselines" / "lab" / "nightly"
    assert bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp_path).returncode == 0
    first = json.loads((to / "baseline.json").read_text())["promoted_at"]
    assert bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp_path).returncode == 0
    assert bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp_path).returncode == 0
    generations = sorted((to / "previous").iterdir())
    assert len(generations) >= 1 and all((g / "baseline.json").is_file() for g in generations)
    kept = [json.loads((g / "baseline.json").read_text())["promoted_at"] for g in generations]
    assert first in kept
    # compare reads the baseline itself, not its generations
    assert bench("compare", str(to), str(d), cwd=tmp_path).returncode in (0, 1)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locked(out / "single"):
        p = bench("run", f"out_dir={out}", "endpoint=http://127.0.0.1:9", "dataset.sample_size=1", cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"bench pid {os.getpid()}" in p.stderr and "lock_wait_s" in p.stderr


def test_a_dead_writer_s_lock_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "single"
    holder = "from pathlib import Path; from bench.core.folder import locked\n"
    holder += f"with locked(Path({str(run_dir)!r})):\n    import os; os._exit(9)"
    assert subprocess.run([sys.executable, "-c", holder], timeout=60).returncode == 9
    assert "bench pid" in (run_dir / ".bench.lock").read_text()  # what the dead one left
    with locked(run_dir):
        assert f"bench pid {os.getpid()}" in (run_dir / ".bench.lock").read_text()


def test_a_crash_exits_3_with_its_traceback_in_a_file(tmp_path: Path) -> None:
    code = (
        "import sys; from bench.cli import main, verbs\n"
        "def boom(args): raise ZeroDivisionError('planted')\n"
        "verbs.VERBS['analyze'] = boom\n"
        "sys.exit(main.main(['analyze', 'x']))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("bench: internal error: ZeroDivisionError: planted")
    log = Path(line.split("traceback in ")[1].split(";")[0])
    assert "ZeroDivisionError" in log.read_text()
    log.unlink()


HOSTILE = str(Path(__file__).resolve().parent / "hostile_endpoint.py")
# mode -> (exit code, what the error line or the run's reason says). An endpoint that does not answer as an
# OpenAI server is bad input (2); one that answers but fails every request is a variant that is not ok (1).
ENDPOINTS = {
    "not_http": (2, "is not reachable"),
    "models_shape": (2, "lists no model"),
    "models_401": (2, "answered 401 to /v1/models (set server.api_key)"),
    "models_html": (2, "not JSON"),
    "chunk_list": (1, "not an OpenAI stream chunk"),
    "absurd_usage": (1, "output tokens for max_tokens"),
    "http500": (1, "HTTP 500"),
    "stall": (1, "timed out"),
    "reset_html": (0, "did not reset its prefix cache"),
}


@pytest.mark.parametrize("mode", list(ENDPOINTS))
def test_a_hostile_endpoint_is_one_line_never_a_traceback(mode: str, tmp_path: Path) -> None:
    from bench.run.server import free_port

    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, HOSTILE, mode, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_port(port)
        out = tmp_path / "out"
        settings = ["dataset.sample_size=3", "telemetry_interval_s=0", "load.request_timeout_s=2"]
        p = bench("run", f"endpoint=http://127.0.0.1:{port}", f"out_dir={out}", *settings, cwd=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    rc, says = ENDPOINTS[mode]
    assert p.returncode == rc, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    run = json.loads((out / "single" / "run.json").read_text())
    assert says in p.stderr or says in str(run.get("reason")), (p.stderr[-2000:], run.get("reason"))
    if rc == 2:
        assert len([line for line in p.stderr.splitlines() if line.startswith("bench: error")]) == 1
        assert run["status"] == "failed" and says in run["reason"]  # recorded too


def _wait_for_port(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the stand-in endpoint never listened on {port}")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("server.max_num_seq=3", "Key 'max_num_seq' not in 'ServerConfig'"),
        ("dataset=nope", "Could not find 'dataset/nope'"),
        ("run_name=" + "x" * 300, "longer than a file name"),
    ],
)
def test_hydra_s_refusals_are_one_line_before_any_folder(override: str, says: str, tmp_path: Path) -> None:
    p = bench("run", override, f"out_dir={tmp_path / 'o'}", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "HYDRA_FULL_ERROR" not in p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and says in p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("sweep", [False, True], ids=["one run", "multirun"])
def test_a_planted_secret_reaches_no_file(sweep: bool, tmp_path: Path) -> None:
    from bench.run.server import free_port

    key, password = "sk-planted-9f3a7c", "hunter2-planted"
    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, ENDPOINT, str(port), "4"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    out = tmp_path / "out"
    try:
        _wait_for_port(port)
        flags = ["-m"] if sweep else []
        common = [*flags, f"out_dir={out}", "dataset.sample_size=2", "telemetry_interval_s=0"]
        ok = bench("run", *common, f"endpoint=http://127.0.0.1:{port}", f"server.api_key={key}", cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr[-2000:]
        # Credentials inside the endpoint URL: sent as basic auth (this endpoint takes any), and never written.
        creds = bench("run", *common, "run_name=creds", f"endpoint=http://admin:{password}@127.0.0.1:{port}",
                      cwd=tmp_path)  # fmt: skip
        assert creds.returncode == 0 and "Traceback" not in creds.stderr, creds.stderr[-2000:]
    finally:
        proc.kill()
        proc.wait()
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.parent.name == ".hydra" for p in written) and any(p.name == "run.json" for p in written)
    leaks = [
        str(p) for p in written if key in p.read_text(errors="replace") or password in p.read_text(errors="replace")
    ]
    assert leaks == []
    assert "<redacted>" in (out / "single" / ".hydra" / "overrides.yaml").read_text()
