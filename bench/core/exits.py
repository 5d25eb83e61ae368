"""The exit-code contract of every verb (README, --help), and the one way a crash is reported: one module that
the CLI and the verbs that run bench in a subprocess (bisect's probes) both read."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import traceback
from pathlib import Path

from bench.core.secrets import redact_url

# The exit-code contract (README, --help): a crash never exits 1, which scripts read as a verdict.
OK, VERDICT, BAD_INPUT, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130
# What each code means, for --help and docs/reference/exit-codes.md (both made from this table).
MEANINGS: dict[int, str] = {
    OK: "success: every variant ok (run), no regression (compare, history report), nothing to bisect (bisect), "
    "the report written (analyze), the figures kept (history add, baseline promote)",
    VERDICT: "a verdict, and only a verdict: some variant not ok (run), a regression (compare, history report), "
    "a regression reproduced and its culprits named (bisect)",
    BAD_INPUT: "bad input, in one line, every verb: an unknown name, a value out of range (NaN and infinity "
    "included, counts above 10^6), a malformed or corrupt file (run.json, requests.jsonl, baseline.json, a history "
    "file, a bisect cache), a bad path, a symbolic link where bench would write, an endpoint that does not answer "
    "as an OpenAI server, a port in use (server.port, tracing.listen), a run folder another bench is writing, an "
    "optional part not installed (Ray, the AWQ tool: the line names the command that installs it)",
    INTERNAL: "internal error: a bug in bench; one line here, the traceback in the log file it names",
    INTERRUPTED: "interrupted (Ctrl-C, SIGTERM), every verb: servers and a bisect's probe stopped, finished results "
    "kept; re-run the same command to resume. A closed output pipe (compare A B | head -1) ends nothing early",
}


def internal_error(e: BaseException) -> int:
    """A bug: one line on stderr, the traceback in a log file it names (a CI log keeps the line, the file
    keeps the detail), and exit 3."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    log = Path(tempfile.gettempdir()) / f"bench-crash-{stamp}-{os.getpid()}.log"
    try:
        # A new file only, never through a link: the folder is /tmp, shared with every user of the machine.
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(redact_url("".join(traceback.format_exception(e))))
        where = f"traceback in {log}"
    except OSError:
        where = "traceback could not be saved; BENCH_DEBUG=1 prints it"
    if os.environ.get("BENCH_DEBUG") == "1":
        traceback.print_exception(e)
    first = str(e).splitlines()[0] if str(e) else ""
    print(f"bench: internal error: {type(e).__name__}: {first} ({where}; please report it)", file=sys.stderr)
    return INTERNAL
