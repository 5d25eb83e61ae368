"""Sanity checks for the built-in SQuAD-format QA set in data/qa.json."""

import json
import re
from pathlib import Path

import pytest

DATA_PATH = Path(__file__).parents[1] / "bench" / "data" / "qa.json"
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@pytest.fixture(scope="module")
def dataset():
    with open(DATA_PATH, encoding="utf-8") as f:
        return json.load(f)


def _paragraphs(dataset):
    for article in dataset["data"]:
        yield from article["paragraphs"]


def _qas(dataset):
    for para in _paragraphs(dataset):
        for qa in para["qas"]:
            yield para["context"], qa


def test_top_level_shape(dataset):
    assert isinstance(dataset.get("version"), str) and dataset["version"]
    assert isinstance(dataset.get("data"), list) and dataset["data"]
    for article in dataset["data"]:
        assert isinstance(article.get("title"), str) and article["title"]
        assert isinstance(article.get("paragraphs"), list) and article["paragraphs"]


def test_counts(dataset):
    paragraphs = list(_paragraphs(dataset))
    qas = list(_qas(dataset))
    assert len(paragraphs) >= 12
    assert len(qas) >= 60


def test_both_languages_present(dataset):
    contexts = [p["context"] for p in _paragraphs(dataset)]
    zh = [c for c in contexts if CJK_RE.search(c)]
    en = [c for c in contexts if not CJK_RE.search(c)]
    assert zh, "no Chinese passages"
    assert en, "no English passages"


def test_ids_unique(dataset):
    ids = [qa["id"] for _, qa in _qas(dataset)]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(ids) == len(set(ids))


def test_answers_are_exact_spans(dataset):
    for context, qa in _qas(dataset):
        assert isinstance(qa.get("question"), str) and qa["question"].strip(), qa["id"]
        answers = qa.get("answers")
        assert isinstance(answers, list) and answers, qa["id"]
        for ans in answers:
            text = ans["text"]
            start = ans["answer_start"]
            assert isinstance(text, str) and text.strip(), qa["id"]
            assert isinstance(start, int) and 0 <= start <= len(context), qa["id"]
            assert context[start : start + len(text)] == text, (qa["id"], text, start)
