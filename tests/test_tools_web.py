from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.tools import Tool, tool_from_function
from bot.tools.web import html_to_text, is_public_address

PAGE = """<!doctype html>
<html><head><title>  Fish &amp; Chips
  Weekly </title><style>body { color: red }</style>
<script>var secret = "do not show";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<h1>Today's   menu</h1>
<p>Cod,
   haddock   and <a href="/plaice">plaice in batter</a>.</p>
<ul><li>Chips</li><li>Mushy peas</li></ul>
<noscript>enable javascript</noscript>
<img src="x.png" alt="a plate of chips">
<table><tr><th>Item</th><td>£4.50</td></tr></table>
<template><p>template text</p></template>
</body></html>
"""


@dataclass
class Site:
    base: str
    hits: Counter[str]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    hits: Counter[str] = Counter()
    app = web.Application()
    port_holder: dict[str, int] = {}

    def counted(handler: Any) -> Any:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            hits[request.path] += 1
            return await handler(request)

        return wrapper

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    def redirect_to(target: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            raise web.HTTPFound(target.format(port=port_holder["port"]))

        return handler

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"0123456789" * 100)
        await response.write_eof()
        return response

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"answer": 42})

    async def latin1(request: web.Request) -> web.Response:
        body = "<html><body><p>Caf\u00e9 cr\u00e8me</p></body></html>".encode("latin-1")
        return web.Response(body=body, headers={"Content-Type": "text/html; charset=iso-8859-1"})

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    routes = {
        "/page": page,
        "/r1": redirect_to("/r2"),
        "/r2": redirect_to("http://127.0.0.1:{port}/r3"),
        "/r3": redirect_to("page"),
        "/loop": redirect_to("/loop"),
        "/big": big,
        "/image": image,
        "/data": data,
        "/latin1": latin1,
        "/missing": missing,
        "/to-localhost": redirect_to("http://localhost:{port}/secret"),
        "/to-v6": redirect_to("http://[::1]:{port}/secret"),
        "/to-mapped": redirect_to("http://[::ffff:127.0.0.1]:{port}/secret"),
        "/to-ftp": redirect_to("ftp://127.0.0.1/secret"),
        "/secret": page,
    }
    for path, handler in routes.items():
        app.router.add_get(path, counted(handler))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_holder["port"] = runner.addresses[0][1]
    try:
        yield Site(f"http://127.0.0.1:{port_holder['port']}", hits)
    finally:
        await runner.cleanup()


def fetcher(**options: Any) -> Tool:
    from bot.tools.web import fetch_page

    return tool_from_function(fetch_page, timeout=10, max_output_chars=100_000, options=options)


def args(url: str) -> str:
    return '{"url": "%s"}' % url  # noqa: UP031 - JSON braces make an f-string noisier


async def test_html_becomes_readable_text(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/page"))
    assert result.ok, result.content
    text = result.content
    assert text.startswith(f"Title: Fish & Chips Weekly\nURL: {site.base}/page\n\n")
    assert "# Today's menu" in text
    assert "Cod, haddock and plaice in batter." in text
    assert "- Chips\n- Mushy peas" in text
    assert "[image: a plate of chips]" in text
    assert "Item" in text and "£4.50" in text
    for hidden in ("do not show", "color: red", "About us", "enable javascript", "template text"):
        assert hidden not in text
    assert "  " not in text and "\n\n\n" not in text


async def test_redirect_chain_followed(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/r1"))
    assert result.ok, result.content
    assert f"URL: {site.base}/page" in result.content
    assert [site.hits[p] for p in ("/r1", "/r2", "/r3", "/page")] == [1, 1, 1, 1]


async def test_redirect_loop_gives_up(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/loop"))
    assert not result.ok
    assert "redirects" in result.content
    assert site.hits["/loop"] == 6


async def test_oversize_body_is_cut(site: Site) -> None:
    result = await fetcher(allow_private=True, max_bytes=1000).run(args(f"{site.base}/big"))
    assert result.ok
    body = result.content.split("\n\n", 1)[1]
    assert body.startswith("0123456789")
    assert "[Only the first 1000 bytes of the page were downloaded.]" in body
    assert body.count("0123456789") == 100


async def test_max_chars_caps_text(site: Site) -> None:
    result = await fetcher(allow_private=True, max_chars=60).run(args(f"{site.base}/big"))
    assert result.ok
    assert result.content.endswith("[Text truncated at 60 characters.]")
    assert len(result.content.split("\n\n[Text truncated")[0]) == 60


async def test_unsupported_content_type(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/image"))
    assert not result.ok
    assert "image/png" in result.content and "not a web page" in result.content


async def test_json_and_declared_charset(site: Site) -> None:
    data = await fetcher(allow_private=True).run(args(f"{site.base}/data"))
    assert data.ok and data.content.endswith('{"answer": 42}')
    latin = await fetcher(allow_private=True).run(args(f"{site.base}/latin1"))
    assert latin.ok and "Café crème" in latin.content


async def test_http_error_status(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/missing"))
    assert not result.ok and "404" in result.content


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://localhost/",
    ],
)
async def test_private_addresses_refused(url: str) -> None:
    result = await fetcher().run(args(url))
    assert not result.ok
    assert "refused to fetch" in result.content


async def test_loopback_refused_before_connecting(site: Site) -> None:
    result = await fetcher().run(args(f"{site.base}/secret"))
    assert not result.ok and "refused" in result.content
    assert site.hits["/secret"] == 0


@pytest.mark.parametrize("path", ["/to-localhost", "/to-v6", "/to-mapped"])
async def test_redirect_to_loopback_refused(site: Site, path: str) -> None:
    # 127.0.0.1 itself is trusted by name, so the first hop works; the redirect target must be re-checked.
    result = await fetcher(allow_hosts=["127.0.0.1"]).run(args(f"{site.base}{path}"))
    assert not result.ok
    assert "refused to fetch" in result.content
    assert site.hits[path] == 1
    assert site.hits["/secret"] == 0


@pytest.mark.parametrize(
    "url", ["ftp://example.com/file", "file:///etc/passwd", "javascript:alert(1)", "/relative"]
)
async def test_only_http_and_https(url: str) -> None:
    result = await fetcher(allow_private=True).run(args(url))
    assert not result.ok
    assert "http" in result.content


async def test_redirect_to_other_scheme_refused(site: Site) -> None:
    result = await fetcher(allow_private=True).run(args(f"{site.base}/to-ftp"))
    assert not result.ok and "only http and https" in result.content


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a00:1", False),
        ("2002:7f00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_html_to_text_handles_pre_and_missing_title() -> None:
    title, text = html_to_text(
        "<body><p>a</p><pre>line one\nline two</pre><svg><title>icon</title></svg></body>"
    )
    assert title == ""
    assert text == "a\n\nline one\nline two"
