"""Background sampling of GPU (NVML) or, without one, CPU (psutil) use, on the request records' clock."""

from __future__ import annotations

import csv
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import psutil

from bench.core import clock
from bench.core.files import open_nofollow


@dataclass(frozen=True)
class Sample:
    time: float  # epoch seconds, like RequestRecord.start_time
    device: str  # "gpu0"...; "server" (vLLM's process tree) or "cpu0"... (cores) without NVML
    source: str  # nvml | psutil
    util_pct: float | None
    mem_used_mib: float | None
    power_w: float | None = None
    sm_clock_mhz: float | None = None
    # NVML's total-energy counter (J since the driver loaded): energy over a window is its difference at
    # the window's edges, exact where integrating 10 Hz power samples misses the spikes between them.
    energy_counter_j: float | None = None


def gpu_count() -> int:
    """GPUs NVML sees; 0 where there is no driver or no nvidia-ml-py."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


class _Nvml:
    source = "nvml"

    def __init__(self) -> None:
        import pynvml

        self.nv = pynvml
        pynvml.nvmlInit()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def read(self, now: float) -> list[Sample]:
        nv, out = self.nv, []
        for i, h in enumerate(self.handles):
            util = nv.nvmlDeviceGetUtilizationRates(h)
            mem = self._memory(h)
            try:
                power = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
            except nv.NVMLError:
                power = None
            try:
                energy = nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0  # mJ; Volta and later
            except nv.NVMLError:
                energy = None
            clock = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            used = mem.used / 2**20
            out.append(Sample(now, f"gpu{i}", self.source, float(util.gpu), used, power, float(clock), energy))
        return out

    def _memory(self, handle: Any) -> Any:
        # v1's `used` also counts what the driver reserves (480 MiB on the H100 seen), which nvidia-smi
        # leaves out; v2 matches nvidia-smi. Drivers or bindings without v2 fall back to v1.
        nv = self.nv
        try:
            return nv.nvmlDeviceGetMemoryInfo(handle, version=nv.nvmlMemory_v2)
        except (AttributeError, TypeError, nv.NVMLError):
            return nv.nvmlDeviceGetMemoryInfo(handle)

    def close(self) -> None:
        self.nv.nvmlShutdown()


class _Psutil:
    source = "psutil"

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(percpu=True)  # primes the per-core counters

    def read(self, now: float) -> list[Sample]:
        util: float | None = 0.0
        rss = 0.0
        for pid in self.pids():
            p = self.procs.get(pid)
            try:
                if p is None:
                    p = self.procs[pid] = psutil.Process(pid)
                    # The first call only primes the counter (it returns 0.0, or a microsecond window if
                    # asked again at once): this sample's tree figure is unknown, not a low reading.
                    p.cpu_percent()
                    util = None
                elif util is not None:
                    util += p.cpu_percent()
                rss += p.memory_info().rss
            except psutil.Error:
                self.procs.pop(pid, None)
        out = [Sample(now, "server", self.source, util, rss / 2**20)]
        for i, pct in enumerate(psutil.cpu_percent(percpu=True)):
            out.append(Sample(now, f"cpu{i}", self.source, pct, None))
        return out

    def close(self) -> None:
        pass


class Sampler:
    """`with Sampler(...) as s:` samples every `interval_s` in a thread; `s.samples` after exit."""

    def __init__(self, interval_s: float, use_gpu: bool, server_pids: Callable[[], list[int]]) -> None:
        self.interval_s = interval_s
        self.use_gpu = use_gpu
        self.server_pids = server_pids
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        if self.interval_s <= 0:
            return self
        self._reader = self._open_reader()
        self._thread = threading.Thread(target=self._loop, name="bench-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._reader.close()

    def _open_reader(self) -> _Nvml | _Psutil:
        if self.use_gpu:
            try:
                return _Nvml()
            except Exception as e:  # no driver, no library: carry on with CPU figures
                warnings.warn(f"NVML unavailable ({e}); sampling CPU use with psutil instead", stacklevel=2)
        return _Psutil(self.server_pids)

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.extend(self._reader.read(clock.wall()))
            except Exception as e:  # a sampler must never take the run down with it
                warnings.warn(f"telemetry sample failed: {e}", stacklevel=2)
            # Late (the thread was starved: GIL, busy cores): skip the missed ticks. Samples taken back
            # to back give cpu_percent windows of microseconds, which read as 0 % or 500 %.
            next_t = max(next_t + self.interval_s, time.monotonic() + self.interval_s / 2)
            self._stop.wait(next_t - time.monotonic())


def write_samples(path: Path, samples: list[Sample], append: bool = False) -> None:
    """One CSV; `append` adds a later server start's samples under the same header."""
    header = not (append and path.exists() and path.stat().st_size)
    with open_nofollow(path, "a" if append else "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(Sample)])
        if header:
            w.writeheader()
        for s in samples:
            w.writerow(asdict(s))


def energy_j(rows: list[Sample]) -> tuple[float | None, str | None]:
    """Energy over the samples' span (one device, in time order) and how it was had: the NVML counter's
    difference at the edges, else the trapezoid over sampled power."""
    counter = [s.energy_counter_j for s in rows if s.energy_counter_j is not None]
    if len(counter) > 1:
        return counter[-1] - counter[0], "nvml_counter"
    powered = [(s.time, s.power_w) for s in rows if s.power_w is not None]
    if len(powered) > 1:
        return float(np.trapezoid([p for _, p in powered], [t for t, _ in powered])), "power_integral"
    return None, None


def summarize(
    samples: list[Sample], output_tokens: int | None, windows: list[tuple[float, float]] | None = None
) -> list[dict[str, Any]]:
    """Per device: utilization mean/p50/p95, peak memory, energy and J/token. With `windows` (epoch-second
    spans, e.g. one load level's passes), only samples inside them count and energy is summed per window."""
    inside = samples if windows is None else [s for s in samples if any(a <= s.time <= b for a, b in windows)]
    out = []
    for device in sorted({s.device for s in inside}):
        rows = sorted((s for s in inside if s.device == device), key=lambda s: s.time)
        util = np.array([s.util_pct for s in rows if s.util_pct is not None], dtype=float)
        mem = [s.mem_used_mib for s in rows if s.mem_used_mib is not None]
        parts = [energy_j([s for s in rows if a <= s.time <= b]) for a, b in windows or [(-np.inf, np.inf)]]
        known = [e for e, _ in parts if e is not None]
        energy = float(sum(known)) if known else None
        out.append(
            {
                "device": device,
                "source": rows[0].source,
                "n_samples": len(rows),
                "util_mean_pct": float(util.mean()) if util.size else None,
                "util_p50_pct": float(np.percentile(util, 50)) if util.size else None,
                "util_p95_pct": float(np.percentile(util, 95)) if util.size else None,
                "mem_peak_mib": max(mem) if mem else None,
                "energy_j": energy,
                "energy_source": next((how for _, how in parts if how), None),
                "j_per_output_token": energy / output_tokens if energy is not None and output_tokens else None,
            }
        )
    return out


def merge_summaries(per_start: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several server starts' summaries as one per device: utilization weighted by samples, peak memory
    the highest, energy summed (integrating across the gaps between starts would count idle time);
    percentiles of utilization are per start only."""
    if len(per_start) == 1:
        return per_start[0]
    out: dict[str, dict[str, Any]] = {}
    for summary in per_start:
        for d in summary:
            empty = dict.fromkeys(("util_mean_pct", "mem_peak_mib", "energy_j", "util_p50_pct", "util_p95_pct"))
            m = out.setdefault(d["device"], {**d, **empty, "n_samples": 0})
            n = d.get("n_samples") or 0
            if d.get("util_mean_pct") is not None:
                prev, prev_n = m["util_mean_pct"] or 0.0, m["n_samples"]
                m["util_mean_pct"] = (prev * prev_n + d["util_mean_pct"] * n) / (prev_n + n) if prev_n + n else None
            m["n_samples"] += n
            if d.get("mem_peak_mib") is not None:
                m["mem_peak_mib"] = max(m["mem_peak_mib"] or 0.0, d["mem_peak_mib"])
            if d.get("energy_j") is not None:
                m["energy_j"] = (m["energy_j"] or 0.0) + d["energy_j"]
    return list(out.values())
