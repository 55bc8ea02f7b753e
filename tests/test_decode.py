"""The extraction worker decodes a page from its bytes and Content-Type exactly as Scrapy's ``response.text`` does
(its one deliberate difference: an undeclared Western page is windows-1252, not the detector's tie pick)."""

from __future__ import annotations

import gzip
import json

import pytest
from scrapy.http import HtmlResponse

from newssite import CORPUS_DIR
from pipelines.decode import page_text

CURLY = "<p>“Le café coûte 3 €,” she said — it’s the price of the harbour’s pride.</p>"


def scrapy_text(body: bytes, content_type: str | None) -> str:
    headers = {"Content-Type": content_type} if content_type else {}
    return HtmlResponse("http://127.0.0.1/page", body=body, headers=headers).text


def corpus_pages() -> list[tuple[str, bytes]]:
    pages = []
    for dataset in ("fundus", "mozilla-readability"):
        truth = json.loads((CORPUS_DIR / dataset / "ground_truth.json").read_text(encoding="utf-8"))
        pages += [(page_id, gzip.decompress((CORPUS_DIR / dataset / record["file"]).read_bytes()))
                  for page_id, record in truth.items()]
    return pages


@pytest.mark.needs_corpus
def test_every_corpus_page_is_decoded_as_scrapy_decodes_it():
    pages = corpus_pages()
    assert len(pages) == 351
    for content_type in ("text/html", "text/html; charset=utf-8", "text/html; charset=iso-8859-1", None):
        differ = [page_id for page_id, body in pages if page_text(body, content_type) != scrapy_text(body, content_type)]
        assert differ == [], content_type


@pytest.mark.parametrize("body, content_type", [
    ("\ufeff<html><body>" + CURLY, "text/html"),  # a BOM wins over everything
    ("<html><head><meta charset='windows-1252'></head><body>" + CURLY, "text/html; charset=utf-8"),  # the header wins
    ("<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'></head><body>" + CURLY, None),
    ("<html><body>" + CURLY, "text/html"),  # undeclared UTF-8: detected
    ("<html><body><p>plain ASCII</p>", "text/html"),
])
def test_declared_and_detected_encodings_follow_scrapy(body, content_type):
    encoded = body.encode("utf-8")
    assert page_text(encoded, content_type) == scrapy_text(encoded, content_type)
    assert page_text(encoded, content_type).lstrip("\ufeff").endswith(body.lstrip("\ufeff").split("<body>")[1])


def test_a_utf16_page_with_its_bom():
    body = ("<html><body>" + CURLY).encode("utf-16")
    assert page_text(body, "text/html") == scrapy_text(body, "text/html") == "<html><body>" + CURLY


def test_an_undeclared_western_page_is_windows_1252_where_the_detector_ties():
    body = ("<html><body>" + CURLY * 3 + "<p>Ça coûte très cher, à l'évidence.</p>").encode("cp1252")
    assert page_text(body, "text/html") == body.decode("cp1252")
    assert scrapy_text(body, "text/html") != body.decode("cp1252")  # Scrapy's detector picks cp1250 here


def test_undecodable_bytes_become_replacement_characters():
    body = b"<html><head><meta charset='utf-8'></head><body><p>caf\xe9 \xff</p>"
    assert page_text(body, None) == "<html><head><meta charset='utf-8'></head><body><p>caf\ufffd \ufffd</p>"
