"""Secrets never reach a file: API keys and URL credentials redacted in everything bench (or Hydra for it) writes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"
# A key or flag that names a secret: api_key, VLLM_API_KEY, --hf-token, OPENAI_API_KEY, apiKey, password... Word by
# word (split at _ - . and camelCase): a substring match also hid --max-num-batched-tokens 8192, --tokenizer PATH and
# TOKENIZERS_PARALLELISM, settings a run must record to be compared and bisected.
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "passphrase", "credential", "credentials",
                 "auth", "authorization", "cookie"}  # fmt: skip
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


_SECRET_ENDINGS = ("apikey", "token", "secret", "password", "passwd")  # glued on: HFTOKEN, MYAPIKEY (not "key": monkey)


def is_secret_name(name: str) -> bool:
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


# user:password@ (or a bare token@) inside a URL: http://user:pw@host:8000/v1
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<cred>[^/@\s'\"]+)@", re.I)
# Shorter values are not searched for in text: a 1-3 character "secret" would redact half a file.
_MIN_SECRET = 4


def redact_url(text: str) -> str:
    """Every URL's credentials replaced: `http://<redacted>@host:8000/v1`."""
    return _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", text)


def secret_values(tree: Any, key: str = "") -> set[str]:
    """The values under secret-named keys anywhere in a nested config, and the credentials inside its URLs."""
    out: set[str] = set()
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out |= secret_values(v, str(k))
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            out |= secret_values(v, key)
    elif isinstance(tree, str):
        if is_secret_name(key) and len(tree) >= _MIN_SECRET:
            out.add(tree)
        for m in _URL_CREDENTIALS.finditer(tree):
            out |= {m["cred"], *m["cred"].split(":", 1)[1:]} if ":" in m["cred"] else {m["cred"]}
        flag, eq, value = tree.partition("=")  # an override or a flag: server.api_key=sk-..., --api-key=...
        if eq and is_secret_name(flag) and len(value) >= _MIN_SECRET:
            out.add(value)
    return {s for s in out if len(s) >= _MIN_SECRET}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and every URL credential replaced."""
    for s in sorted(secrets, key=len, reverse=True):  # longest first: a key that contains another
        text = text.replace(s, REDACTED)
    return redact_url(text)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in env.items()}


def redact_args(cmd: list[str]) -> list[str]:
    """Hide the value of any flag that names a secret: `--api-key X`, `--hf-token=X`; URL credentials too."""
    out = [redact_url(a) for a in cmd]
    for i, arg in enumerate(out):
        flag, eq, _ = arg.partition("=")
        if not (flag.startswith("--") and is_secret_name(flag)):
            continue
        if eq:
            out[i] = f"{flag}={REDACTED}"
        elif i + 1 < len(out):
            out[i + 1] = REDACTED
    return out
