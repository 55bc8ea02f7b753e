"""Meta refresh redirects read from the page's head give exactly Scrapy's outcome, in every encoding."""

from __future__ import annotations

import pytest
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from crawler.metarefresh import HeadMetaRefreshMiddleware

URL = "http://127.0.0.1/old/story"
REFRESH = '<meta http-equiv="refresh" content="0; url=/new/story-caf\u00e9">'
FILLER = "<p>" + "Le caf\u00e9 co\u00fbte 3 \u20ac. " * 20 + "</p>"


def pages():
    yield "utf-8 header", f"<html><head>{REFRESH}</head><body>{FILLER}</body></html>".encode(), "text/html; charset=utf-8"
    yield "meta charset", f"<html><head><meta charset='cp1252'>{REFRESH}</head></html>".encode("cp1252"), "text/html"
    yield "utf-16 BOM", f"<html><head>{REFRESH}</head><body>{FILLER}</body></html>".encode("utf-16"), "text/html"
    yield "undeclared", f"<html><head>{REFRESH}</head></html>".encode("cp1252"), "text/html"
    yield "base href", f"<html><head><base href='http://127.0.0.1/base/'>{REFRESH.replace('/new', 'new')}</head>".encode(), "text/html; charset=utf-8"
    yield "in a script (METAREFRESH_IGNORE_TAGS is empty)", f"<html><head><script>var x = '{REFRESH}';</script></head></html>".encode(), "text/html; charset=utf-8"
    yield "past 4096 characters", f"<html><head>{'<!-- é -->' * 420}{REFRESH}</head></html>".encode(), "text/html; charset=utf-8"
    yield "at 4096 characters", f"<html><head>{'<!-- é -->' * 400}{REFRESH}</head></html>".encode(), "text/html; charset=utf-8"
    yield "delay over the maximum", REFRESH.replace('"0;', '"600;').encode(), "text/html; charset=utf-8"
    yield "no refresh", f"<html><head><meta charset='utf-8'></head><body>{FILLER}</body></html>".encode(), "text/html"


def outcome(middleware_class, body: bytes, content_type: str):
    crawler = get_crawler(settings_dict={})
    middleware = middleware_class.from_crawler(crawler)
    request = Request(URL)
    response = HtmlResponse(URL, body=body, headers={"Content-Type": content_type}, request=request)
    result = middleware.process_response(request, response)
    return ("redirect", result.url, result.meta.get("redirect_reasons")) if isinstance(result, Request) else ("page",)


@pytest.mark.parametrize("name, body, content_type", list(pages()), ids=[name for name, _, _ in pages()])
def test_the_head_gives_scrapys_outcome(name, body, content_type):
    ours, scrapys = outcome(HeadMetaRefreshMiddleware, body, content_type), outcome(MetaRefreshMiddleware, body, content_type)
    assert ours == scrapys
    expected_redirect = name not in ("past 4096 characters", "delay over the maximum", "no refresh")
    assert (ours[0] == "redirect") is expected_redirect


def test_a_declared_page_is_not_decoded_whole():
    body = f"<html><head><meta charset='utf-8'>{REFRESH}</head><body>{FILLER * 50}</body></html>".encode()
    request = Request(URL)
    response = HtmlResponse(URL, body=body, headers={"Content-Type": "text/html"}, request=request)
    HeadMetaRefreshMiddleware.from_crawler(get_crawler(settings_dict={})).process_response(request, response)
    assert response._cached_ubody is None  # Scrapy's decoded copy of the page was never made
