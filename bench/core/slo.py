"""Service-level objectives per request, goodput (requests/s meeting every one), and where answers first differ."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.core.records import RequestRecord

# Objective -> the SloConfig field that sets it. Summary columns are `slo_<objective>_share`.
OBJECTIVES = {
    "ttft": "ttft_ms",
    "tpot": "tpot_ms",
    "latency": "latency_ms",
    "f1": "min_f1",
    "identical": "identical_to_baseline",
}


# The baseline's answers, keyed by (question id, load level) and by question id alone (its lowest level).
Answers = Mapping[Any, str]
# A request as the runner holds it, or as a row read back (requests.jsonl, a DataFrame of the analyzer).
Request = RequestRecord | Mapping[str, Any]


def _field(request: Request, name: str) -> Any:
    return request.get(name) if isinstance(request, Mapping) else getattr(request, name)


def baseline_answers(records: Iterable[Mapping[str, Any]]) -> dict[Any, str]:
    """The baseline's answer to each question at each load level: its most common one over passes and starts.

    Keyed by level because an engine that batches is not batch-invariant: at concurrency 64 a greedy answer
    can differ from the same engine's answer at concurrency 1 (seen on the H200 in bf16, issue 18), so a
    variant is held to the baseline's answer at the same level. A level the baseline did not run falls back
    to the question id alone: the baseline's answer at its lowest level."""
    counts: dict[tuple[str, float], dict[str, int]] = {}
    for r in records:
        if r.get("error") is None and r.get("answer") is not None:
            key = (str(r["question_id"]), float(r.get("level") or 1.0))
            by_answer = counts.setdefault(key, {})
            by_answer[r["answer"]] = by_answer.get(r["answer"], 0) + 1
    out: dict[Any, str] = {}
    for key in sorted(counts, key=lambda k: (k[0], -k[1])):  # lowest level last: it wins the bare id
        out[key] = out[key[0]] = max(counts[key].items(), key=lambda kv: kv[1])[0]
    return out


def baseline_answer(answers: Answers, question_id: Any, level: Any) -> str | None:
    """The baseline's answer to this question at this level, or at its lowest level."""
    return answers.get((str(question_id), float(level or 1.0)), answers.get(str(question_id)))


def active(slo: Mapping[str, Any] | None) -> list[str]:
    """The objectives `slo` (SloConfig as a dict, as run.json keeps it) sets."""
    slo = slo or {}
    return [name for name, key in OBJECTIVES.items() if slo.get(key) not in (None, False)]


def check(record: Request, slo: Mapping[str, Any], baseline_answer: str | None, has_baseline: bool) -> dict[str, bool]:
    """Objective -> met, for one request. A failed request meets none. `identical` is judged only where the
    baseline's answers are known (`has_baseline`); a question the baseline did not answer is not met."""
    out: dict[str, bool] = {}
    failed = _field(record, "error") is not None
    for name in active(slo):
        if failed:
            out[name] = False
        elif name == "ttft":
            ttft = _field(record, "ttft_s")
            out[name] = ttft is not None and ttft * 1000 <= slo["ttft_ms"]
        elif name == "tpot":
            tpot = _field(record, "tpot_s")
            # One output token has no time per output token after the first: nothing to miss.
            short = (_field(record, "output_tokens") or 0) <= 1
            out[name] = short if tpot is None else tpot * 1000 <= slo["tpot_ms"]
        elif name == "latency":
            out[name] = _field(record, "latency_s") * 1000 <= slo["latency_ms"]
        elif name == "f1":
            out[name] = float(_field(record, "f1") or 0.0) >= slo["min_f1"]
        elif name == "identical" and has_baseline:
            out[name] = baseline_answer is not None and _field(record, "answer") == baseline_answer
    return out


def summarize(
    records: Iterable[Request],
    slo: Mapping[str, Any] | None,
    wall_s: float | None,
    baseline_answers: Answers | None = None,
) -> dict[str, float | None]:
    """goodput_req_per_s, slo_met_share and slo_<objective>_share over every request sent (failed ones
    included: they met nothing). Empty when no SLO is set. `baseline_answers`: from baseline_answers()."""
    names = active(slo)
    if not names:
        return {}
    assert slo is not None
    records = list(records)
    has_baseline = baseline_answers is not None
    answers = baseline_answers or {}
    checks = [
        check(r, slo, baseline_answer(answers, _field(r, "question_id"), _field(r, "level")), has_baseline)
        for r in records
    ]
    n = len(records)
    met = sum(1 for c in checks if c and all(c.values()))
    out: dict[str, float | None] = {
        "goodput_req_per_s": met / wall_s if wall_s and n else None,
        "slo_met_share": met / n if n else None,
    }
    for name in names:
        judged = [c[name] for c in checks if name in c]
        out[f"slo_{name}_share"] = sum(judged) / len(judged) if judged else None
    return out


def first_difference(answer: str, baseline: str) -> tuple[int, int]:
    """(character, word) index where `answer` first differs from `baseline`; words split on whitespace.
    Where one is a prefix of the other, they differ where the shorter one ends."""

    def first(a: list[str] | str, b: list[str] | str) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    return first(answer, baseline), first(answer.split(), baseline.split())
