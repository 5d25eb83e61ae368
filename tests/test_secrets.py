"""Secrets: one redaction for flags in both forms, URL user-info holding @, secret query parameters, password-named
variables; user-info sent as basic auth by both clients; nothing planted reaches a file bench or Hydra writes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.secrets import (
    REDACTED,
    auth_headers,
    is_secret_name,
    redact_tree,
    redact_url,
    secret_values,
    split_userinfo,
)
from tests.test_hostile import HOSTILE, _wait_for_port, bench

PASSWORD = "hunter@2-planted"  # as tests/hostile_endpoint.py's basic_auth mode wants it


def test_a_password_holding_at_is_redacted_whole() -> None:
    text = f'see "http://admin:{PASSWORD}@10.0.0.1:8000/v1" now'
    out = redact_url(text)
    assert "hunter" not in out and "2-planted" not in out
    assert out == f'see "http://{REDACTED}@10.0.0.1:8000/v1" now'


def test_secret_query_parameters_are_redacted_and_the_others_kept() -> None:
    out = redact_url("http://h:1/v1?api_key=sk-planted&model=m&token=t0k3n&access_token=zz&max_tokens=8")
    assert "sk-planted" not in out and "t0k3n" not in out and "zz" not in out
    assert "model=m" in out and "max_tokens=8" in out


def test_a_flag_and_its_value_as_two_list_items_are_found_and_redacted() -> None:
    config = {"extra_args": ["--max-num-seqs", "8", "--api-key", "sk-two-items"], "endpoint": None}
    assert "sk-two-items" in secret_values(config)
    assert redact_tree(config)["extra_args"] == ["--max-num-seqs", "8", "--api-key", REDACTED]
    overrides = ["server.extra_args=[--api-key,sk-override]", "+server.env={HF_TOKEN:hf-planted}"]
    assert {"sk-override", "hf-planted"} <= secret_values(overrides)


@pytest.mark.parametrize("name", ["DB_PASSWORD", "PGPASSWORD", "MYSQL_PWD", "REDIS_PASS", "X-Amz-Signature"])
def test_password_named_variables_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["--max-num-batched-tokens", "--tokenizer", "TOKENIZERS_PARALLELISM", "PWD",
                                  "passes", "key", "max_tokens"])  # fmt: skip
def test_settings_named_like_secrets_word_by_word_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_user_info_becomes_basic_auth_over_the_api_key() -> None:
    url, basic = split_userinfo(f"http://admin:{PASSWORD}@127.0.0.1:9/v1")
    assert url == "http://127.0.0.1:9/v1"
    assert basic is not None and base64.b64decode(basic.split()[1]).decode() == f"admin:{PASSWORD}"
    assert auth_headers("http://u:p%40ss@h:1", "sk")["Authorization"] == "Basic " + base64.b64encode(b"u:p@ss").decode()
    assert auth_headers("http://h:1", "sk") == {"Authorization": "Bearer sk"}


def test_every_stored_reference_record_is_unchanged_by_the_redaction() -> None:
    root = Path(__file__).resolve().parents[1] / "results" / "reference"
    records = [json.loads(p.read_text()) for p in root.rglob("*.json")]
    assert records and all(redact_tree(r) == r for r in records)


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_basic_auth_with_at_reaches_the_endpoint_and_no_planted_secret_any_file(client: str, tmp_path: Path) -> None:
    from bench.run.server import free_port

    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, HOSTILE, "basic_auth", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    key, query = "sk-two-items-planted", "qtok-planted"
    out = tmp_path / "out"
    try:
        _wait_for_port(port)
        common = [f"out_dir={out}", "dataset.sample_size=2", "telemetry_interval_s=0", f"load.client={client}"]
        p = bench("run", *common, f"endpoint=http://admin:{PASSWORD}@127.0.0.1:{port}/v1",
                  f"server.extra_args=[--api-key,{key}]", cwd=tmp_path)  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]  # the endpoint answers only with its basic auth
        # A key as a query parameter: the endpoint refuses it (no basic auth), and it is written nowhere.
        q = bench("run", *common, "run_name=query", f"endpoint='http://127.0.0.1:{port}/v1?api_token={query}'",
                  cwd=tmp_path)  # fmt: skip
        assert q.returncode == 2 and "Traceback" not in q.stderr, q.stderr[-2000:]
    finally:
        proc.kill()
        proc.wait()
    written = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.parent.name == ".hydra" for f in written) and (out / "summary.csv").is_file()
    planted = ("hunter", "2-planted", key, query)
    leaks = [(str(f), s) for f in written for s in planted if s in f.read_text(errors="replace")]
    assert leaks == []
    assert all(s not in p.stdout + p.stderr + q.stdout + q.stderr for s in planted)
