"""Fetching a URL source without letting a caller reach what the function can reach (SSRF).

HTTP(S) only; every hop's host is resolved once, every address it resolves to must be public,
and the connection goes to the address that was checked (the URL's host travels as the Host
header and TLS server name), so DNS cannot answer differently between check and connect.
Redirects are followed by hand, each hop checked the same way. Size, time and content type are
capped. Every refusal is an `ApiError` (422) whose message names the reason.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import time
import urllib.parse
from dataclasses import dataclass

import httpx

from common.platform.errors import ApiError
from common.platform.formats import (
    ACCEPTED_TYPES,
    GENERIC_MIME_TYPES,
    accepted_list,
    base_type,
    sniff_mime_type,
)

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_USER_AGENT = "ai-infra-url-source/1.0"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    url: str  # the URL the content came from (after redirects)
    content: bytes
    content_type: str


def refused(message: str) -> ApiError:
    return ApiError(422, "url_not_allowed", f"url: {message}")


def failed(message: str) -> ApiError:
    return ApiError(422, "fetch_failed", f"url: {message}")


def address_category(address: IpAddress) -> str | None:
    """Why an address must not be fetched ("loopback", ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_category(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "private"
    if not address.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as in the URL (brackets stripped for IPv6)
    port: int
    path: str  # path and query, at least "/"
    host_header: str


def parse_target(url: str) -> Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ApiError(422, "invalid_url", f"url: not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ApiError(422, "invalid_url", "url: only http and https URLs can be fetched")
    if parts.username is not None or parts.password is not None:
        raise ApiError(422, "invalid_url", "url: credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ApiError(422, "invalid_url", "url: has no host")
    default = 443 if scheme == "https" else 80
    port = port or default
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    shown = f"[{host}]" if ":" in host else host
    return Target(scheme, host, port, path, shown if port == default else f"{shown}:{port}")


def _resolve(host: str, port: int, timeout: float) -> list[IpAddress]:
    """Every address `host` resolves to (getaddrinfo has no timeout of its own: a thread)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM).result(
            timeout=timeout
        )
    except concurrent.futures.TimeoutError:
        raise failed(f"resolving {host} timed out") from None
    except (OSError, UnicodeError):
        raise failed(f"{host} does not resolve") from None
    finally:
        pool.shutdown(wait=False)
    found: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise failed(f"{host} does not resolve")
    return found


class UrlFetcher:
    """One fetch policy: limits, and whether loopback is allowed (local tests and dev only).

    With loopback allowed, a redirect may still only reach a loopback address on the host and
    port the caller named: a page that bounces the fetch into another local service is refused.
    """

    def __init__(self, *, max_bytes: int, timeout: float, allow_loopback: bool = False) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_loopback = allow_loopback

    def fetch(self, url: str) -> Fetched:
        deadline = time.monotonic() + self.timeout
        named = parse_target(url)
        current, target = url, named
        with httpx.Client(trust_env=False, follow_redirects=False, verify=True) as client:
            for hop in range(MAX_REDIRECTS + 1):
                address = self._checked_address(
                    target, named, redirected=hop > 0, deadline=deadline
                )
                response = self._get(client, target, address, deadline)
                try:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise failed(f"redirect ({response.status_code}) without a Location")
                        current = urllib.parse.urljoin(current, location)
                        target = parse_target(current)
                        continue
                    return Fetched(current, *self._body(response, deadline))
                finally:
                    response.close()
        raise failed(f"more than {MAX_REDIRECTS} redirects")

    def _checked_address(
        self, target: Target, named: Target, *, redirected: bool, deadline: float
    ) -> IpAddress:
        addresses = _resolve(target.host, target.port, max(0.1, deadline - time.monotonic()))
        where = f"redirect to {target.host}" if redirected else target.host
        for address in addresses:
            category = address_category(address)
            if category is None:
                continue
            if category == "loopback" and self.allow_loopback:
                same_origin = (target.host, target.port) == (named.host, named.port)
                if not redirected or same_origin:
                    continue
            if str(address) == target.host:
                raise refused(f"{where} is a {category} address")
            raise refused(f"{where} resolves to a {category} address")
        return addresses[0]

    def _get(
        self, client: httpx.Client, target: Target, address: IpAddress, deadline: float
    ) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise failed(f"timed out after {self.timeout:g} s")
        host = f"[{address}]" if address.version == 6 else str(address)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = client.build_request(
            "GET",
            f"{target.scheme}://{host}:{target.port}{target.path}",
            headers={
                "Host": target.host_header,
                "User-Agent": _USER_AGENT,
                "Accept": ", ".join(ACCEPTED_TYPES),
            },
            timeout=httpx.Timeout(remaining),
            extensions=extensions,
        )
        try:
            return client.send(request, stream=True)
        except httpx.TimeoutException:
            raise failed(f"timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise failed(f"cannot fetch from {target.host}: {type(error).__name__}") from None

    def _body(self, response: httpx.Response, deadline: float) -> tuple[bytes, str]:
        if response.status_code != 200:
            raise failed(f"the server answered {response.status_code}")
        declared = response.headers.get("content-type", "")
        if base_type(declared) in GENERIC_MIME_TYPES:
            # Servers often send office files and images as octet-stream: the path names them.
            declared = sniff_mime_type(response.request.url.path, None) or declared
        if base_type(declared) not in ACCEPTED_TYPES:
            shown = base_type(declared) or "no content type"
            raise ApiError(
                422,
                "unsupported_type",
                f"url: {shown} is not a supported type (supported: {accepted_list()})",
            )
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                if time.monotonic() > deadline:
                    raise failed(f"timed out after {self.timeout:g} s")
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise failed(f"timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise failed(f"the download broke off: {type(error).__name__}") from None
        if not size:
            raise failed("the server sent an empty body")
        return b"".join(chunks), declared.strip()

    def _too_large(self) -> ApiError:
        return ApiError(
            422, "file_too_large", f"url: the content exceeds the {self.max_bytes}-byte file limit"
        )
