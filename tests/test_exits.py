"""One exit contract for every verb: SIGTERM is 130 with its one line (children stopped), and a closed stdout pipe
keeps the verb's own exit code with no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.test_hostile import REFERENCE

NIGHTS = REFERENCE / "history" / "nights"
ENV = {**os.environ, "BENCH_DEBUG": "0"}


def _closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS | true`: the reader is gone before bench writes a byte."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    return subprocess.CompletedProcess(args, proc.wait(timeout=300), "", err)


@pytest.mark.parametrize(
    ("args", "rc"),
    [(["--help"], 0), (["compare", str(NIGHTS / "night-01"), str(NIGHTS / "night-08")], 1)],
    ids=["--help", "compare with a regression"],
)
def test_a_closed_pipe_keeps_the_verb_s_exit_code(args: list[str], rc: int) -> None:
    p = _closed_stdout(*args)
    assert p.returncode == rc and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr[-2000:]


_SLOW_VERB = """
import sys, time
from bench.cli import main, verbs
def slow(args):
    {child}
    print("ready", flush=True)
    time.sleep(120)
    return 0
verbs.VERBS[{verb!r}] = slow
sys.exit(main.main([{verb!r}]))
"""


def _term_when_ready(code: str) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("verb", ["analyze", "compare", "history", "baseline", "bisect"])
def test_sigterm_is_130_with_one_line_for_every_verb(verb: str) -> None:
    rc, err = _term_when_ready(_SLOW_VERB.format(verb=verb, child="pass"))
    assert rc == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("bench: interrupted")


def test_a_sigtermed_bisect_stops_its_probe_s_run(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    child = (  # the probe's `bench run` stand-in, started as bisect starts it; "ready" once it runs
        "from bench.regress.probes import run_child\n"
        "    print('ready', flush=True)\n"
        f"    run_child([sys.executable, '-c', {sleeper!r}])"
    )
    code = _SLOW_VERB.format(verb="bisect", child=child)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    probe = int(pid_file.read_text())
    assert psutil.pid_exists(probe)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert not psutil.pid_exists(probe) or psutil.Process(probe).status() == psutil.STATUS_ZOMBIE


def test_tracing_listen_on_a_port_in_use_is_bad_input(tmp_path: Path) -> None:
    import socket

    from bench.run.server import free_port
    from tests.test_hostile import ENDPOINT, _wait_for_port, bench

    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, ENDPOINT, str(port), "4"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_port(port)
        with socket.create_server(("127.0.0.1", 0)) as taken:
            busy = taken.getsockname()[1]
            p = bench("run", f"endpoint=http://127.0.0.1:{port}", f"out_dir={tmp_path / 'o'}", "dataset.sample_size=1",
                      "tracing.enabled=true", f"tracing.listen=127.0.0.1:{busy}", cwd=tmp_path)  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    errors = [line for line in p.stderr.splitlines() if line.startswith("bench: error")]
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]  # was 1, a verdict
    assert len(errors) == 1 and f"tracing.listen=127.0.0.1:{busy}" in errors[0]


def test_the_ray_backend_without_ray_names_the_install_command(tmp_path: Path) -> None:
    """Ray hidden (an import that fails, as where it is not installed); no server starts: Ray is needed first."""
    hidden = tmp_path / "hide" / "ray"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "bench", "run", "server=pp2_ray", f"out_dir={tmp_path / 'o'}",
                        "dataset.sample_size=1"], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=600)  # fmt: skip
    errors = [line for line in p.stderr.splitlines() if line.startswith("bench: error")]
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert len(errors) == 1 and "bash scripts/setup.sh cluster" in errors[0]
