"""QA set loading: the built-in set, SQuAD-format files, and every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.config import DatasetConfig
from bench.core.errors import DatasetError
from bench.run.dataset import load_dataset, parse_squad, sample

BUILTIN = DatasetConfig(path="data/qa.json")


def _write(tmp_path, doc) -> str:
    path = tmp_path / "qa.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(path)


SQUAD = {
    "data": [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": "The bridge opened in 1901.",
                    "qas": [{"id": "q1", "question": "When?", "answers": [{"text": "1901", "answer_start": 21}]}],
                },
                {
                    "context": "橋在一九零一年通車。",
                    "qas": [
                        {"id": "q2", "question": "何時通車？", "answers": [{"text": "一九零一年", "answer_start": 2}]}
                    ],
                },
            ],
        }
    ]
}


def test_builtin_set_loads_in_both_languages():
    items = load_dataset(BUILTIN)
    assert len(items) >= 60
    assert {i.lang for i in items} == {"en", "zh"}
    assert all(i.answers and i.question and i.context for i in items)


def test_squad_file_parses_and_detects_language(tmp_path):
    items = load_dataset(DatasetConfig(path=_write(tmp_path, SQUAD)))
    assert [(i.id, i.lang, i.answers) for i in items] == [("q1", "en", ["1901"]), ("q2", "zh", ["一九零一年"])]
    assert "Question: When?" in items[0].user_prompt() and "問題：何時通車？" in items[1].user_prompt()


def test_sample_is_seeded_and_keeps_file_order():
    items = load_dataset(BUILTIN)
    a, b, c = sample(items, 10, 1), sample(items, 10, 1), sample(items, 10, 2)
    assert a == b and a != c and len(a) == 10
    order = [items.index(x) for x in a]
    assert order == sorted(order)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found: .*nope.json"):
        load_dataset(DatasetConfig(path=str(tmp_path / "nope.json")))


def test_invalid_json_names_the_line(tmp_path):
    with pytest.raises(DatasetError, match="not valid JSON .*line 1"):
        load_dataset(DatasetConfig(path=_write(tmp_path, '{"data": [')))


def test_missing_field_names_where(tmp_path):
    bad = json.loads(json.dumps(SQUAD))
    del bad["data"][0]["paragraphs"][1]["qas"][0]["question"]
    with pytest.raises(DatasetError, match=r"data\[0\]\.paragraphs\[1\]\.qas\[0\] has no 'question'"):
        load_dataset(DatasetConfig(path=_write(tmp_path, bad)))


def test_wrong_type_and_duplicates(tmp_path):
    with pytest.raises(DatasetError, match="wrong type"):
        load_dataset(DatasetConfig(path=_write(tmp_path, {"data": {"not": "a list"}})))
    dup = json.loads(json.dumps(SQUAD))
    dup["data"][0]["paragraphs"][1]["qas"][0]["id"] = "q1"
    path = _write(tmp_path, dup)
    with pytest.raises(DatasetError, match="duplicate question ids"):
        parse_squad(Path(path))


def test_empty_dataset_and_bad_sample_size(tmp_path):
    with pytest.raises(DatasetError, match="no questions"):
        load_dataset(DatasetConfig(path=_write(tmp_path, {"data": []})))
    with pytest.raises(DatasetError, match="sample_size must be positive"):
        load_dataset(DatasetConfig(path="data/qa.json", sample_size=0))


def test_hf_source_needs_a_name():
    with pytest.raises(DatasetError, match="hf_name"):
        load_dataset(DatasetConfig(source="hf", path=""))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"data": [{"paragraphs": [{"context": "\\ud800", "qas": []}]}]}', "lone surrogate"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ],
    ids=["lone surrogate", "nested 100k deep"],
)
def test_a_hostile_dataset_file_is_one_dataset_error(tmp_path, text, says):
    path = tmp_path / "qa.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=says) as e:
        load_dataset(DatasetConfig(path=str(path)))
    assert len(str(e.value).splitlines()) == 1
