"""The command line's Hydra overrides, read with Hydra's own parser before Hydra runs: variants, SLURM, sweeps."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.paths import CONF_DIR
from bench.core.repeats import Repeats

# Keys whose sweep does not name runs apart: the variant already names them; hydra's own; where runs go.
_UNNAMED_KEYS = ("server", "run_name", "out_dir", "sweep_name", "sweep_params")


def parse(overrides: list[str], strict: bool = False) -> list[Any]:
    """Hydra's Override objects of the strings that are overrides. Flags (-m, --cfg job) are skipped; an override
    Hydra cannot parse is skipped too (planning helpers), or with `strict` refused on one line naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from bench.core.errors import ConfigError

    parser, out = OverridesParser.create(), []
    for o in overrides:
        if o.startswith("-"):
            continue
        if "=" not in o:
            if strict:
                raise ConfigError(f"{o!r} is not an override: write KEY=VALUE (python -m bench --help)")
            continue
        try:
            out.append(parser.parse_override(o))
        except HydraException as e:
            if strict:
                raise ConfigError(f"{o!r} is not a valid override: {one_line(e)}") from None
            continue
    return out


def one_line(e: BaseException) -> str:
    """Hydra's multi-line refusal (and its cause: the key that is not in the schema) as one line, less the
    config search path and the grammar's caret diagrams."""
    text = f"{e} {e.__cause__}" if e.__cause__ else str(e)
    text = text.split("Config search path")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("full_key", "^"))]
    return " ".join(lines)[:400]


def values(override: Any) -> list[str]:
    """Every value an override takes: a comma list, range() or choice() swept, else its one value."""
    if override.is_sweep_override():
        return [str(v) for v in override.sweep_string_iterator()]
    return [str(override.get_value_element_as_str())]


@dataclass(frozen=True)
class Sources:
    """Where a command's config groups come from: bench's own (bench/conf, inside the package) and the folders of
    Hydra's `--config-dir DIR` (a user's own variants, bisect's probes), whose server/ and sweep/ files count as
    bench's own. Made once per command and handed down: no module state."""

    user_dirs: tuple[Path, ...] = ()

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (CONF_DIR, *self.user_dirs)

    def known_variants(self) -> list[str]:
        return sorted({p.stem for d in self.dirs for p in (d / "server").glob("*.yaml")})

    def file(self, group: str, name: str) -> Path | None:
        """The YAML of a group option, a user's folder first (Hydra's own order), or None."""
        return next((p for d in reversed(self.dirs) if (p := d / group / f"{name}.yaml").is_file()), None)

    def sweep_params(self, name: str) -> dict[str, Any]:
        """A `+sweep=NAME` preset's `hydra.sweeper.params`; empty when there is no such preset."""
        from omegaconf import OmegaConf

        path = self.file("sweep", name)
        if path is None:
            return {}
        params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params")
        return dict(params or {})

    def search_path(self) -> list[str]:
        """The override that adds the user's folders to a composition, as `--config-dir` does for a run."""
        if not self.user_dirs:
            return []
        return [f"hydra.searchpath=[{','.join(f'file://{d}' for d in self.user_dirs)}]"]


BENCH_ONLY = Sources()


def known_variants() -> list[str]:
    return BENCH_ONLY.known_variants()


def sweep_params(name: str, src: Sources = BENCH_ONLY) -> dict[str, Any]:
    return src.sweep_params(name)


def variants_of(override: Any, src: Sources = BENCH_ONLY) -> list[str] | None:
    """The variants an override names: `server=a,b` directly, `+sweep=NAME` through its preset; None for others."""
    if override.key_or_group == "server":
        names = values(override)
    elif override.key_or_group == "sweep":
        names = str(sweep_params(values(override)[0], src).get("server", "")).split(",")
    else:
        return None
    return [n.strip() for n in names if n.strip()]


