"""Endpoint mode: an OpenAI-compatible server bench did not start, checked before anything is sent to it."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

from bench.core.errors import EndpointError
from bench.core.secrets import auth_headers, redact_url, split_userinfo


class RemoteServer:
    """An OpenAI-compatible server that is already running (endpoint mode): checked, never started or stopped."""

    proc = None

    def __init__(self, url: str, api_key: str | None) -> None:
        self.startup_s: float | None = None
        self.startup_phases_s: dict[str, float] = {}
        self.compile_cache: str | None = None
        self.compile_cache_bytes: int | None = None
        self.shutdown_s: float | None = None
        self.log_offset = 0
        self.base_url = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.models: list[str] = []

    def __enter__(self) -> RemoteServer:
        # The URL's user-info goes as basic auth (urllib would read it as part of the host).
        req = urllib.request.Request(f"{split_userinfo(self.base_url)[0]}/v1/models")
        for k, v in auth_headers(self.base_url, self.api_key).items():
            req.add_header(k, v)
        shown = redact_url(self.base_url)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                listed = json.loads(r.read())
        except urllib.error.HTTPError as e:
            hint = " (set server.api_key)" if e.code in (401, 403) else ""
            raise EndpointError(f"endpoint {shown} answered {e.code} to /v1/models{hint}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise EndpointError(f"endpoint {shown} is not reachable: {e}") from None
        except ValueError:
            raise EndpointError(f"endpoint {shown} answered /v1/models with something that is not JSON") from None
        data = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(data, list) or not data or not all(isinstance(m, dict) and m.get("id") for m in data):
            raise EndpointError(f"endpoint {shown}: /v1/models lists no model (expected {{data: [{{id: ...}}]}})")
        self.models = [str(m["id"]) for m in data]
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def alive(self) -> bool:
        return True  # not ours to watch: a dead endpoint shows as failed requests

    def exited(self, grace_s: float) -> int | None:
        return None

    def pids(self) -> list[int]:
        return []
