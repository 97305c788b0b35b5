"""Native tests of provider logic, with plain CPython and no Wasm: a
:class:`MockHost` answers the host functions (HTTP responses by method and
URL, a fixed clock, the instance's secret names) and records the calls; the
``describe``/``init``/``list_streams``/``transform_metadata`` functions
call a provider class exactly as the component's exports do (configuration
as JSON, errors as :class:`~dss_provider.ProviderError`) and check the
streams as the host would::

    from dss_provider import testing
    from dss_provider.testing import MockHost

    mock = MockHost().respond("https://feed.example/cams", json=[{"id": "gate"}])
    with mock:
        streams = testing.list_streams(MyCameras, {"url": "https://feed.example/cams"})
    assert [s.key for s in streams] == ["gate"]
    assert mock.requests[0].url == "https://feed.example/cams"
"""

from __future__ import annotations

import json as _json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _glue
from ._types import Stream, key_problem
from .host import HeaderValue, HttpError, Level, Response, Secret

__all__ = [
    "MockHost",
    "Request",
    "describe",
    "init",
    "list_streams",
    "transform_metadata",
    "check_streams",
]

#: Headers the host sets itself and refuses from a module.
HOST_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "user-agent"})

_NO_JSON: Any = object()


@dataclass
class Request:
    """A request a provider made, as the mock recorded it."""

    #: ``"GET"`` or ``"POST"``.
    method: str
    #: The URL.
    url: str
    #: The headers as sent: ``(name, value)`` where a value is text or a
    #: :class:`~dss_provider.host.Secret` (the secret's name, never a value).
    headers: List[Tuple[str, HeaderValue]] = field(default_factory=list)
    #: The body, if any.
    body: Optional[bytes] = None
    #: Whether it came through ``http_get`` (else ``http_request``).
    via_get: bool = False

    def header(self, name: str) -> Optional[HeaderValue]:
        """The value of header ``name`` (case-insensitive): text, a
        ``Secret``, or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def secret_headers(self) -> Dict[str, str]:
        """``{lower-case header name: secret name}`` of the headers sent by
        secret."""
        return {k.lower(): v.name for k, v in self.headers if isinstance(v, Secret)}

    @property
    def text_headers(self) -> Dict[str, str]:
        """``{lower-case header name: value}`` of the headers sent as text."""
        return {k.lower(): v for k, v in self.headers if isinstance(v, str)}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body or b"null")


Responder = Callable[[Request], Union[Response, str]]


class MockHost:
    """The host as seen by a provider running natively.

    Install it with ``with mock:`` (or ``mock.run(fn)``); a provider's
    ``host`` calls in that block go to it. Without one installed they go
    to a default mock of the current thread (no responses, clock at 0).
    """

    def __init__(self, now_ms: int = 0, secrets: Optional[Iterable[str]] = None):
        #: What ``now_ms`` returns.
        self.now_ms_value = int(now_ms)
        #: The secret names the instance has (None: any name is accepted);
        #: a request naming another fails, as on the host.
        self.secrets = None if secrets is None else set(secrets)
        self._responses: Dict[Tuple[str, str], Union[Response, str, Responder]] = {}
        #: ``(Level, message)`` lines the provider logged.
        self.logs: List[Tuple[Level, str]] = []
        #: Requests the provider made, in order (refused ones included).
        self.requests: List[Request] = []

    # --- set-up -----------------------------------------------------------

    def respond(
        self,
        url: str,
        status: int = 200,
        body: Union[bytes, str] = b"",
        *,
        method: str = "GET",
        content_type: Optional[str] = None,
        headers: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None,
        json: Any = _NO_JSON,
    ) -> "MockHost":
        """Answers ``method url`` with ``status`` and ``body`` (bytes or
        text), or with ``json=`` a value as an ``application/json`` body.
        Returns the mock, to chain."""
        if json is not _NO_JSON:
            body = _json.dumps(json)
            if content_type is None:
                content_type = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
        hs = [(k.lower(), v) for k, v in items]
        if content_type is not None and not any(k == "content-type" for k, _ in hs):
            hs.insert(0, ("content-type", content_type))
        if content_type is None:
            content_type = next((v for k, v in hs if k == "content-type"), None)
        m = method.upper()
        self._responses[(m, url)] = Response(status, content_type, hs, body, method=m, url=url)
        return self

    def respond_with(self, url: str, responder: Responder, *, method: str = "GET") -> "MockHost":
        """Answers ``method url`` by calling ``responder(request)``, which
        returns a :class:`~dss_provider.host.Response` or a failure message
        (str)."""
        self._responses[(method.upper(), url)] = responder
        return self

    def fail(self, url: str, message: str, *, method: str = "GET") -> "MockHost":
        """Makes ``method url`` fail with ``message``, as the host does for a
        host not allowed, a network error or a timeout."""
        self._responses[(method.upper(), url)] = str(message)
        return self

    # --- installing -------------------------------------------------------

    def __enter__(self) -> "MockHost":
        _stack().append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        stack = _stack()
        if stack and stack[-1] is self:
            stack.pop()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Calls ``fn(*args, **kwargs)`` with this host installed and returns
        its result."""
        with self:
            return fn(*args, **kwargs)

    # --- inspection -------------------------------------------------------

    def logged(self, level: Union[Level, str, None] = None) -> List[str]:
        """The messages logged (at ``level`` only, if given)."""
        if level is None:
            return [m for _, m in self.logs]
        level = Level(level)
        return [m for lv, m in self.logs if lv == level]

    # --- the host functions (called by dss_provider.host) -----------------

    def log(self, level: Level, message: str) -> None:
        self.logs.append((level, message))

    def now_ms(self) -> int:
        return self.now_ms_value

    def http(
        self,
        method: str,
        url: str,
        headers: Sequence[Tuple[str, HeaderValue]],
        body: Optional[bytes],
        via_get: bool,
    ) -> Response:
        req = Request(method, url, list(headers), body, via_get)
        self.requests.append(req)
        for name, value in req.headers:
            if name.lower() in HOST_HEADERS:
                raise HttpError(method, url, f"header {name!r} is set by the host")
            if isinstance(value, Secret) and self.secrets is not None and value.name not in self.secrets:
                raise HttpError(method, url, f"unknown secret {value.name!r}")
        answer = self._responses.get((method, url))
        if answer is None:
            raise HttpError(method, url, "no mock response")
        if callable(answer):
            answer = answer(req)
        if isinstance(answer, str):
            raise HttpError(method, url, answer)
        return Response(
            answer.status,
            answer.content_type,
            answer.headers.items(),
            answer.body,
            method=method,
            url=url,
        )