def drop_unknown_variants(overrides: list[str], src: Sources = BENCH_ONLY) -> tuple[list[str], list[str]]:
    """The overrides without unknown variants, and those variants. All unknown is bad input (exit 2);
    some unknown in a sweep are reported and recorded as failed, and the known ones still run."""
    from bench.core.errors import ConfigError

    known = src.known_variants()
    parsed = {o.input_line: o for o in parse(overrides)}
    kept, unknown, asked = [], [], []
    for line in overrides:
        names = variants_of(parsed[line], src) if line in parsed else None
        if names is None:
            kept.append(line)
            continue
        asked += names
        unknown += [n for n in names if n not in known]
        good = [n for n in names if n in known]
        key = parsed[line].get_key_element()  # with its +/~ prefix
        if parsed[line].key_or_group == "sweep":
            kept.append(line)
            if good and len(good) < len(names):  # the preset's list, less what does not exist
                kept.append(f"hydra.sweeper.params.server={','.join(good)}")
        elif good:
            kept.append(f"{key}={','.join(good)}")
    if unknown:
        message = (
            f"unknown server variant {', '.join(unknown)}; available: {', '.join(known)}"
            f" (add conf/server/NAME.yaml to define one)"
        )
        if len(unknown) == len(asked):
            raise ConfigError(message)
        print(f"bench: error: {message}; the other variants run", file=sys.stderr)
    return kept, unknown


def launcher_name(parsed: list[Any]) -> str | None:
    keys = {o.key_or_group: o for o in parsed}
    return values(keys["hydra/launcher"])[0] if "hydra/launcher" in keys else None


def largest_tp_x_pp(parsed: list[Any], src: Sources = BENCH_ONLY) -> int:
    """The most GPUs one job of the sweep needs: the largest TP x PP among its variants and command-line sizes."""
    from omegaconf import OmegaConf

    names = [n for o in parsed for n in variants_of(o, src) or []] or ["single"]
    sizes = {"tensor_parallel_size": [1], "pipeline_parallel_size": [1]}
    for o in parsed:  # sizes set on the command line count too
        size = o.key_or_group.removeprefix("server.")
        if size in sizes:
            sizes[size] += [int(v) for v in values(o)]
    need = 1
    for name in names:
        path = src.file("server", name)
        conf = OmegaConf.to_container(OmegaConf.load(path)) if path is not None else {}
        assert isinstance(conf, dict)
        tp = max([int(conf.get("tensor_parallel_size", 1)), *sizes["tensor_parallel_size"]])
        pp = max([int(conf.get("pipeline_parallel_size", 1)), *sizes["pipeline_parallel_size"]])
        need = max(need, tp * pp)
    return need


def slurm_gpus(overrides: list[str], gpus_here: int | None = None, src: Sources = BENCH_ONLY) -> list[str]:
    """The SLURM launcher runs every job of a sweep as one job array with the same resources: ask each job
    for the largest TP x PP among the sweep's variants, unless the command sets gpus_per_node itself. On the
    CPU engine (engine=cpu, or auto where this machine has no GPU) no GPU: every CPU of a node like this one."""
    import os

    parsed = parse(overrides)
    if launcher_name(parsed) != "submitit_slurm":
        return overrides
    if any(o.key_or_group in ("hydra.launcher.gpus_per_node", "hydra.launcher.cpus_per_task") for o in parsed):
        return overrides
    if not on_cuda(parsed, gpus_here):
        print(f"bench: each SLURM job asks for {os.cpu_count()} CPUs and no GPU (the CPU engine)", file=sys.stderr)
        return [*overrides, f"hydra.launcher.cpus_per_task={os.cpu_count()}"]
    need = largest_tp_x_pp(parsed, src)
    print(f"bench: each SLURM job asks for {need} GPU(s), the sweep's largest TP x PP", file=sys.stderr)
    return [*overrides, f"hydra.launcher.gpus_per_node={need}"]


def on_cuda(parsed: list[Any], gpus_here: int | None) -> bool:
    """Whether the jobs run the CUDA engine: engine=cuda, or auto on a machine with GPUs (None: unknown, assume so)."""
    engine = next((values(o)[0] for o in parsed if o.key_or_group == "engine"), "auto")
    return engine == "cuda" or (engine == "auto" and (gpus_here is None or gpus_here > 0))


