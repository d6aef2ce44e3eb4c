"""Reading text items: strings, bytes and real .txt files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal import DataError
from anymodal.testing import check_data_error
from anymodal_text.io import is_text_path, load_text


def test_plain_string_is_normalised_and_stripped() -> None:
    # "e" + combining acute (two code points) becomes the single NFC code point.
    assert load_text("  Cafe\u0301 au lait \n") == "Caf\u00e9 au lait"


def test_bytes_are_utf8_text() -> None:
    assert load_text("日本語のテキスト".encode()) == "日本語のテキスト"
    assert load_text(bytearray(b"hello")) == "hello"


def test_txt_file_from_path_and_from_str(tmp_path: Path) -> None:
    path = tmp_path / "caption.txt"
    path.write_text("a red circle\n", encoding="utf-8")
    assert load_text(path) == "a red circle"
    assert load_text(str(path)) == "a red circle"


def test_path_object_with_any_suffix_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "caption.md"
    path.write_text("# title", encoding="utf-8")
    assert load_text(path) == "# title"
    # The same name as a str (no .txt suffix) is text, not a path.
    assert load_text(str(path)) == str(path)


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfwindows text")
    assert load_text(path) == "windows text"


def test_string_path_rules(tmp_path: Path) -> None:
    existing = tmp_path / "with space.txt"
    existing.write_text("x", encoding="utf-8")
    assert is_text_path(str(existing))            # exists: a path, spaces or not
    assert is_text_path("captions/0001.txt")      # no whitespace: a path even if missing
    assert not is_text_path("a note saved as notes.txt")   # a sentence stays text
    assert not is_text_path("line one\nline2.txt")
    assert not is_text_path("just some words")
    assert load_text("a note saved as notes.txt") == "a note saved as notes.txt"


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9".encode("latin-1"))
    check_data_error(lambda: load_text(path), path, "not valid UTF-8", "0xe9", "offset 3")


def test_non_utf8_bytes() -> None:
    with pytest.raises(DataError, match=r"text bytes\[2\]: is not valid UTF-8"):
        load_text(b"\xff\xfe")


def test_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    for source in (missing, str(missing), "captions/missing_0001.txt"):
        check_data_error(lambda source=source: load_text(source), source, "file not found")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        load_text(tmp_path)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000"])
def test_empty_or_whitespace_string(text: str) -> None:
    check_data_error(lambda: load_text(text), repr(text), "empty or only whitespace")


def test_whitespace_only_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n ", encoding="utf-8")
    check_data_error(lambda: load_text(path), path, "empty or only whitespace")


def test_wrong_type() -> None:
    with pytest.raises(DataError, match="text item of type int: expected a str"):
        load_text(42)
