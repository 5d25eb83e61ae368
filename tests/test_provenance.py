"""Provenance never records a secret: flags and environment variables named like one are redacted."""

from __future__ import annotations

import pytest

from bench.core.secrets import is_secret_name
from bench.run.provenance import collect, redact_args, redact_env


def test_secret_flags_are_redacted_in_both_spellings() -> None:
    cmd = ["python", "-m", "vllm", "--model", "m", "--api-key", "k1", "--hf-token=k2", "--port", "8000"]
    assert redact_args(cmd) == [
        "python", "-m", "vllm", "--model", "m", "--api-key", "<redacted>", "--hf-token=<redacted>", "--port", "8000"
    ]  # fmt: skip
    assert redact_args(["--api-key"]) == ["--api-key"]  # a dangling flag has nothing to hide


def test_secret_environment_variables_are_redacted() -> None:
    env = {"HF_TOKEN": "t", "OPENAI_API_KEY": "k", "DB_PASSWORD": "p", "VLLM_CPU_KVCACHE_SPACE": "2"}
    assert redact_env(env) == {
        "HF_TOKEN": "<redacted>", "OPENAI_API_KEY": "<redacted>", "DB_PASSWORD": "<redacted>",
        "VLLM_CPU_KVCACHE_SPACE": "2",
    }  # fmt: skip


def test_provenance_names_bench_s_own_commit_from_any_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git checkout
    p = collect()
    assert p["git_commit"] and len(p["git_commit"].removesuffix("-dirty")) == 40
    assert p["cpu_count"] and p["python"] and p["bench_version"]


@pytest.mark.parametrize(
    "name", ["api_key", "VLLM_API_KEY", "--hf-token", "apiKey", "Authorization", "AWS_SECRET_ACCESS_KEY", "HFTOKEN"]
)
def test_secret_names_are_recognised_word_by_word(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["--max-num-batched-tokens", "TOKENIZERS_PARALLELISM", "--tokenizer", "max_tokens", "monkey", "authors"]
)
def test_settings_that_only_contain_a_secret_word_stay_readable(name: str) -> None:
    # A substring match hid these settings in run.json, so compare and bisect could not see or apply them.
    assert not is_secret_name(name)
    assert redact_args([name, "8192"]) == [name, "8192"] and redact_env({name: "false"}) == {name: "false"}