def ray_resources(overrides: list[str], gpus_here: int, src: Sources = BENCH_ONLY) -> list[str]:
    """The Ray launcher (hydra-ray-launcher) gives every job the same `ray.remote` options: on CUDA the sweep's
    largest TP x PP in GPUs; on the CPU engine every CPU of a node like this one, so two CPU servers never
    share cores (each would measure the other). A local head (no `ray.init.address`) starts without a dashboard,
    with this machine's CPUs. The command's own values stand."""
    import os

    parsed = parse(overrides)
    if launcher_name(parsed) != "ray":
        return overrides
    keys = {o.key_or_group for o in parsed}
    cuda = on_cuda(parsed, gpus_here)
    remote = "hydra.launcher.ray.remote."
    out = list(overrides)
    if not {f"{remote}num_gpus", f"{remote}num_cpus"} & keys:
        need = largest_tp_x_pp(parsed, src) if cuda else os.cpu_count() or 1
        out.append(f"+{remote}{'num_gpus' if cuda else 'num_cpus'}={need}")
        print(f"bench: each Ray job asks for {need} {'GPU' if cuda else 'CPU'}(s)", file=sys.stderr)
    if "hydra.launcher.ray.init.address" not in keys:
        out += [
            "+hydra.launcher.ray.init.include_dashboard=false",
            f"+hydra.launcher.ray.init.num_cpus={os.cpu_count()}",
        ]
    return out


def swept_keys(overrides: list[str], src: Sources = BENCH_ONLY) -> list[str]:
    """Keys the multirun varies besides the variant, in command order: comma lists, range() and
    choice() on the command line or in a `+sweep=` preset's `hydra.sweeper.params`."""
    lines = []
    for o in parse(overrides):
        if o.key_or_group == "sweep" and src.sweep_params(values(o)[0]):
            lines += [f"{k}={v}" for k, v in src.sweep_params(values(o)[0]).items()]
        else:
            lines.append(o.input_line.removeprefix("hydra.sweeper.params."))
    keys = [o.key_or_group for o in parse(lines) if o.is_sweep_override()]
    return [k for k in dict.fromkeys(keys) if k not in _UNNAMED_KEYS and not k.startswith("hydra.")]


