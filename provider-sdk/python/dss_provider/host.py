"""What the host grants a provider: a log, allow-listed HTTP(S) requests and
a clock. In a component these call the host; natively (plain CPython, in
tests) they call the :class:`~dss_provider.testing.MockHost` installed by
the test.

Nothing else is reachable from a component: no files, sockets, environment
or threads. ``print()`` to stdout is discarded by the host; stderr is kept
(its last lines are logged as warnings), but :func:`log` is the way to log.
"""

from __future__ import annotations

# In a component only the modules imported while it was built exist (the
# host grants no file system to import more from): the codecs that
# Response.text() may need for a feed's charset are imported here.
import encodings.cp1252  # noqa: F401
import encodings.iso8859_15  # noqa: F401
import encodings.latin_1  # noqa: F401
import encodings.utf_16  # noqa: F401
import json as _json
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import ErrorCode, ProviderError

__all__ = [
    "Level",
    "log",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "Secret",
    "secret",
    "Headers",
    "Response",
    "HttpError",
    "http_get",
    "http_get_ok",
    "http_request",
    "http_request_ok",
    "now_ms",
]


class Level(str, Enum):
    """Severity of a log line."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def _level(level: Union[Level, str]) -> Level:
    if isinstance(level, str) and not isinstance(level, Level):
        level = level.lower()
        if level == "warning":
            level = "warn"
    return Level(level)


def log(level: Union[Level, str], message: Any) -> None:
    """Writes a line to the host's log, attributed to this provider
    instance. ``level`` is a :class:`Level` or its name (``"info"``)."""
    _backend().log(_level(level), str(message))


def trace(message: Any) -> None:
    """Logs at ``trace``."""
    log(Level.TRACE, message)


def debug(message: Any) -> None:
    """Logs at ``debug``."""
    log(Level.DEBUG, message)


def info(message: Any) -> None:
    """Logs at ``info``."""
    log(Level.INFO, message)


def warn(message: Any) -> None:
    """Logs at ``warn``."""
    log(Level.WARN, message)


def error(message: Any) -> None:
    """Logs at ``error``."""
    log(Level.ERROR, message)


@dataclass(frozen=True)
class Secret:
    """A header value that names one of the instance's secrets: the host puts
    the secret's value in the request; the module never sees it and the
    host never logs it. Make one with :func:`secret`."""

    #: The secret's name in the instance's ``[secrets]`` table.
    name: str

    def __repr__(self) -> str:
        return f"secret({self.name!r})"


def secret(name: str) -> Secret:
    """A header value taken from the instance's secret ``name``::

        http_request("GET", url, headers={"X-Api-Key": secret("FEED_KEY")})
    """
    if not isinstance(name, str) or not name:
        raise ValueError("secret(): the name must be a non-empty string")
    return Secret(name)


HeaderValue = Union[str, Secret]
HeadersLike = Union[Mapping[str, HeaderValue], Iterable[Tuple[str, HeaderValue]], None]


class Headers:
    """Response headers: ``(name, value)`` pairs in the order received, with
    case-insensitive lookup (``resp.headers["Content-Type"]``,
    ``.get(name)``, ``.get_all(name)``, ``name in headers``)."""

    def __init__(self, items: Iterable[Tuple[str, str]] = ()):
        self._items: List[Tuple[str, str]] = [(str(k), str(v)) for k, v in items]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name``, or ``default``."""
        name = name.lower()
        for k, v in self._items:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name: str) -> List[str]:
        """Every value of header ``name``, in order."""
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def items(self) -> List[Tuple[str, str]]:
        """The ``(name, value)`` pairs, in order."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """A response to :func:`http_get` or :func:`http_request`: the final
    response, after redirects."""

    def __init__(
        self,
        status: int,
        content_type: Optional[str] = None,
        headers: Iterable[Tuple[str, str]] = (),
        body: bytes = b"",
        *,
        method: str = "GET",
        url: str = "",
    ):
        #: The HTTP status code.
        self.status = int(status)
        #: The ``content-type`` header, if any.
        self.content_type = content_type
        #: Every header (lower-case names from the host), case-insensitive.
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        #: The body (at most the host's size cap).
        self.body = bytes(body)
        #: The request's method and URL, for messages.
        self.method = method
        self.url = url

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def text(self, encoding: Optional[str] = None) -> str:
        """The body as text: ``encoding``, else the content type's charset,
        else UTF-8; undecodable bytes become U+FFFD."""
        if encoding is None:
            encoding = _charset(self.content_type) or "utf-8"
        try:
            return self.body.decode(encoding, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON is a ``parse``
        error naming the request."""
        try:
            return _json.loads(self.text())
        except ValueError as e:
            raise ProviderError.parse(f"{self.method} {self.url}: the response is not JSON: {e}") from None

    def raise_for_status(self) -> "Response":
        """Raises an ``upstream`` error unless the status is 2xx; returns
        the response."""
        if not self.ok:
            raise ProviderError.upstream(f"{self.method} {self.url}: HTTP status {self.status}")
        return self

    def __repr__(self) -> str:
        return f"<Response {self.method} {self.url} {self.status}, {len(self.body)} bytes>"


def _charset(content_type: Optional[str]) -> Optional[str]:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.strip().lower() == "charset" and v.strip():
            return v.strip().strip('"')
    return None


