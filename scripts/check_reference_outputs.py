"""Before/after equality of a redesign: `bench analyze` and `bench compare X X` on every committed results folder.

    python scripts/check_reference_outputs.py            # check against scripts/reference_outputs.json
    python scripts/check_reference_outputs.py --write    # record the current outputs (only before a redesign)

Each folder under results/reference that holds a run (a */run.json) is copied to a scratch folder (the
committed folder is never written to), then `python -m bench analyze` writes its summary.csv and
`python -m bench compare X X` prints its table. The files record summary.csv, compare's stdout and both exit codes
verbatim, so a failed check shows the line that moved. Exit 0: byte-identical; 1: something differs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
EXPECTED = ROOT / "scripts" / "reference_outputs.json"


def folders() -> list[Path]:
    return sorted({p.parent.parent for p in REFERENCE.rglob("run.json")})


def outputs(folder: Path, scratch: Path) -> dict[str, object]:
    rel = folder.relative_to(ROOT)
    copy = scratch / rel
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    for stale in ("summary.csv", "summary.md", "report.html", "answer_diffs.csv", "charts"):
        target = copy / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    run = {"cwd": scratch, "capture_output": True, "text": True}
    analyzed = subprocess.run([sys.executable, "-m", "bench", "analyze", str(rel)], **run)  # type: ignore[call-overload]
    compared = subprocess.run([sys.executable, "-m", "bench", "compare", str(rel), str(rel)], **run)  # type: ignore[call-overload]
    summary = copy / "summary.csv"
    return {
        "analyze_rc": analyzed.returncode,
        "summary_csv": summary.read_text(encoding="utf-8") if summary.exists() else None,
        "compare_rc": compared.returncode,
        "compare_stdout": compared.stdout,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="record the current outputs as the expected ones")
    a = p.parse_args()
    # Commands run inside the scratch folder with relative paths, so what they print names no scratch path;
    # a fresh folder per check, so two checks at once (two worktrees) cannot collide.
    scratch = Path(tempfile.mkdtemp(prefix="bench-reference-check-"))
    got = {str(f.relative_to(ROOT)): outputs(f, scratch) for f in folders()}
    shutil.rmtree(scratch, ignore_errors=True)
    if a.write:
        EXPECTED.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"recorded {len(got)} folders in {EXPECTED.relative_to(ROOT)}")
        return 0
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    bad = 0
    for name in sorted(expected.keys() | got.keys()):
        want, have = expected.get(name), got.get(name)
        if want == have:
            print(f"same  {name}")
            continue
        bad += 1
        print(f"DIFF  {name}")
        for key in sorted(set(want or {}) | set(have or {})):
            w, h = (want or {}).get(key), (have or {}).get(key)
            if w != h:
                diff = difflib.unified_diff(str(w).splitlines(), str(h).splitlines(), "expected", "now", lineterm="")
                print(f"  {key}:\n    " + "\n    ".join(list(diff)[:20]))
    print(f"{len(got) - bad} of {len(got)} folders byte-identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