def sweep_run_name(keys: list[str]) -> str:
    """`${server.name}-LEAF=VALUE...`: one folder per combination, named by what varies, stable across
    re-runs (so resume finds it). The key's last part names it unless two swept keys share that part."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    parts = []
    for key, leaf in zip(keys, leaves, strict=True):
        label = leaf if leaves.count(leaf) == 1 else key
        value = f"${{{key}.name}}" if key in groups else f"${{bench_slug:${{{key}}}}}"
        parts.append(f"{label}={value}")
    return "${server.name}-" + "-".join(parts)


def name_sweep_runs(overrides: list[str], src: Sources = BENCH_ONLY) -> list[str]:
    """A multirun varying fields inside a variant gets a folder per combination, and records what it varied."""
    keys = swept_keys(overrides, src)
    if not keys:
        return overrides
    out = [*overrides, f"sweep_params=[{','.join(keys)}]"]
    if not any(o.key_or_group == "run_name" for o in parse(overrides)):
        out.append(f"run_name='{sweep_run_name(keys)}'")
    return out


def rotated(variants: list[str], start: int) -> list[str]:
    """The order of the variants in server start `start`: A B C, then B C A, then C A B, ...: drift on
    the machine during a sweep lands on every variant alike, and no variant always goes first."""
    if not variants:
        return []
    r = start % len(variants)
    return variants[r:] + variants[:r]


def job_order(variants: list[str], starts: int) -> list[tuple[str, int]]:
    """Every (variant, start) job of a sweep in the order it runs: start by start, rotated."""
    return [(v, k) for k in range(starts) for v in rotated(variants, k)]


@dataclass(frozen=True)
class StartPlan:
    starts: int  # server starts per variant (`repeats.starts`; the most any job asks for)
    variants: list[str] | None  # the sweep's variants in order; None: no list of variants
    rest: list[str]  # the overrides less the variants' sweep, which the dispatcher sets per start
    out_dirs: list[Path]  # where the runs land: statuses of jobs a launcher ran elsewhere are read there
    jobs: int = 1  # how many jobs one start runs (variants x other swept values), each checked
    repeats: Repeats = field(default_factory=Repeats)  # the first job's: how the rounds end (until, max_minutes)
    baseline_variant: str = "single"
    report: bool = True  # the first job's config `report`: charts and report.html at the end


def plan_starts(
    overrides: list[str],
    src: Sources = BENCH_ONLY,
    multirun: bool = False,
    check: Callable[[Any], object] | None = None,
    told: set[str] | None = None,
) -> StartPlan:
    """How the dispatcher runs a command's overrides (Hydra's flags already taken off): start by start. Every job
    of the sweep is composed once here and converted to its typed config, which `check` (the runner's own checks)
    then sees: a value that cannot run, swept or not, is refused before Hydra makes any folder."""
    from hydra import compose, initialize_config_dir
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from bench.core.config import to_bench_config, to_repeats
    from bench.core.errors import ConfigError

    parsed = parse(overrides, strict=True)
    # `hydra.sweeper.params.server=a,b` is how drop_unknown_variants narrows a preset's list.
    keys = ("server", "hydra.sweeper.params.server")
    server_sweep = [o for o in parsed if o.is_sweep_override() and o.key_or_group in keys]
    other_sweeps = [o for o in parsed if o.is_sweep_override() and o.key_or_group not in keys]
    fixed = [str(o.input_line) for o in parsed if not o.is_sweep_override()] + src.search_path()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=fixed, return_hydra_config=True)
        if (server_sweep or other_sweeps) and not (multirun or cfg.hydra.mode == RunMode.MULTIRUN):
            first = (server_sweep or other_sweeps)[0].input_line
            raise ConfigError(f"{first} sweeps several values: add -m (--multirun) to run each, or give one value")
        preset = {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
        variants: list[str] | None = None
        if server_sweep:
            variants = values(server_sweep[-1])
        elif preset.get("server"):
            variants = [v.strip() for v in preset["server"].split(",")]  # a preset's list
        combos = _combinations(other_sweeps, {k: v for k, v in preset.items() if k != "server"})
        jobs = [
            to_bench_config(compose(config_name="config", overrides=[*fixed, *variant, *combo]), told)
            for variant in ([[f"server={v}"] for v in variants] if variants else [[]])
            for combo in combos
        ]
    for job in jobs:
        if check is not None:
            check(job)
    drop = {str(o.input_line) for o in server_sweep}
    out_dir = OmegaConf.select(cfg, "out_dir", throw_on_resolution_failure=False)
    rest = [o for o in overrides if o not in drop]
    starts = max(to_repeats(j.repeats).starts for j in jobs)
    first = to_repeats(jobs[0].repeats)
    return StartPlan(starts, variants, rest, [Path(str(out_dir))] if out_dir else [], len(jobs), first,
                     jobs[0].baseline_variant, jobs[0].report)  # fmt: skip


def _combinations(swept: list[Any], preset: dict[str, str]) -> list[list[str]]:
    """Every combination of the swept keys' values as override lists, as Hydra's basic sweeper makes them: the
    command line's sweeps, and a preset's `hydra.sweeper.params` for the keys the command line leaves alone."""
    import itertools

    axes = [[f"{o.get_key_element()}={v}" for v in values(o)] for o in swept]
    given = {o.key_or_group for o in swept}
    for o in parse([f"{k}={v}" for k, v in preset.items()], strict=True):
        if o.key_or_group not in given:
            axes.append([f"{o.get_key_element()}={v}" for v in values(o)])
    return [list(c) for c in itertools.product(*axes)]
