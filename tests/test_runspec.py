"""The RunSpec: one typed record of a resolved run, written in run.json, read back from any schema, and what
compare names when two runs differ in it."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from bench.core import cpu
from bench.core.config import register_schemas, resolve_server, to_bench_config
from bench.core.errors import RecordError
from bench.core.files import read_run, write_run
from bench.core.identity import config_hash
from bench.core.paths import CONF_DIR
from bench.core.records import OK, PARTIAL, RunResult, Start
from bench.core.runspec import RunSpec
from bench.regress.sides import baseline_of, context_changes, load_results
from bench.run.finish import _status
from bench.run.runner import spec_of

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
FIXED_CPU = cpu.CpuCaps("x86_64", True, False, False, False, False, "_C_AVX2", ())


@pytest.fixture(autouse=True)
def _fixed_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "detect", lambda: FIXED_CPU)


def spec(*overrides: str, engine: str = "cpu") -> RunSpec:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = to_bench_config(compose(config_name="config", overrides=list(overrides)))
    return spec_of(cfg, resolve_server(cfg.server, engine, cfg.engines[engine]), engine)


def test_the_spec_holds_the_whole_workload_and_max_tokens_once() -> None:
    s = spec("request.max_tokens=48", "dataset.sample_size=5", "load=concurrency", "load.concurrency=4",
             "repeats={starts: 2, passes: 3}", "tracing.enabled=true")  # fmt: skip
    d = s.to_dict()
    assert d["request"]["max_tokens"] == 48 and "max_tokens" not in d["server"]
    assert "system_prompt" not in d["dataset"] and d["request"]["system_prompt"].startswith("Answer the question")
    assert d["dataset"]["sample_size"] == 5 and d["load"]["concurrency"] == 4
    assert d["repeats"] == {"starts": 2, "passes": 3, "prefix_cache": "reset", "until": "fixed", "against": None,
                            "max_minutes": None}  # fmt: skip
    assert d["tracing"]["enabled"] is True
    assert d["engine"] == "cpu" and d["host_cpu"] == FIXED_CPU.as_dict()
    assert d["server"]["dtype"] == "float32" and d["server"]["enforce_eager"] is True  # the CPU profile applied
    assert RunSpec.from_dict(json.loads(json.dumps(d))) == s


def test_secrets_never_reach_the_spec() -> None:
    s = spec("server.api_key=sk-abcdef123456", "+server.env.HF_TOKEN=hf_secret_value",
             "server.extra_args=[--hf-token,hf_other_secret]")  # fmt: skip
    text = json.dumps(s.to_dict())
    assert "sk-abcdef123456" not in text and "hf_secret_value" not in text and "hf_other_secret" not in text


def test_a_wrongly_typed_spec_is_named() -> None:
    d = spec().to_dict()
    d["load"]["concurrency"] = "four"
    with pytest.raises(RecordError, match=r"spec\.load\.concurrency: 'four'"):
        RunSpec.from_dict(d)


def write(sweep: Path, s: RunSpec, walls: list[float]) -> None:
    (sweep / s.variant).mkdir(parents=True)
    trials = [{"start": 0, "repeat": i, "wall_clock_s": w, "output_tok_per_s": 320 / w} for i, w in enumerate(walls)]
    result = RunResult(
        variant=s.variant, status=OK, config_hash=config_hash(s), spec=s, trials=trials,  # type: ignore[arg-type]
        wall_clock_s=statistics.median(walls), provenance={"engine": "cpu", "vllm_version": "0.32.0", "gpus": []},
        starts=[Start(start=0, status=OK)],
    )  # fmt: skip
    write_run(sweep / s.variant, result)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("request.temperature=0.7", "request.temperature: 0.0 -> 0.7 (single)"),
        ("dataset.sample_size=20", "dataset.sample_size: 40 -> 20 (single)"),
        ("load.concurrency=8", "load.concurrency: 1 -> 8 (single)"),
        ("request.system_prompt=Be brief.", "request.system_prompt: Answer the question"),
        ("repeats={starts: 1, passes: 3}", "repeats.passes: 1 -> 3 (single)"),
        ("tracing.enabled=true", "tracing.enabled: False -> True (single)"),
    ],
)
def test_compare_names_a_change_in_any_part_of_the_spec(tmp_path: Path, override: str, named: str) -> None:
    """Runs that differ only in one workload field: compare names that field (before the RunSpec, run.json did not
    record it, and compare said 'no recorded field explains it')."""
    write(tmp_path / "a", spec(), [10.0, 10.2, 9.9])
    write(tmp_path / "b", spec(override), [10.1, 10.0, 9.8])
    lines = context_changes(load_results(tmp_path / "a"), load_results(tmp_path / "b"))
    assert any(line.startswith(named) for line in lines), lines
    assert not any(line.startswith("config_hash") for line in lines)  # explained by the field


def test_an_older_run_json_reads_into_a_spec() -> None:
    """Schema 4, from a bisect demonstration: server.config (with request.max_tokens in it) and the run's own
    .hydra/config.yaml become the spec; the stored hash rebuilds from it."""
    run = read_run(REFERENCE / "bisect-cpu" / "bad" / "single")
    assert run is not None and run.spec is not None and run.schema_version == 4
    assert run.spec.unrecorded == () and run.spec.request.max_tokens == 16
    assert run.spec.server.extra_args == ["--max-num-seqs", "1"] and run.spec.dataset.sample_size == 12
    assert config_hash(run.spec) == run.config_hash
    assert "config" not in run.to_dict()["server"]  # written back without the old copy


def test_a_run_that_recorded_no_workload_leaves_it_unknown() -> None:
    """The history's nights kept no Hydra files: their dataset and load are unknown, not defaults to compare."""
    a, b = (read_run(REFERENCE / "history" / "nights" / n / "spec_ngram") for n in ("night-01", "night-02"))
    assert a is not None and a.spec is not None and "dataset" in a.spec.unrecorded
    from bench.regress.differences import changes, recorded

    assert not [c for c in changes(recorded(a), recorded(b)) if c[0].startswith(("dataset.", "load."))]


