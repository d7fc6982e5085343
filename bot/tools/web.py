"""A tool that reads one public web page as plain text.

The model chooses the URL, so the fetch must not become a way into the bot's own network: every hop's host is
resolved, every address is checked, and the connection goes to the checked address (TLS still verifies the
original host name through SNI), which closes the gap a DNS rebinding attack would use.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx

from bot.tools.schema import ToolContext, ToolError

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_ALLOWED_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "text/plain", "application/json", "application/xml", "text/xml"}
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_USER_AGENT = "kimibot/0.1 (+page reader for a chat assistant)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class _Options:
    max_chars: int
    max_bytes: int
    allow_private: bool
    allow_hosts: frozenset[str]
    timeout: float

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> _Options:
        return cls(
            max_chars=int(options.get("max_chars", 20_000)),
            max_bytes=int(options.get("max_bytes", 2_000_000)),
            allow_private=bool(options.get("allow_private", False)),
            # Host names (exact, case-insensitive) an operator trusts despite private addresses, e.g. an
            # intranet wiki; redirects away from them are checked as usual.
            allow_hosts=frozenset(h.lower() for h in options.get("allow_hosts", ())),
            timeout=float(options.get("timeout", 10.0)),
        )


async def fetch_page(url: str, ctx: ToolContext) -> str:
    """Fetch a public web page and return its readable text (title and body text, without scripts, styles
    or navigation). Use it to read a specific http or https URL.

    Args:
        url: The absolute http:// or https:// address of the page to read.
    """
    opts = _Options.from_mapping(ctx.options)
    async with httpx.AsyncClient(
        trust_env=False,  # an environment proxy would make the address checks meaningless
        follow_redirects=False,
        timeout=httpx.Timeout(opts.timeout),
        # Connections are pooled by the pinned IP, so reuse could carry a hop over a TLS session verified
        # for a different host name; one connection per hop keeps certificate checks per host.
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": _USER_AGENT, "Accept": "text/html,text/plain;q=0.9,*/*;q=0.5"},
    ) as client:
        current = _parse_url(url.strip())
        for _hop in range(MAX_REDIRECTS + 1):
            response = await _open(client, current, opts)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_CODES and location:
                    current = _parse_url(str(current.join(location)))
                    continue
                return await _read_page(response, current, opts)
            finally:
                await response.aclose()
    raise ToolError(f"gave up after {MAX_REDIRECTS} redirects starting at {url}")


def _parse_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise ToolError(f"{raw!r} is not a valid URL ({exc})") from exc
    if url.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {raw[:200]!r}")
    if not url.host:
        raise ToolError(f"{raw[:200]!r} has no host name")
    return url.copy_with(fragment=None)


async def _open(client: httpx.AsyncClient, url: httpx.URL, opts: _Options) -> httpx.Response:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        async with asyncio.timeout(opts.timeout):
            addresses = await _resolve(host, port)
    except TimeoutError as exc:
        raise ToolError(f"looking up host {host!r} timed out") from exc
    if not opts.allow_private and host.lower() not in opts.allow_hosts:
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            where = host if _is_ip_literal(host) else f"{host} (resolves to {blocked[0]})"
            raise ToolError(
                f"refused to fetch {url}: {where} is a private, local or reserved address; "
                "only public web pages can be read"
            )
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" and not _is_ip_literal(host) else {}
    last_error: Exception | None = None
    for address in addresses:
        request = client.build_request(
            "GET", url.copy_with(host=str(address)), headers=headers, extensions=extensions
        )
        try:
            return await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            last_error = exc
        except httpx.HTTPError as exc:
            raise ToolError(f"request to {url} failed: {type(exc).__name__}: {exc}") from exc
    raise ToolError(f"could not connect to {host}: {last_error}")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolError(f"could not resolve host {host!r}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ToolError(f"could not resolve host {host!r}")
    return addresses


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses, looking through IPv6 forms that embed IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not is_public_address(address.sixtofour):
            return False
        if address.teredo is not None or address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def _read_page(response: httpx.Response, url: httpx.URL, opts: _Options) -> str:
    if response.status_code >= 400:
        raise ToolError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}".rstrip())
    media_type = response.headers.get("content-type", "text/plain").split(";", 1)[0].strip().lower()
    if media_type not in _ALLOWED_TYPES:
        raise ToolError(
            f"{url} is {media_type or 'of unknown type'}, not a web page; only HTML, plain text, JSON "
            "and XML can be read"
        )
    body, cut = await _read_capped(response, opts.max_bytes)
    text = _decode(body, response.charset_encoding, media_type)
    if media_type in _HTML_TYPES:
        title, text = html_to_text(text)
    else:
        title = ""
    parts = [f"URL: {url}"]
    if title:
        parts.insert(0, f"Title: {title}")
    output = "\n".join(parts) + "\n\n" + text.strip()
    if cut:
        output += f"\n\n[Only the first {opts.max_bytes} bytes of the page were downloaded.]"
    if len(output) > opts.max_chars:
        output = output[: opts.max_chars] + f"\n\n[Text truncated at {opts.max_chars} characters.]"
    log.debug("page fetched", extra={"bytes": len(body), "chars": len(output), "media_type": media_type})
    return output


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """Read at most max_bytes of the (decompressed) body; stopping early also defuses compression bombs."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = max_bytes - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _decode(body: bytes, declared: str | None, media_type: str) -> str:
    candidates = [declared]
    if media_type in _HTML_TYPES and (match := _META_CHARSET_RE.search(body[:4096])):
        candidates.append(match.group(1).decode("ascii", "ignore"))
    for name in candidates:
        if not name:
            continue
        try:
            codec = codecs.lookup(name)
        except LookupError:
            continue
        return body.decode(codec.name, errors="replace")
    return body.decode("utf-8", errors="replace")


_SKIP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "nav", "iframe", "object", "canvas", "select"}
)
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "ul", "ol", "dl", "dt", "dd",
        "table", "tr", "blockquote", "pre", "figure", "figcaption", "form", "fieldset", "address", "hr",
    }
)  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_WHITESPACE_RE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._title_done = False
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif self._skip_depth:
            return
        elif tag == "title":
            self._in_title = not self._title_done
        elif tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "br":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self.parts.append(f" [image: {' '.join(alt.split())}] ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        if tag == "pre":
            self._pre_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
            self._title_done = self._title_done or bool(self.title_parts)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
            self.parts.append("\n\n")
        elif tag in _HEADINGS or tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "tr":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title_parts.append(data)
        else:
            self.parts.append(data if self._pre_depth else _WHITESPACE_RE.sub(" ", data))


def html_to_text(html: str) -> tuple[str, str]:
    """Return (title, readable text) for an HTML document."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError) as exc:  # html.parser gives up on some malformed markup
        log.debug("html parse stopped early", extra={"error": repr(exc)})
    title = " ".join("".join(parser.title_parts).split())
    return title, _collapse("".join(parser.parts))


def _collapse(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
