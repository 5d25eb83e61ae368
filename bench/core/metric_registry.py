"""The one table of result metrics: summary columns, views, compare's metrics and chart labels derive from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The compile cache's state before a server start (bench/run/compile_cache.py).
CACHE_STATES = ("cold", "warm")
# Where a metric is shown. Order within each view follows the table's order.
SUMMARY, CONSOLE, MARKDOWN = "summary", "console", "markdown"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the column / key in run.json, summary.csv and the trial records; units in the name
    label: str  # what a reader sees: a table header, a chart axis
    unit: str  # of the value as stored ("" for a ratio or a count)
    higher_is_better: bool | None = None  # None: no direction (a count, a duration of setup)
    fmt: str = ".3g"  # format spec of the value once multiplied by `scale`
    scale: float = 1.0  # display only: e.g. 1000 shows seconds as ms
    suffix: str = ""  # display only, after the scaled value: " ms", "x", " %"
    per_trial: bool = False  # recorded per (start, pass, load level), so compare can see its spread
    threshold: float | None = None  # compare's default: smallest change that counts; None = not compared
    absolute: bool = False  # the threshold is a difference in the metric's unit, not a fraction of the baseline
    views: tuple[str, ...] = (SUMMARY,)
    only_when_measured: bool = False  # views leave the column out when no run has it (SLO shares without an SLO)
    # From the server's /metrics histograms (scraped around each pass), not from request records. summary.csv has
    # its column only where a run measured it: older folders never did, and their summary.csv must not change.
    # History leaves it out: a trend line per phase and percentile would be noise that fails a night.
    from_server: bool = False
    # compare shows the change and gives no verdict unless a thresholds file sets one (compare.REPORTED).
    informational: bool = False
    # One figure per server start (start-up, bench/core/startup.py), not per pass: compare resamples starts, history
    # draws one point a night; summary.csv has its column only where a run measured it, as from_server's.
    per_start: bool = False

    def format(self, value: object) -> str:
        """The value as a view shows it; '-' for none."""
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return "-"
        return f"{value * self.scale:{self.fmt}}{self.suffix}"

    @property
    def axis_label(self) -> str:
        shown = self.suffix.strip() if self.scale != 1.0 else self.unit
        return f"{self.label} ({shown})" if shown and shown not in self.label.split() else self.label


def _ms(name: str, label: str, threshold: float | None = None, views: tuple[str, ...] = ()) -> MetricSpec:
    """A per-request time in seconds, shown in ms, lower is better, one figure per trial."""
    return MetricSpec(name, label, "s", False, ".0f", 1000, " ms", True, threshold, views=views)


def _phase(name: str, label: str, views: tuple[str, ...] = (SUMMARY,), informational: bool = False) -> MetricSpec:
    """A server-side phase figure in seconds (or a client-minus-server difference), per trial, shown in ms."""
    return MetricSpec(name, label, "s", False, ".1f", 1000, " ms", True, None, views=views, only_when_measured=True,
                      from_server=True, informational=informational)  # fmt: skip


# The server's request phases, vLLM's histograms (bench/run/prometheus.py PHASE_HISTOGRAMS): queue + prefill +
# decode = inference; ttft and e2e are the server's own, measured from the request's arrival at the engine.
PHASES: dict[str, str] = {
    "queue": "queue", "prefill": "prefill", "decode": "decode", "inference": "inference",
    "ttft": "TTFT", "e2e": "e2e latency", "tpot": "TPOT",
}  # fmt: skip
PHASE_STATS = ("mean", "p50", "p90", "p99")
# The decomposition's parts, the ones compare reports: where a request's time went, and a change in one
# ("queue +40 %") says why a variant moved. Percentiles and the sums of parts stay in run.json and summary.csv.
_PHASE_PARTS = ("queue", "prefill", "decode")

_ALL = (SUMMARY, CONSOLE, MARKDOWN)
_MD = (SUMMARY, MARKDOWN)

# Adding a metric is one entry here (and the code that measures it). Compare thresholds: fractions of
# the baseline unless `absolute`; conf/compare/default.yaml spells the defaults out for users.
REGISTRY: tuple[MetricSpec, ...] = (
    MetricSpec("wall_clock_s", "wall clock", "s", False, ".1f", suffix=" s", threshold=0.10, views=_ALL),
    MetricSpec("speedup", "speed-up", "", True, ".2f", suffix="x", views=_ALL),
    MetricSpec("output_tok_per_s", "output tok/s", "tok/s", True, ".1f", per_trial=True, threshold=0.10,
               views=_ALL),
    MetricSpec("requests_per_s", "req/s", "req/s", True, ".2f", per_trial=True),
    # A few slow first tokens move a median of short prompts more than the wall-clock.
    _ms("ttft_s_p50", "TTFT p50, first chunk", 0.15, _MD),
    # TTFT to the first visible text (guidellm's and aiperf's definition); ttft_s_* is vLLM's, to the first chunk.
    _ms("ttft_visible_s_p50", "TTFT p50, first text", views=_MD),
    # The tail is one or two requests per pass: noisier still.
    _ms("ttft_s_p99", "TTFT p99, first chunk", 0.25),
    _ms("tpot_s_p50", "TPOT p50", 0.10, _MD),
    MetricSpec("latency_s_p50", "latency p50", "s", False, ".2f", suffix=" s", per_trial=True, views=_MD),
    MetricSpec("latency_s_p99", "latency p99", "s", False, ".2f", suffix=" s", per_trial=True, views=()),
    MetricSpec("n_requests", "requests", "", None, ".0f"),
    MetricSpec("n_failed", "failed", "", False, ".0f"),
    # Greedy decoding makes answers nearly deterministic, so a small absolute drop is already a change.
    MetricSpec("f1", "F1", "", True, ".2f", per_trial=True, threshold=0.02, absolute=True, views=_ALL),
    MetricSpec("exact_match", "EM", "", True, ".2f", views=_MD),
    # Compared only for variants declared lossless (server.lossless: speculation, parallelism): see compare.
    MetricSpec("identical_to_baseline", "same answer as baseline", "", True, ".0%", threshold=0.0, absolute=True,
               views=_MD),
    # Goodput: requests/s meeting every SLO set in `slo` (bench/core/slo.py); the shares count every request sent.
    MetricSpec("goodput_req_per_s", "goodput", "req/s", True, ".2f", suffix=" req/s", threshold=0.10, views=_ALL,
               only_when_measured=True),
    MetricSpec("slo_met_share", "meets all SLOs", "", True, ".0%", threshold=0.05, absolute=True, views=_MD,
               only_when_measured=True),
    *(MetricSpec(f"slo_{o}_share", f"meets {lbl} SLO", "", True, ".0%", views=_MD, only_when_measured=True)
      for o, lbl in (("ttft", "TTFT"), ("tpot", "TPOT"), ("latency", "latency"), ("f1", "F1"),
                     ("identical", "identical-answer"))),
    MetricSpec("spec_acceptance_rate", "spec accept", "", True, ".0%", threshold=0.05, absolute=True, views=_MD),
    MetricSpec("spec_mean_acceptance_length", "mean acceptance length", "tokens", True, ".2f"),
    # From /metrics (vllm:prefix_cache_hits / queries): the built-in questions share passages, so later ones hit.
    MetricSpec("prefix_cache_hit_rate", "prefix-cache hits", "", None, ".0%", views=_MD, only_when_measured=True),
    *(_phase(f"server_{p}_s_{st}", f"server {lbl} {st}", _MD if st == "mean" and p in _PHASE_PARTS else (SUMMARY,),
             st == "mean" and p in _PHASE_PARTS)
      for p, lbl in PHASES.items() for st in PHASE_STATS),
    # Outside the engine (issue 24's name; outside the vLLM server as a whole): the client's mean minus the server's
    # (HTTP, streaming, the client). It grows with load and prompt length (issue 24: TTFT +2 ms at 1 in flight,
    # +25 ms at 64 on an H100).
    _phase("outside_engine_ttft_s", "TTFT outside the server", informational=True),
    _phase("outside_engine_e2e_s", "latency outside the server", _MD, informational=True),
    MetricSpec("util_mean_pct", "util mean", "%", None, ".0f", suffix=" %", views=_MD),
    # Peak GPU memory, or the server's RSS on the CPU engine.
    MetricSpec("mem_peak_mib", "mem peak", "MiB", False, ".0f", suffix=" MiB", threshold=0.10, views=_MD),
    MetricSpec("startup_s", "start-up", "s", False, ".1f", suffix=" s"),
    # Time to healthy per start, by the compile cache's state before it: cold (this configuration's first start
    # compiles) and warm (later starts reuse its cache) are two rows, never compared with each other.
    *(MetricSpec(f"startup_{c}_s", f"start-up, {c} cache", "s", False, ".1f", suffix=" s", threshold=0.10,
                 views=_MD, only_when_measured=True, per_start=True) for c in CACHE_STATES),
    MetricSpec("shutdown_s", "shutdown", "s", False, ".1f", suffix=" s"),
    MetricSpec("replay_s", "replay", "s", None, ".1f", suffix=" s"),
)  # fmt: skip

METRICS: dict[str, MetricSpec] = {m.name: m for m in REGISTRY}
TRIAL_METRICS: tuple[str, ...] = tuple(m.name for m in REGISTRY if m.per_trial)
COMPARED: dict[str, MetricSpec] = {m.name: m for m in REGISTRY if m.threshold is not None or m.informational}
# The per-trial figures computed from request records (bench.core.describe.trial_stats); the rest come from /metrics.
CLIENT_TRIAL_METRICS: tuple[str, ...] = tuple(m.name for m in REGISTRY if m.per_trial and not m.from_server)


def in_view(view: str) -> list[MetricSpec]:
    return [m for m in REGISTRY if view in m.views]


def label(name: str) -> str:
    """A metric's axis label with its unit, e.g. 'TTFT p50 (ms)'; the name itself if unknown."""
    spec = METRICS.get(name)
    return spec.axis_label if spec else name