def test_a_run_with_fewer_starts_than_planned_is_partial() -> None:
    """Ctrl-C between two server starts: one start of three measured is partial, never ok."""
    one = [Start(start=0, status=OK)]
    assert _status(one, planned=3)[0] == PARTIAL and "1 of 3 server starts" in (_status(one, 3)[1] or "")
    assert _status([Start(start=k, status=OK) for k in range(3)], planned=3) == (OK, None)


def test_compare_takes_the_baseline_variant_the_sweep_recorded(tmp_path: Path) -> None:
    write(tmp_path / "s", dataclasses.replace(spec("baseline_variant=spec_ngram"), variant="spec_ngram"), [1.0])
    write(tmp_path / "s", dataclasses.replace(spec("baseline_variant=spec_ngram"), variant="single"), [1.0])
    from bench.core.folder import ResultsFolder

    assert baseline_of(ResultsFolder(tmp_path / "s")) == "spec_ngram"
    assert baseline_of(ResultsFolder(REFERENCE / "cpu")) == "single"  # older runs: the default


def test_history_names_a_change_in_the_spec(tmp_path: Path) -> None:
    """Between two nights the history names the spec's fields that changed, not just a new config hash."""
    import pandas as pd

    from bench.regress.history import _provenance_row, provenance_changes

    write(tmp_path / "a", spec(), [1.0])
    write(tmp_path / "b", spec("request.temperature=0.5", "load.concurrency=2"), [1.0])
    a, b = (read_run(tmp_path / side / "single") for side in ("a", "b"))
    assert a is not None and b is not None
    lines = provenance_changes(pd.Series(_provenance_row(a, "m")), pd.Series(_provenance_row(b, "m")))
    assert lines == ["load.concurrency: 1 -> 2", "request.temperature: 0.0 -> 0.5"]
    older = pd.Series(_provenance_row(a, "m") | {"settings": None})  # a row of an older store: unknown
    assert provenance_changes(older, pd.Series(_provenance_row(b, "m"))) == [
        f"config hash {a.config_hash[:8]} -> {b.config_hash[:8]}"
    ]


def test_a_run_stopped_between_its_starts_is_no_baseline(tmp_path: Path) -> None:
    """Ctrl-C just after the first of three starts: run.json says partial, and promote refuses it."""
    from bench.core.errors import BenchError
    from bench.regress.baseline import promote
    from bench.run.finish import finish

    out = tmp_path / "nightly"
    write(out, spec("repeats={starts: 3, passes: 3}"), [1.0, 1.1, 0.9])
    run = read_run(out / "single")
    assert run is not None
    finish(run, out / "single")
    write_run(out / "single", run)
    assert run.status == PARTIAL and "1 of 3 server starts" in (run.reason or "")
    with pytest.raises(BenchError, match="partial"):
        promote(out, tmp_path / "baselines" / "m" / "nightly", "first night")
