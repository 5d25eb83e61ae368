"""Secrets never reach a file: API keys and URL credentials redacted in everything bench (or Hydra for it) writes."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

REDACTED = "<redacted>"
# A key or flag that names a secret: api_key, VLLM_API_KEY, --hf-token, OPENAI_API_KEY, apiKey, password... Word by
# word (split at _ - . and camelCase): a substring match also hid --max-num-batched-tokens 8192, --tokenizer PATH and
# TOKENIZERS_PARALLELISM, settings a run must record to be compared and bisected.
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "passphrase", "credential", "credentials",
                 "auth", "authorization", "cookie", "pass", "pwd", "signature", "sig"}  # fmt: skip
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# The shell's working folders, and a record's field named `key` (a config key: bisect's changes), not secrets.
_NOT_SECRET = {"PWD", "OLDPWD", "key"}


_SECRET_ENDINGS = ("apikey", "token", "secret", "password", "passwd")  # glued on: HFTOKEN, MYAPIKEY (not "key": monkey)


def is_secret_name(name: str) -> bool:
    if name.lstrip("-") in _NOT_SECRET:
        return False
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


# A URL up to whitespace or a quote. Its authority ends at the first / ? or #; the user-info in it runs to the LAST
# @ (a password may hold @: cutting at the first one wrote the password's tail into run.json).
_URL = re.compile(r"\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<rest>[^\s'\"<>]*)", re.I)
_QUERY = re.compile(r"(?P<pre>[?&;])(?P<name>[^=&#;?]+)=(?P<value>[^&#;]*)")
# Shorter values are not searched for in text: a 1-3 character "secret" would redact half a file.
_MIN_SECRET = 4


def _authority_end(rest: str) -> int:
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def _url_secrets(url_rest: str) -> Iterator[str]:
    """The user-info (whole, user and password) and the values of secret-named query parameters of one URL."""
    end = _authority_end(url_rest)
    userinfo, at, _ = url_rest[:end].rpartition("@")
    if at:
        yield userinfo
        yield from userinfo.split(":", 1)
        yield from (urllib.parse.unquote(s) for s in userinfo.split(":", 1))
    for m in _QUERY.finditer(url_rest[end:]):
        if is_secret_name(urllib.parse.unquote(m["name"])):
            yield m["value"]
            yield urllib.parse.unquote_plus(m["value"])


def _redact_match(m: re.Match[str]) -> str:
    rest = m["rest"]
    end = _authority_end(rest)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rpartition('@')[2]}"
    tail = _QUERY.sub(
        lambda q: f"{q['pre']}{q['name']}={REDACTED}" if is_secret_name(urllib.parse.unquote(q["name"])) else q[0], tail
    )
    return f"{m['scheme']}{authority}{tail}"


def redact_url(text: str) -> str:
    """Every URL's credentials replaced: `http://<redacted>@host:8000/v1?api_key=<redacted>`."""
    return _URL.sub(_redact_match, text)


def _flag_values(items: list[str]) -> Iterator[str]:
    """The values of secret-named flags in a command line, both forms: `--api-key KEY` and `--api-key=KEY`."""
    for i, arg in enumerate(items):
        flag, eq, value = arg.partition("=")
        if not (flag.startswith("-") and is_secret_name(flag)):
            continue
        if eq:
            yield value
        elif i + 1 < len(items):
            yield items[i + 1]


def _override_values(text: str) -> Iterator[str]:
    """Secrets in one Hydra override or `key=value` string: `server.api_key=K`, `server.extra_args=[--api-key,K]`,
    `server.env={HF_TOKEN:K}`, and a flag with its value in one string (`--api-key K`)."""
    key, eq, value = text.partition("=")
    if eq and is_secret_name(key):
        yield value
    if eq and value[:1] in "[{" and value[-1:] in "]}":
        parts = [p.strip().strip("'\"") for p in value[1:-1].split(",")]
        yield from _flag_values(parts)
        for p in parts:
            k, colon, v = p.partition(":")
            if colon and is_secret_name(k.strip()):
                yield v.strip().strip("'\"")
    yield from _flag_values(text.split())


def secret_values(tree: Any, key: str = "") -> set[str]:
    """The values under secret-named keys anywhere in a nested config, the secret flags' values in its lists,
    and the credentials inside its URLs."""
    out: set[str] = set()
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out |= secret_values(v, str(k))
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            out |= secret_values(v, key)
        out |= set(_flag_values([str(v) for v in tree if isinstance(v, (str, int, float))]))
    elif isinstance(tree, str):
        if is_secret_name(key):
            out.add(tree)
        for m in _URL.finditer(tree):
            out |= set(_url_secrets(m["rest"]))
        out |= set(_override_values(tree))
    return {s for s in out if len(s) >= _MIN_SECRET and s != REDACTED}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and every URL credential replaced."""
    for s in sorted(secrets, key=len, reverse=True):  # longest first: a key that contains another
        text = text.replace(s, REDACTED)
    return redact_url(text)


def redact_tree(tree: Any) -> Any:
    """A copy of a record about to be written (run.json, a baseline): secret-named strings, the values of secret
    flags in lists (`["--api-key", "K"]`), URL credentials, and every such value wherever else it is quoted."""
    found = secret_values(tree)

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            items = [walk(v, key) for v in node]
            return redact_args(items) if all(isinstance(v, str) for v in items) else items
        if isinstance(node, str):
            return REDACTED if is_secret_name(key) and node else redact(node, found)
        return node

    return walk(tree)


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


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(the URL without its user-info, the HTTP basic Authorization header value for it or None). The user-info
    is a credential to send, not to drop: `http://user:p%40ss@host/` authenticates as user / p@ss."""
    m = _URL.match(url)
    if not m:
        return url, None
    end = _authority_end(m["rest"])
    userinfo, at, host = m["rest"][:end].rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return f"{m['scheme']}{host}{m['rest'][end:]}", "Basic " + base64.b64encode(pair.encode()).decode()


def auth_headers(url: str, api_key: str | None) -> dict[str, str]:
    """The Authorization header for a request to `url`: its user-info as basic auth, else the API key as a bearer."""
    _, basic = split_userinfo(url)
    if basic:
        return {"Authorization": basic}
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
