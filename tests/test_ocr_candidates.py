"""The OCR candidates tool (issue 15): its error-cause classifier on hand-made pages, and one
small real run."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import skip_or_fail

from pipeline.demo import ocr_candidates, ocr_wordlist
from pipeline.demo.ocr_errors import classify_errors
from pipeline.demo.ocr_wordlist import correct_word, load_lexicon, tone_placements


def causes_of(truth: str, read: str) -> dict[str, int]:
    counts, _ = classify_errors(truth, read)
    return {cause: n for cause, n in counts.causes.items() if n}


def test_lost_line():
    counts, causes = classify_errors("Điều 1. Cấp giấy phép\nxây dựng cho ông A\nĐiều 2. Hiệu lực",
                                     "Điều 1. Cấp giấy phép\nĐiều 2. Hiệu lực")
    assert {c: n for c, n in counts.causes.items() if n} == {"lost_line": 5}
    assert counts.lost_lines == 1 and counts.truth_words == 14 and counts.extra == 0
    assert causes[5:10] == ["lost_line"] * 5 and causes.count(None) == 9


def test_garbled_run():
    assert causes_of("một hai ba bốn năm sáu bảy", "một hai b@ x~n n#m sáu bảy") == {
        "garbled_run": 3}
    # fewer than three wrong words in a row are single-word errors
    assert causes_of("một hai ba bốn năm sáu bảy", "một hai b@ x~n năm sáu bảy") == {"other": 2}


def test_tone_mark():
    assert causes_of("Ủy ban nhân dân huyện Đông Anh", "Ủy ban nhân dấn huyên Đông Anh") == {
        "tone_mark": 2}


def test_d_stroke():
    assert causes_of("quyền sử dụng đất đai", "quyền sử dụng dất đai") == {"d_stroke": 1}


def test_vowel_mark():
    assert causes_of("người dân", "ngưòi dân") == {"vowel_mark": 1}


def test_punctuation():
    # a speck read as a colon; a lost full stop; a tone and a stray quote: the tone counts
    assert causes_of("Điều 1. Cấp cho ông Dũng", "Điều: 1 Cấp cho ông 'Dùng") == {
        "punctuation": 2, "tone_mark": 1}


def test_letter_case_is_no_lost_line():
    counts, _ = classify_errors("trong thời hạn mười ngày làm\nviệc.\n- Chấp hành",
                                "trong thời hạn mười ngày làm\nVIỆC.\n- Chấp hành")
    assert {c: n for c, n in counts.causes.items() if n} == {"case": 1} and counts.lost_lines == 0


def test_split_and_merge():
    counts, causes = classify_errors("thủ tục hành chính và nhà nước ta",
                                     "thủ tục hànhchính và nhà nư ớc ta")
    assert {c: n for c, n in counts.causes.items() if n} == {"split_merge": 3}
    assert causes == [None, None, "split_merge", "split_merge", None, None, "split_merge", None]


def test_reading_order():
    counts, causes = classify_errors(
        "Số: 12/QĐ-UBND\nĐông Anh, ngày 5 tháng 3 năm 2020\nQUYẾT ĐỊNH",
        "Đông Anh, ngày 5 tháng 3 năm 2020\nSố: 12/QĐ-UBND\nQUYẾT ĐỊNH")
    assert counts.moved_lines == 1 and counts.extra == 0 and counts.lost_lines == 0
    assert sum(counts.causes.values()) == counts.causes["reading_order"] > 0


def test_extra_words_and_a_perfect_page():
    counts, causes = classify_errors("một hai\nba", "một hai\nba")
    assert counts.wrong == 0 and counts.extra == 0 and causes == [None, None, None]
    counts, _ = classify_errors("một hai", "một ~~ hai |")
    assert counts.wrong == 0 and counts.extra == 2


def test_post_correction_on_a_tiny_word_list(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("hành chính\nhòa bình\nthủ tục\nhành\n", encoding="utf-8")
    lex = load_lexicon(words)
    assert tone_placements("hòa") == {"hòa", "hoà"} and "hoà" in lex.syllables
    assert correct_word(lex, "chínb,", "hành", None) == "chính,"  # no syllable: corrected
    # "hoa" is no syllable of this list; "hòa" makes a word with the next one
    assert correct_word(lex, "Hoa", None, "bình") == "Hòa"
    assert correct_word(lex, "hành", None, None) == "hành"  # a syllable: left alone
    assert correct_word(lex, "xyzzy", None, None) == "xyzzy"  # nothing near: left alone
    assert correct_word(lex, "12/QĐ", None, None) == "12/QĐ"  # not letters: left alone
    with pytest.raises(ocr_wordlist.MissingRequirement, match="word list"):
        load_lexicon(tmp_path / "missing.txt")


@pytest.mark.slow
def test_cli_on_two_pages(tmp_path):
    if not shutil.which("tesseract"):
        skip_or_fail("tesseract is not installed")
    out = tmp_path / "cands"
    assert ocr_candidates.main(["--pages", "2", "--only", "chosen,psm3", "--out", str(out)]) == 0
    report = json.loads((out / "candidates.json").read_text(encoding="utf-8"))
    rows = {r["name"]: r for r in report["candidates"]}
    assert set(rows) == {"chosen", "psm3"}
    for row in rows.values():
        assert 0 <= row["cer"]["all"] < 0.2 and row["cer"]["seal"] is not None
        assert row["cpu_seconds_per_page"] > 0
        assert row["errors"]["all"]["truth_words"] > 100
    assert "| chosen |" in (out / "candidates.md").read_text(encoding="utf-8")
