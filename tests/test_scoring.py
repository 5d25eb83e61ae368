"""Hand-computed cases for bench.core.scoring."""

from __future__ import annotations

import dataclasses

import pytest

from bench.core.scoring import Score, exact_match, f1, normalize_answer, score, tokens


def test_normalize_english_case_punctuation_articles_whitespace() -> None:
    assert normalize_answer("  The  Quick,   Brown FOX!  ") == "quick brown fox"
    assert normalize_answer("An apple\tand a\npear.") == "apple and pear"


def test_normalize_deletes_punctuation_inside_words_like_squad() -> None:
    assert normalize_answer("U.S.A.") == "usa"
    assert normalize_answer("$1,000") == "1000"


def test_normalize_keeps_articles_inside_words() -> None:
    assert normalize_answer("Anthem of theater") == "anthem of theater"


def test_normalize_removes_cjk_and_unicode_punctuation() -> None:
    assert normalize_answer("「台北」，『高雄』、（台中）：《新竹》〈嘉義〉；？！") == "台北高雄台中新竹嘉義"
    assert normalize_answer("Tokyo…—Osaka") == "tokyoosaka"


def test_exact_match_english_normalization() -> None:
    assert exact_match("the Eiffel Tower.", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel Towers", ["Eiffel tower"]) == 0.0


def test_exact_match_is_strict_for_full_sentences() -> None:
    # 5 tokens against 1: P = 1/5, R = 1, F1 = 2 * 0.2 / 1.2 = 1/3.
    s = score("The tower was finished in 1889.", ["1889"])
    assert s.exact_match == 0.0
    assert s.f1 == pytest.approx(1 / 3)


def test_partial_f1_known_value() -> None:
    # "in year 1889" vs "1889": P = 1/3, R = 1, F1 = 2 * (1/3) / (4/3) = 0.5.
    assert f1("in the year 1889", ["1889"]) == pytest.approx(0.5)


def test_f1_counts_token_multiset_overlap() -> None:
    # Overlap min(3,1) cat + min(1,2) dog = 2; P = 2/4, R = 2/3, F1 = (2/3) / (7/6) = 4/7.
    assert f1("cat cat cat dog", ["cat dog dog"]) == pytest.approx(4 / 7)


def test_multiple_references_take_max() -> None:
    # vs "Paris": 0; vs "eiffel": P = 1/2, R = 1, F1 = 2/3.
    assert f1("Eiffel Tower", ["Paris", "the Eiffel"]) == pytest.approx(2 / 3)
    assert exact_match("Eiffel Tower", ["Paris", "the Eiffel"]) == 0.0
    assert exact_match("Eiffel Tower", ["Paris", "eiffel tower!"]) == 1.0


def test_empty_prediction() -> None:
    assert score("", ["1889"]) == Score(exact_match=0.0, f1=0.0)
    assert score("   ", ["1889"]) == Score(exact_match=0.0, f1=0.0)


def test_both_empty_after_normalization() -> None:
    assert score("The.", ["a"]) == Score(exact_match=1.0, f1=1.0)
    assert f1("1889", ["the"]) == 0.0


def test_empty_references() -> None:
    assert exact_match("1889", []) == 0.0
    assert f1("1889", []) == 0.0
    assert f1("", []) == 0.0
    assert score("1889", []) == Score(exact_match=0.0, f1=0.0)


def test_chinese_full_width_punctuation_removed() -> None:
    assert exact_match("台北。", ["台北"]) == 1.0
    assert f1("「台北」", ["台北"]) == pytest.approx(1.0)


def test_chinese_character_level_f1() -> None:
    # 6 vs 4 characters, overlap 4: P = 4/6, R = 1, F1 = 2 * (2/3) / (5/3) = 0.8.
    s = score("國立台灣大學", ["台灣大學"])
    assert s.exact_match == 0.0
    assert s.f1 == pytest.approx(0.8)


def test_full_width_digits_and_letters_nfkc() -> None:
    assert normalize_answer("２０２４年") == "2024年"
    assert exact_match("２０２４年", ["2024年"]) == 1.0
    assert exact_match("ＡＢＣ", ["abc"]) == 1.0


def test_tokens_mixed_english_and_chinese() -> None:
    assert tokens("2024年在台北") == ["2024", "年", "在", "台", "北"]
    assert tokens("The iPhone 15於2023年發布。") == ["iphone", "15", "於", "2023", "年", "發", "布"]


def test_tokens_other_cjk_scripts() -> None:
    assert tokens("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert tokens("서울 Seoul") == ["서", "울", "seoul"]
    assert tokens("\U00020000\U00020001") == ["\U00020000", "\U00020001"]  # extension B


def test_mixed_f1_known_value() -> None:
    # 7 tokens (iphone 15 於 2023 年 發 布) vs 2 (2023 年): P = 2/7, R = 1, F1 = (4/7) / (9/7) = 4/9.
    assert f1("iPhone 15於2023年發布", ["2023年"]) == pytest.approx(4 / 9)


def test_score_is_frozen() -> None:
    s = score("1889", ["1889"])
    assert s == Score(exact_match=1.0, f1=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.f1 = 0.0  # type: ignore[misc]
