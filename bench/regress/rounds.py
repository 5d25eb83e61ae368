"""When a sweep's rounds of interleaved server starts stop: the answer is clear (sequential verdicts), or the
deadline leaves no room for another round. What was decided is written into each run.json of the sweep."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core.files import read_run, write_run
from bench.core.records import OK, PARTIAL
from bench.core.repeats import Repeats
from bench.regress import sequential
from bench.regress.sides import Side, load_results

DEADLINE = "deadline"  # the verdict recorded when time, not the answer, ended the rounds


def after_round(
    out_dir: Path, repeats: Repeats, baseline_variant: str, done: int, round_s: Sequence[float], elapsed_s: float
) -> dict[str, Any] | None:
    """After `done` rounds: None to run another, else the record of why the rounds stop here."""
    last = done >= repeats.starts
    fits = repeats.max_minutes is None or sequential.rounds_that_fit(repeats.max_minutes, elapsed_s, round_s) > 0
    if repeats.until == "clear":
        decision = _decide(out_dir, repeats, baseline_variant, done, final=last or not fits)
        if decision is not None and (decision.stop or last or not fits):
            return decision.to_record() | {"stopped_after": done, "cap": repeats.starts}
    if not fits and not last:
        reason = f"repeats.max_minutes={repeats.max_minutes:g}: no time for round {done + 1} at the pace measured"
        return {"stop": True, "verdict": DEADLINE, "reason": reason, "rounds": done, "stopped_after": done,
                "cap": repeats.starts}  # fmt: skip
    return None


def _decide(
    out_dir: Path, repeats: Repeats, baseline_variant: str, done: int, final: bool
) -> sequential.Decision | None:
    """A stored baseline (`repeats.against`): every variant against its own there, rounds on this side only.
    Otherwise an A/B of this sweep: every variant against its baseline variant, both sides growing."""
    sides = {v: _as_planned(s) for v, s in load_results(out_dir).items()}
    if repeats.against is not None:
        stored = load_results(Path(repeats.against))
        planned = max((s.starts for s in stored.values()), default=0) or None
        plan = sequential.Plan(max_rounds=repeats.starts, baseline_starts=planned)
        return sequential.decide(stored, sides, plan=plan, rounds=done, final=final)
    base = sides.get(baseline_variant)
    if base is None:
        return None  # nothing to judge against: the rounds run as planned
    others = [v for v in sides if v != baseline_variant]
    plan = sequential.Plan(max_rounds=repeats.starts)
    return sequential.decide({v: base for v in others}, {v: sides[v] for v in others}, plan=plan, rounds=done,
                             final=final)  # fmt: skip


def _as_planned(side: Side) -> Side:
    """A side that is partial only because its later starts have not run yet is, for this look, complete."""
    if side.status == PARTIAL and side.reason and "server starts measured" in side.reason:
        return dataclasses.replace(side, status=OK, reason=None)
    return side


def record(out_dir: Path, decision: dict[str, Any]) -> None:
    """Every run of the sweep keeps why its rounds stopped; a run stopped early at a clear answer is complete."""
    from bench.run.finish import finish  # the status is re-derived from what is on disk, as at every start's end

    for run_dir in sorted(p.parent for p in Path(out_dir).glob("*/run.json")):
        run = read_run(run_dir)
        if run is None or run.spec is None:
            continue
        run.rounds = decision
        finish(run, run_dir)
        write_run(run_dir, run)
