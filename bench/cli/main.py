"""`python -m bench VERB ...`: the verb is taken off first, since Hydra would read it as an override."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import traceback
from typing import Any, TextIO

from bench.core.exits import BAD_INPUT, INTERRUPTED, MEANINGS, OK, internal_error
from bench.core.paths import CONF_DIR
from bench.core.secrets import redact_url

__all__ = ["CONF_DIR", "HELP", "main"]

_VERBS_HELP = """\
verbs:
  run [OVERRIDES]            start a vLLM server per variant, replay the QA set, record everything
  analyze RESULTS_DIR        summary table (and charts) of a results folder
  compare BASELINE CURRENT   regression verdicts between two results folders
  history add RESULTS_DIR    keep a run's figures in the history store (results/history/)
  history report             trend charts and change points of the store; exit 1 on a standing regression
  baseline promote RESULTS --to results/baselines/MACHINE/SWEEP
                             make a results folder the machine's baseline, with its provenance
  bisect GOOD BAD [--variant V] [--envs PY1,PY2]
                             each of BAD's changes that makes GOOD regress, with what it explains

run examples:
  python -m bench run                              server=single on the default engine
  python -m bench run +sweep=parallel              single, tp2, pp2 -> results/parallel/
  python -m bench run +sweep=decoding dataset.sample_size=20
  python -m bench run server=spec_ngram engine=cpu model=/models/my-hf-folder
"""
# How each group is selected and what to say beside its options; the options themselves are bench/conf's files.
_GROUPS = {
    "server": ("server=", "(add a YAML file to add a variant)"),
    "dataset": ("dataset=", "(dataset.sample_size=N dataset.seed=S)"),
    "load": ("load=", ""),
    "sweep": ("+sweep=", ""),
    "compare": ("--thresholds", "(compare, bisect)"),
}


def _config_help() -> str:
    """The config groups as bench/conf holds them, and the small groups of fields set key by key."""
    lines = ["config groups (bench/conf/):"]
    for group, (syntax, note) in _GROUPS.items():
        names = " ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
        lines.append(f"  {syntax:<9} {names}" + (f"   {note}" if note else ""))
    lines += [
        "  request.  max_tokens temperature system_prompt   (every request; old server.max_tokens still read)",
        "  slo.      ttft_ms tpot_ms latency_ms min_f1 identical_to_baseline   (goodput: req/s meeting all)",
        "  engine=   auto cpu cuda",
    ]
    return "\n".join(lines) + "\n"


def _help() -> str:
    codes = "".join(
        f"  {code:<4} " + "\n       ".join(textwrap.wrap(text, 98)) + "\n" for code, text in MEANINGS.items()
    )
    return (
        "usage: python -m bench VERB [ARGS]\n\nexit status, every verb:\n"
        + codes
        + "\n"
        + _VERBS_HELP
        + "\n"
        + _config_help()
        + "\n`python -m bench run --help` shows the composed config; `--cfg job` prints it without running.\n"
        "Set BENCH_DEBUG=1 for tracebacks.\n"
    )


HELP = _help()


class _PipeSafe:
    """stdout or stderr that outlives a closed pipe (`bench compare A B | head -1`): once the reader is gone, what
    is written goes to /dev/null, so the verb finishes and exits with its own code, with no traceback."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())  # the buffered rest, and the interpreter's last flush, land there
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a CI job cancelled, `kill`) takes Ctrl-C's path: children stopped, exit 130


def main(argv: list[str]) -> int:
    """The verb's exit code; stdout/stderr made safe for a closed pipe and SIGTERM made Ctrl-C, for every verb."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeSafe(sys.stdout), _PipeSafe(sys.stderr)  # type: ignore[assignment]
    on_term = (
        signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return OK
    from bench.cli.verbs import VERBS
    from bench.core.errors import BenchError

    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(
            f"bench: error: unknown verb {verb!r}; verbs: {', '.join(VERBS)} (python -m bench --help)", file=sys.stderr
        )
        return BAD_INPUT
    try:
        return VERBS[verb](rest)
    except BenchError as e:
        if os.environ.get("BENCH_DEBUG") == "1":
            traceback.print_exc()
        print(redact_url(f"bench: error: {e}"), file=sys.stderr)
        return BAD_INPUT
    except OSError as e:  # a path bench was given that cannot be read or written: the user's to fix
        where = f": {e.filename}" if e.filename else ""
        print(redact_url(f"bench: error: {e.strerror or e}{where}"), file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print(
            "bench: interrupted; servers stopped, finished results kept. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return INTERRUPTED
    except Exception as e:
        return internal_error(e)
