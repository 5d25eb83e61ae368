"""The command line: help, and bad input answered in one line without a traceback, before any server starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import overrides
from bench.cli.overrides import drop_unknown_variants

BENCH = [sys.executable, "-m", "bench"]


def _bench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_explains_verbs_and_groups():
    p = _bench("--help")
    assert p.returncode == 0
    for word in ("run", "analyze", "compare", "server=", "dataset=", "request.", "+sweep=", "parallel"):
        assert word in p.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "server=nope"], "unknown server variant nope; available: awq, pp2, pp2_ray, single"),
        (["run", "-m", "server=nope,nada"], "unknown server variant nope, nada"),
        (["run", "server.max_num_seq=3"], "Key 'max_num_seq' not in 'ServerConfig'"),
        (["run", "dataset=squad_file"], "dataset.path must be set"),
        (["run", "engine=tpu"], "engine='tpu' is not one of auto, cpu, cuda"),
        (["frobnicate"], "unknown verb 'frobnicate'"),
        (["analyze", "/nonexistent/results"], "no results folder at /nonexistent/results"),
        (["analyze", "."], "no runs in . (a run is a folder with run.json): nothing to analyze"),
        (["run", "load=concurrency", "load.concurrency=-1"], "load.concurrency=-1 is out of range"),
        (["run", "run_name=../../escape"], "would put the run's folder outside out_dir"),
    ],
)
def test_bad_input_is_one_clear_error(args, message, tmp_path):
    p = _bench(*args, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert not list(tmp_path.glob("results/*/*/run.json"))  # nothing ran


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "dataset file not found"),
        ('{"data": [', "not valid JSON (Expecting value at line 1 column 11)"),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', "data[0].paragraphs[0] has no 'context'"),
    ],
)
def test_bad_dataset_fails_the_variant_before_its_server_starts(content, message, tmp_path):
    path = tmp_path / "qa.json"
    if content is not None:
        path.write_text(content)
    p = _bench("run", "dataset=squad_file", f"dataset.path={path}", f"out_dir={tmp_path / 'r'}", cwd=tmp_path)
    assert p.returncode == 1 and message in p.stderr and "Traceback" not in p.stderr
    run = (tmp_path / "r" / "single" / "run.json").read_text()
    assert '"status": "failed"' in run and not (tmp_path / "r" / "single" / "server.log").exists()


def test_unknown_variants_of_a_sweep_are_dropped_and_the_others_kept(capsys):
    kept, unknown = drop_unknown_variants(["server=single,nope,tp2", "dataset.sample_size=3"])
    assert kept == ["server=single,tp2", "dataset.sample_size=3"] and unknown == ["nope"]
    assert "unknown server variant nope; available: awq, pp2, pp2_ray, single" in capsys.readouterr().err


def test_a_sweep_preset_naming_a_missing_variant_runs_the_rest(monkeypatch):
    # A user's conf/sweep/mine.yaml still lists a variant whose file was deleted.
    monkeypatch.setattr(overrides.Sources, "sweep_params", lambda self, name: {"server": "single,gone,spec_ngram"})
    kept, unknown = drop_unknown_variants(["+sweep=mine"])
    assert kept == ["+sweep=mine", "hydra.sweeper.params.server=single,spec_ngram"] and unknown == ["gone"]


def test_hydra_s_own_refusal_is_one_line_not_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "-m", "server=spec_ngram", "--cfg", "job"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified"
    ]


@pytest.mark.parametrize(
    "args",
    [["+sweep=nightly", "--cfg", "job"], ["--cfg", "job", "+sweep=nightly"], ["server=spec_ngram", "--cfg", "job"]],
)
def test_cfg_job_prints_the_config_wherever_it_stands(args, tmp_path):
    p = _bench("run", *args, f"out_dir={tmp_path / 'o'}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "server:" in p.stdout and "usage:" not in p.stderr + p.stdout
    assert not (tmp_path / "o").exists()  # printed, not run
