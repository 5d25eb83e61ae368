"""Reading-comprehension QA sets: SQuAD-format JSON files (SQuAD, DRCD, the built-in set) and hub datasets."""

from __future__ import annotations

import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.config import DatasetConfig
from bench.core.errors import DatasetError
from bench.core.paths import packaged

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    context: str
    answers: list[str]
    lang: str

    def user_prompt(self) -> str:
        if self.lang == "zh":
            return f"文章：{self.context}\n\n問題：{self.question}"
        return f"Passage: {self.context}\n\nQuestion: {self.question}"


def load_dataset(cfg: DatasetConfig) -> list[QAItem]:
    if cfg.source == "squad":
        items = parse_squad(packaged(cfg.path))
    elif cfg.source == "hf":
        items = _load_hf(cfg)
    else:
        raise DatasetError(f"dataset.source={cfg.source!r} is not one of: squad, hf")
    if not items:
        raise DatasetError(f"dataset {cfg.name!r} has no questions")
    return sample(items, cfg.sample_size, cfg.seed)


def sample(items: list[QAItem], size: int | None, seed: int) -> list[QAItem]:
    """A seeded sample, kept in file order so two variants see the same sequence."""
    if size is None or size >= len(items):
        return items
    if size <= 0:
        raise DatasetError(f"dataset.sample_size must be positive, got {size}")
    keep = set(random.Random(seed).sample(range(len(items)), size))
    return [item for i, item in enumerate(items) if i in keep]


def parse_squad(path: Path) -> list[QAItem]:
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path} (set dataset.path=FILE)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason})") from e
    except RecursionError:
        raise DatasetError(
            f"{path}: nested deeper than a SQuAD-format file is ({sys.getrecursionlimit()} levels)"
        ) from None
    try:  # a lone UTF-16 surrogate (\ud800) parses, then fails every prompt sent and every line written
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise DatasetError(
            f"{path}: text that is not valid Unicode (a lone surrogate at character {e.start})"
        ) from None
    articles = _field(doc, "data", list, path.name)
    items = []
    for a, article in enumerate(articles):
        paragraphs = _field(article, "paragraphs", list, f"data[{a}]")
        for p, para in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(para, "context", str, where)
            for q, qa in enumerate(_field(para, "qas", list, where)):
                items.append(_qa_item(qa, context, f"{where}.qas[{q}]"))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DatasetError(f"{path}: duplicate question ids {dupes}")
    return items


def _qa_item(qa: Any, context: str, where: str) -> QAItem:
    question = _field(qa, "question", str, where)
    answers = [_field(ans, "text", str, f"{where}.answers") for ans in _field(qa, "answers", list, where)]
    return QAItem(
        id=str(_field(qa, "id", (str, int), where)),
        question=question,
        context=context,
        answers=answers,
        lang="zh" if _CJK.search(question + context) else "en",
    )


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DatasetError(f"malformed SQuAD-format dataset: {where} has no '{key}'")
    if not isinstance(obj[key], kind):
        raise DatasetError(f"malformed SQuAD-format dataset: {where}.{key} has the wrong type")
    return obj[key]


def _load_hf(cfg: DatasetConfig) -> list[QAItem]:
    if not cfg.hf_name:
        raise DatasetError("dataset.source=hf needs dataset.hf_name (e.g. rajpurkar/squad)")
    import datasets  # heavy; only hub users pay for it

    try:
        ds = datasets.load_dataset(cfg.hf_name, cfg.hf_config, split=cfg.hf_split)
    except Exception as e:  # hub, network and schema errors all end here
        raise DatasetError(f"could not load {cfg.hf_name} split {cfg.hf_split}: {e}") from e
    missing = {"id", "question", "context", "answers"} - set(ds.column_names)
    if missing:
        raise DatasetError(f"{cfg.hf_name} is not SQuAD-shaped: missing columns {sorted(missing)}")
    return [
        QAItem(
            id=str(row["id"]),
            question=row["question"],
            context=row["context"],
            answers=list(row["answers"]["text"]),
            lang="zh" if _CJK.search(row["question"] + row["context"]) else "en",
        )
        for row in ds
    ]
