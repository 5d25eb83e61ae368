"""CSV output beside summary.csv (which bench.analyze writes as it loads the folder): answer_diffs.csv."""

from __future__ import annotations

from bench.analyze.tables import answer_diffs
from bench.core.errors import LinkError
from bench.core.files import atomic_write_text
from bench.report.contents import Report

DIFFS_FILE = "answer_diffs.csv"


def write(report: Report) -> None:
    """The lossless check per request: every answer unlike the baseline's, and where it first differs.
    Written only where the baseline ran; a failure joins the report's problems instead of stopping it."""
    sweep, baseline = report.sweep, report.baseline
    try:
        diffs = answer_diffs(sweep.requests, baseline)
        if not sweep.requests.empty and baseline in set(sweep.requests["variant"]):
            atomic_write_text(report.results_dir / DIFFS_FILE, diffs.to_csv(index=False))
    except LinkError:
        raise
    except Exception as e:
        sweep.errors.append(f"{DIFFS_FILE}: {type(e).__name__}: {e}")
