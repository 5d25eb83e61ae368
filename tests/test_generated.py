"""Generated hostile values, not listed ones: every scalar field of the config dataclasses and every verb flag
drawn by Hypothesis. Each case ends in a one-line refusal (a BenchError, or Hydra's grammar error) or a config,
never a crash, exit 3 or a traceback, and touches nothing outside its out_dir. Cases per run: see CASES below."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from bench.cli import main as cli
from bench.core import config as config_module
from bench.core.config import BenchConfig, register_schemas, to_bench_config
from bench.core.errors import BenchError
from bench.core.paths import CONF_DIR
from tests.test_hostile import REFERENCE, tree_hash

# How many cases each test draws per run in the `ci` profile (tests/conftest.py); `deep` draws 1000 each.
CASES = {"config_field": 100, "config_pair": 30, "bisect_flags": 40, "thresholds_file": 8, "run_verb": 4}
SKIP = {"out_dir", "run_name", "model", "engines", "repeats", "on_engine", "speculative_config", "start",
        "last_start", "unknown_variants", "sweep_params", "sweep_name", "env", "debug"}  # fmt: skip


def scalar_fields(cls: type = BenchConfig, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> type of every field a user can set on the command line, walked through the dataclasses."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls, vars(config_module) | vars(typing))
    for f in dataclasses.fields(cls):
        if f.name in SKIP:
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out |= scalar_fields(kind, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            out[f"{prefix}{f.name}"] = kind
    return out


FIELDS = scalar_fields()
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, -1.0, 0.5, 1.0, 2.0, math.inf, -math.inf, math.nan]),
)
INTS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 10**6, 10**6 + 1, 2**63, 2**64]))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def render(value: Any) -> str:
    """A value as a Hydra override writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def value_for(kind: Any) -> st.SearchStrategy[Any]:
    """Values of the field's own type and of every other, hostile ones first."""
    any_scalar = st.one_of(FLOATS, INTS, TEXT, st.booleans(), st.none())
    origin = typing.get_origin(kind)
    if origin is list:
        return st.lists(st.one_of(FLOATS, INTS, TEXT), max_size=5)
    mine = {float: FLOATS, int: INTS, str: TEXT, bool: st.booleans()}
    args = typing.get_args(kind) or (kind,)
    own = [mine[a] for a in args if a in mine]
    return st.one_of(*own, any_scalar) if own else any_scalar


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def check_config(overrides: list[str]) -> None:
    """The config check as `bench run` makes it: a config, or a one-line refusal; nothing written anywhere."""
    with tempfile.TemporaryDirectory() as tmp:
        before = tree_hash(Path(tmp))
        try:
            to_bench_config(compose(config_name="config", overrides=[*overrides, f"out_dir={tmp}/o"]))
        except BenchError as e:
            assert len(str(e).splitlines()) == 1, str(e)
        except (HydraException, OmegaConfBaseException):
            pass  # Hydra's own refusal of a value of the wrong type or grammar: the CLI prints it in one line
        assert tree_hash(Path(tmp)) == before


@settings(max_examples=CASES["config_field"])
@given(st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), value_for(FIELDS[k]))))
def test_every_config_field_takes_any_value_without_a_crash(pair: tuple[str, Any]) -> None:
    key, value = pair
    check_config([f"{key}={render(value)}"])


@settings(max_examples=CASES["config_pair"])
@given(st.lists(st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), value_for(FIELDS[k]))),
                min_size=2, max_size=4, unique_by=lambda p: p[0]))  # fmt: skip
def test_several_fields_at_once_without_a_crash(pairs: list[tuple[str, Any]]) -> None:
    check_config([f"{k}={render(v)}" for k, v in pairs])


def _verb(args: list[str]) -> tuple[int, str]:
    """A verb in this process (no interpreter start per case): its exit code and stderr."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = cli.main(args)
        except SystemExit as e:  # argparse's refusal: exit 2 with its usage line
            rc = int(e.code or 0)
    return rc, err.getvalue()


FLAG_VALUES = st.one_of(FLOATS.map(render), INTS.map(str), TEXT, st.sampled_from(["nan", "inf", "-inf", "1e999", ""]))


@settings(max_examples=CASES["bisect_flags"])
@given(flags=st.lists(st.tuples(st.sampled_from(["--max-minutes", "--max-probes", "--starts", "--passes"]),
                                FLAG_VALUES), min_size=1, max_size=3))  # fmt: skip
def test_bisect_flags_refuse_in_one_line(flags: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["bisect", f"{tmp}/good", f"{tmp}/bad", *[f"{k}={v}" for k, v in flags]]
        rc, err = _verb(args)
        assert rc == 2 and "Traceback" not in err, err
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
        assert os.listdir(tmp) == []


NIGHT = REFERENCE / "history" / "nights"


@settings(max_examples=CASES["thresholds_file"])
@given(values=st.dictionaries(st.sampled_from(["wall_clock_s", "ttft_p50_s", "noise_multiple", "min_threshold",
                                        "confidence", "resamples", "f1"]),
                       st.one_of(FLOATS, INTS, TEXT, st.lists(INTS, max_size=2)), min_size=1, max_size=3))  # fmt: skip
def test_a_thresholds_file_of_any_values(values: dict[str, Any]) -> None:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        th = Path(tmp) / "th.yaml"
        th.write_text(yaml.safe_dump(values))
        before = tree_hash(NIGHT)
        rc, err = _verb(["compare", str(NIGHT / "night-01"), str(NIGHT / "night-02"), "--thresholds", str(th)])
        assert rc in (0, 1, 2), err
        assert len([line for line in err.splitlines() if line.startswith("bench: error")]) <= 1, err
        if any(isinstance(v, float) and not math.isfinite(v) for v in values.values()):
            assert rc == 2, (values, err)  # NaN or infinity is never read as a threshold
        assert tree_hash(NIGHT) == before


@settings(max_examples=CASES["run_verb"])
@given(st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), value_for(FIELDS[k]))))
def test_the_run_verb_in_a_real_process(pair: tuple[str, Any]) -> None:
    """A few of the same cases through `python -m bench run`, refused fast (port 1 answers nothing)."""
    key, value = pair
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "o"
        p = subprocess.run([sys.executable, "-m", "bench", "run", f"{key}={render(value)}", f"out_dir={out}",
                            "endpoint=http://127.0.0.1:1", "dataset.sample_size=1"], capture_output=True, text=True,
                           cwd=tmp, timeout=300, env={**os.environ, "BENCH_DEBUG": "0"})  # fmt: skip
        assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert len([line for line in p.stderr.splitlines() if line.startswith("bench: error")]) <= 1, p.stderr
        assert set(os.listdir(tmp)) <= {"o"}
