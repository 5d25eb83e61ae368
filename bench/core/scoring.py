"""Answer scoring: SQuAD-style exact match and token F1, extended for Chinese (DRCD/CMRC)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass

# string.punctuation also covers ASCII symbols such as $ + < = > ^ ` | ~ that are not category P,
# which SQuAD v1.1 strips too.
_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Scripts written without spaces between words: each character is scored as one token.
_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3005-\u3007"  # 々 〆 〇
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, I, compatibility supplement
    "\U00030000-\U000323af"  # CJK extensions G-H
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    # NFKC first so full-width letters, digits and punctuation fold to their ASCII forms.
    text = unicodedata.normalize("NFKC", text).lower()
    # Deleted rather than replaced by a space, as SQuAD does ("U.S." -> "us").
    text = "".join(ch for ch in text if not _is_punct(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalize_answer(text))


def exact_match(prediction: str, references: list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in references))


def _f1_single(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, references: list[str]) -> float:
    pred_tokens = tokens(prediction)
    return max((_f1_single(pred_tokens, tokens(ref)) for ref in references), default=0.0)


@dataclass(frozen=True)
class Score:
    exact_match: float
    f1: float


def score(prediction: str, references: list[str]) -> Score:
    return Score(exact_match=exact_match(prediction, references), f1=f1(prediction, references))