class HttpError(ProviderError):
    """A request the host refused or that failed (not allowed, network
    error, timeout, too many requests...): an ``upstream`` error whose
    message names the request and the host's cause. Not raised for an HTTP
    error status: see :meth:`Response.raise_for_status`."""

    def __init__(self, method: str, url: str, cause: str):
        self.method = method
        self.url = url
        #: The host's message.
        self.cause = cause
        super().__init__(ErrorCode.UPSTREAM, f"{method} {url}: {cause}")


def _normalize_headers(headers: HeadersLike) -> List[Tuple[str, HeaderValue]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if not isinstance(name, str) or not name:
            raise TypeError(f"header name {name!r}: a non-empty string")
        if not isinstance(value, (str, Secret)):
            raise TypeError(
                f"header {name}: the value must be a str or secret(NAME), not {type(value).__name__}"
            )
        out.append((name, value))
    return out


_NO_JSON: Any = object()


def http_get(url: str) -> Response:
    """Fetches ``url`` with ``GET`` through the host: any status is
    returned; a refusal or failure raises :class:`HttpError`. Only hosts in
    the instance's ``allow_hosts`` are reachable."""
    return _backend().http("GET", url, [], None, True)


def http_get_ok(url: str) -> Response:
    """:func:`http_get` that also requires a 2xx status (else an
    ``upstream`` error)."""
    return http_get(url).raise_for_status()


def http_request(
    method: str,
    url: str,
    headers: HeadersLike = None,
    body: Union[bytes, str, None] = None,
    *,
    json: Any = _NO_JSON,
) -> Response:
    """Sends a request through the host: ``method`` is ``"GET"`` or
    ``"POST"``; ``headers`` a dict (or pairs) whose values are text or
    :func:`secret`; ``body`` bytes or text (UTF-8), or ``json=`` a value
    sent as JSON with ``Content-Type: application/json``. Any status is
    returned; a refusal or failure raises :class:`HttpError`.

    The host sets ``host``, ``content-length``, ``transfer-encoding``,
    ``connection`` and ``user-agent`` itself and refuses them here. On a
    redirect to another origin it drops secret headers.
    """
    m = str(method).upper()
    if m not in ("GET", "POST"):
        raise ValueError(f"http_request: method {method!r}: GET or POST")
    hs = _normalize_headers(headers)
    if json is not _NO_JSON:
        if body is not None:
            raise ValueError("http_request: body and json are exclusive")
        body = _json.dumps(json, separators=(",", ":"))
        if not any(n.lower() == "content-type" for n, _ in hs):
            hs.append(("content-type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None:
        body = bytes(body)
    return _backend().http(m, url, hs, body, False)


def http_request_ok(
    method: str,
    url: str,
    headers: HeadersLike = None,
    body: Union[bytes, str, None] = None,
    *,
    json: Any = _NO_JSON,
) -> Response:
    """:func:`http_request` that also requires a 2xx status (else an
    ``upstream`` error)."""
    return http_request(method, url, headers, body, json=json).raise_for_status()


def now_ms() -> int:
    """Wall-clock time: milliseconds since the Unix epoch (the host's clock;
    the mock's in tests)."""
    return _backend().now_ms()


# --- backends -------------------------------------------------------------


class _WitBackend:
    """The real host, through the bindings componentize-py generates."""

    def __init__(self) -> None:
        from wit_world.imports import host as wit  # type: ignore[import-not-found]

        self.wit = wit
        self._request_class: Any = None

    def log(self, level: Level, message: str) -> None:
        self.wit.log(self.wit.LogLevel[level.name], message)

    def http(
        self,
        method: str,
        url: str,
        headers: Sequence[Tuple[str, HeaderValue]],
        body: Optional[bytes],
        via_get: bool,
    ) -> Response:
        from componentize_py_types import Err  # type: ignore[import-not-found]

        wit = self.wit
        try:
            if via_get:
                r = wit.http_get(url)
            else:
                hs = [
                    wit.Header(
                        name=name,
                        value=wit.HeaderValue_Secret(v.name)
                        if isinstance(v, Secret)
                        else wit.HeaderValue_Text(v),
                    )
                    for name, v in headers
                ]
                if self._request_class is None:
                    self._request_class = _request_class(wit)
                r = wit.http_request(
                    self._request_class(method=wit.Method[method], url=url, headers=hs, body=body)
                )
        except Err as e:
            raise HttpError(method, url, str(e.value)) from None
        received = getattr(r, "headers", ())  # interface 0.1.0 had none
        return Response(r.status, r.content_type, received, r.body, method=method, url=url)

    def now_ms(self) -> int:
        return int(self.wit.now_ms())


def _request_class(wit: Any) -> Any:
    """The record type of ``http-request``'s parameter, whatever its WIT
    name: the annotation of the generated function, else the record with
    the request's fields."""
    ann = getattr(wit.http_request, "__annotations__", {})
    for name, t in ann.items():
        if name != "return" and isinstance(t, type):
            return t
    for value in vars(wit).values():
        fields = getattr(value, "__dataclass_fields__", None)
        if fields and list(fields) == ["method", "url", "headers", "body"]:
            return value
    raise RuntimeError("dss_provider: no http-request record in the generated bindings")


_the_backend: Any = None


def _backend() -> Any:
    global _the_backend
    if sys.platform == "wasi":
        if _the_backend is None:
            _the_backend = _WitBackend()
        return _the_backend
    from . import testing

    return testing._current()
