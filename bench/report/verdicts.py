"""compare's verdicts as a reader sees them: the console table, Markdown, the one-line tally, and the verb."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.core.errors import CompareError
from bench.core.files import atomic_write_text, run_dirs, unreadable_lines
from bench.core.records import REQUESTS_FILE, RUN_FILE
from bench.regress.compare import (
    IMPROVEMENT,
    METRICS,
    MISSING,
    NOISE,
    REGRESSION,
    REPORTED,
    ThresholdsBase,
    Verdict,
    compare_results,
    exit_code,
)
from bench.regress.sides import ONE_START, UNREADABLE, context_changes, load_pair
from bench.regress.stats import NoiseSplit


def summary_line(verdicts: Sequence[Verdict]) -> str:
    n = Counter(v.verdict for v in verdicts)
    labels = {REGRESSION: "regressions", MISSING: "missing", IMPROVEMENT: "improvements", NOISE: "within noise"}
    line = ", ".join(f"{n[k]} {label}" for k, label in labels.items())
    return line + (f", {n[REPORTED]} reported without a threshold" if n[REPORTED] else "")


HEADERS = ("variant", "metric", "baseline", "current", "change", "threshold", "verdict", "noise b/w", "basis")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _cells(v: Verdict) -> list[str]:
    absolute = v.metric in METRICS and METRICS[v.metric].absolute
    change = f"{v.change_pct:+.1f}%" if v.change_pct is not None else "-"
    if absolute and v.baseline is not None and v.current is not None:
        change = f"{v.current - v.baseline:+.3f} ({change})"
    threshold = "-" if v.threshold is None else f"{v.threshold:g} abs" if absolute else f"{v.threshold * 100:g}%"
    basis = v.basis
    if v.ci is not None and absolute:
        basis += f" [{v.ci[0]:+.3f}, {v.ci[1]:+.3f}]"
    elif v.ci is not None and v.baseline:
        basis += f" [{v.ci[0] / v.baseline:+.0%}, {v.ci[1] / v.baseline:+.0%}]"
    basis = "; ".join(s for s in (basis, v.note) if s)
    figures = [_fmt(v.baseline), _fmt(v.current), change, threshold]
    return [v.variant, v.metric, *figures, v.verdict, _noise(v.noise), basis]


def _noise(n: NoiseSplit | None) -> str:
    """Between-start / within-start coefficients of variation; '-' where a level has one member."""
    if n is None:
        return "-"
    pct = [f"{x:.1%}" if x is not None else "-" for x in (n.between_cv, n.within_cv)]
    return "/".join(pct)


def format_table(verdicts: Sequence[Verdict], context: Sequence[str] = ()) -> str:
    """The terminal table; regressions and missing rows in capitals, since they are what needs a look."""
    rows = [list(HEADERS)]
    for v in verdicts:
        cells = _cells(v)
        cells[6] = cells[6].upper() if v.verdict in (REGRESSION, MISSING) else cells[6]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out = [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]
    return "\n".join(out + (["", "differs between the two sides:", *(f"  {c}" for c in context)] if context else []))


def format_markdown(verdicts: Sequence[Verdict], baseline: Path, current: Path, context: Sequence[str] = ()) -> str:
    """A CI job summary: headline counts, then the table."""
    lines = [
        "## bench compare",
        "",
        f"Baseline `{baseline}`, current `{current}`: **{summary_line(verdicts)}**.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for v in verdicts:
        cells = [c.replace("|", "\\|") for c in _cells(v)]
        cells[6] = f"**{cells[6]}**" if v.verdict in (REGRESSION, MISSING) else cells[6]
        lines.append("| " + " | ".join(cells) + " |")
    if context:
        lines += ["", "Differs between the two sides (may explain a verdict):", "", *(f"- `{c}`" for c in context)]
    return "\n".join(lines) + "\n"


def report(
    baseline_dir: Path, current_dir: Path, thresholds: ThresholdsBase, metrics: Sequence[str] | None = None,
    markdown_path: Path | None = None, fail_on_missing: bool = False,
) -> int:  # fmt: skip
    """`bench compare`: the table on stdout, Markdown where asked (and GitHub's job summary); the exit status."""
    baseline, current = load_pair(baseline_dir, current_dir)
    verdicts, context = compare_results(baseline, current, thresholds, metrics), context_changes(baseline, current)
    if any(ONE_START in v.note for v in verdicts):
        context = [*context, "starts: one server start a side, so the intervals cover pass-to-pass noise only,"
                   " not restarts: run with repeats.starts=3 or more (docs/regression.md)"]  # fmt: skip
    print(format_table(verdicts, context))
    markdown = format_markdown(verdicts, baseline_dir, current_dir, context)
    if markdown_path:
        try:
            markdown_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(markdown_path, markdown)
        except OSError as e:
            raise CompareError(f"--markdown {markdown_path}: cannot write it ({e.strerror or e})") from None
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # set by GitHub Actions: the job's summary page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(markdown)
    for side, folder in (("baseline", baseline_dir), ("current", current_dir)):
        # A question whose line is unreadable is left out of the pairing: said, never a quietly smaller pairing.
        for run_dir in [folder] if (folder / RUN_FILE).is_file() else list(run_dirs(folder)):
            if bad := unreadable_lines(run_dir):
                print(f"bench: compare: {side} {run_dir.name}/{REQUESTS_FILE}: {len(bad)} unreadable line(s) left out"
                      f" of the pairing ({'; '.join(bad[:3])})", file=sys.stderr)  # fmt: skip
    print(f"bench: compare: {summary_line(verdicts)}", file=sys.stderr)
    unreadable = [side.reason or "" for side in (*baseline.values(), *current.values()) if side.status == UNREADABLE]
    if unreadable:  # a corrupt side is bad input, never a quiet MISSING row that exits 0
        raise CompareError("; ".join(unreadable))
    return exit_code(verdicts, fail_on_missing)