_local = threading.local()


def _stack() -> List[MockHost]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _current() -> MockHost:
    stack = _stack()
    if stack:
        return stack[-1]
    default = getattr(_local, "default", None)
    if default is None:
        default = _local.default = MockHost()
    return default


# --- calling a provider as the host does -----------------------------------


def describe(provider: type) -> Any:
    """``describe`` as exported: returns the :class:`~dss_provider.ProviderInfo`."""
    return _glue.call_describe(provider)


def init(provider: type, config: Union[Mapping[str, Any], str, None] = None) -> Any:
    """``init`` as exported, with ``config`` a dict or JSON text: returns
    the ProviderInfo or raises :class:`~dss_provider.ProviderError`."""
    return _glue.call_init(provider, _config_text(config))


def list_streams(
    provider: type,
    config: Union[Mapping[str, Any], str, None] = None,
    *,
    check: bool = True,
) -> List[Stream]:
    """``list-streams`` as exported, with ``config`` a dict or JSON text:
    returns the streams or raises :class:`~dss_provider.ProviderError`.
    With ``check`` (the default) a stream the host would skip (bad or
    duplicate key, empty source, position out of range) fails the test
    with an ``AssertionError`` naming it."""
    streams = _glue.call_list_streams(provider, _config_text(config))
    if check:
        problems = check_streams(streams)
        if problems:
            raise AssertionError("the host would skip streams: " + "; ".join(problems))
    return streams


def transform_metadata(
    provider: type,
    config: Union[Mapping[str, Any], str, None],
    key: str,
    metadata: Any,
) -> Any:
    """``transform-metadata`` as exported, with ``metadata`` a JSON-able
    value: returns the transformed value (parsed back from the JSON the
    host would receive) or raises :class:`~dss_provider.ProviderError`."""
    out = _glue.call_transform_metadata(provider, _config_text(config), key, _json.dumps(metadata))
    return _json.loads(out)


def check_streams(streams: Sequence[Stream], max_string_len: int = 4096) -> List[str]:
    """What the host would refuse in a listing (it skips those streams with
    a warning): one message per problem, empty when all is well."""
    problems = []
    seen = set()
    for s in streams:
        p = key_problem(s.key)
        if p:
            problems.append(p)
            continue
        if s.key in seen:
            problems.append(f"duplicate key {s.key!r}")
        seen.add(s.key)
        if not s.source:
            problems.append(f"stream {s.key!r}: empty source")
        for what in ("source", "name"):
            n = len(getattr(s, what).encode("utf-8"))
            if n > max_string_len:
                problems.append(f"stream {s.key!r}: {what} is {n} bytes, limit {max_string_len}")
        if s.geo is not None and not s.geo.is_valid():
            problems.append(f"stream {s.key!r}: position out of range ({s.geo.lat}, {s.geo.lon})")
        for k, v in s.tags:
            if len(k.encode("utf-8")) > 64 or len(v.encode("utf-8")) > max_string_len:
                problems.append(f"stream {s.key!r}: tag too long")
    return problems


def _config_text(config: Union[Mapping[str, Any], str, None]) -> str:
    if config is None:
        return "{}"
    if isinstance(config, str):
        return config
    return _json.dumps(config)

