"""Plain Python types for the WIT records, and the provider's error."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "ErrorCode",
    "ProviderError",
    "Geo",
    "Stream",
    "ProviderInfo",
    "safe_key",
]


class ErrorCode(str, Enum):
    """What kind of failure a :class:`ProviderError` is (the WIT ``error-code``)."""

    #: The instance configuration is missing something or is malformed.
    INVALID_CONFIG = "invalid-config"
    #: An upstream (HTTP) request failed or was refused by the host.
    UPSTREAM = "upstream"
    #: Upstream data could not be parsed.
    PARSE = "parse"
    #: Anything else.
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


class ProviderError(Exception):
    """A failure reported to the host (the WIT ``error``), with a message for
    the operator.

    Raise it from any provider method; the exported function returns it as
    the call's error. Any other exception becomes an ``internal`` error
    whose message names the exception (and its traceback goes to stderr,
    which the host logs).
    """

    def __init__(self, code: Union[ErrorCode, str], message: str):
        self.code = ErrorCode(code)
        self.message = str(message)
        super().__init__(f"{self.code.value}: {self.message}")

    @classmethod
    def config(cls, message: str) -> "ProviderError":
        """An ``invalid-config`` error."""
        return cls(ErrorCode.INVALID_CONFIG, message)

    @classmethod
    def upstream(cls, message: str) -> "ProviderError":
        """An ``upstream`` error."""
        return cls(ErrorCode.UPSTREAM, message)

    @classmethod
    def parse(cls, message: str) -> "ProviderError":
        """A ``parse`` error."""
        return cls(ErrorCode.PARSE, message)

    @classmethod
    def internal(cls, message: str) -> "ProviderError":
        """An ``internal`` error."""
        return cls(ErrorCode.INTERNAL, message)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProviderError)
            and (self.code, self.message) == (other.code, other.message)
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"ProviderError({self.code.value!r}, {self.message!r})"


@dataclass(frozen=True)
class Geo:
    """A geographic position in WGS 84 degrees."""

    #: Latitude, -90 to 90.
    lat: float
    #: Longitude, -180 to 180.
    lon: float

    def is_valid(self) -> bool:
        """Whether the host accepts it (finite and in range)."""
        return (
            math.isfinite(self.lat)
            and math.isfinite(self.lon)
            and -90.0 <= self.lat <= 90.0
            and -180.0 <= self.lon <= 180.0
        )


GeoLike = Union[Geo, Tuple[float, float], Sequence[float], None]
TagsLike = Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None]


def _geo(value: GeoLike) -> Optional[Geo]:
    if value is None or isinstance(value, Geo):
        return value
    lat, lon = value  # a (lat, lon) pair
    return Geo(float(lat), float(lon))


def _tags(value: TagsLike) -> list:
    if value is None:
        return []
    items = value.items() if isinstance(value, Mapping) else value
    return [(str(k), str(v)) for k, v in items]


@dataclass
class Stream:
    """One stream the provider offers (the WIT ``stream-source``).

    ``Stream("gate", "rtsp://cams.example/gate", "Gate")`` is an online
    stream with no position, options or tags; the builder methods return the
    stream, so they chain::

        Stream("gate", url, "Gate").with_geo(-22.9, -43.2).with_tag("site", "north")
    """

    #: Unique within the provider: ``[A-Za-z0-9_.-]+``, no leading dot, at
    #: most 64 characters (see :func:`safe_key`). The stream id is
    #: ``<instance>-<key>``.
    key: str
    #: What FFmpeg reads (``-i``): a URL, or a lavfi graph when the input
    #: options say ``-f lavfi``.
    source: str
    #: Human-readable name (default: the key).
    name: Optional[str] = None
    #: Position, when known: a :class:`Geo` or a ``(lat, lon)`` pair.
    geo: GeoLike = None
    #: False when the upstream says the camera is off.
    online: bool = True
    #: FFmpeg options placed before ``-i`` for this stream only (empty: the
    #: provider's defaults).
    input_options: Sequence[str] = field(default_factory=list)
    #: Free-form metadata: a dict or ``(key, value)`` pairs.
    tags: TagsLike = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = str(self.key)
        self.source = str(self.source)
        self.name = self.key if self.name is None else str(self.name)
        self.geo = _geo(self.geo)
        self.online = bool(self.online)
        self.input_options = [str(o) for o in self.input_options]
        self.tags = _tags(self.tags)

    def with_geo(self, lat: float, lon: float) -> "Stream":
        """Sets the position."""
        self.geo = Geo(float(lat), float(lon))
        return self

    def with_online(self, online: bool) -> "Stream":
        """Sets whether the stream is online."""
        self.online = bool(online)
        return self

    def with_input_options(self, options: Iterable[str]) -> "Stream":
        """Sets the FFmpeg input options of this stream."""
        self.input_options = [str(o) for o in options]
        return self

    def with_tag(self, key: str, value: Any) -> "Stream":
        """Adds a tag (the value is converted to text)."""
        self.tags.append((str(key), str(value)))
        return self


@dataclass
class ProviderInfo:
    """What a provider is, and its defaults (the WIT ``provider-info``).

    ``ProviderInfo(name, version, description)`` has ``-c copy`` output
    options, no input options and no refresh.
    """

    #: Short name of the provider type, e.g. ``traffic-feed``.
    name: str
    #: Version of the module (semver).
    version: str
    #: One line on what it provides.
    description: str
    #: Default FFmpeg options before ``-i``.
    input_options: Sequence[str] = field(default_factory=list)
    #: Default FFmpeg options after ``-i``.
    output_options: Sequence[str] = field(default_factory=lambda: ["-c", "copy"])
    #: Seconds between listings; 0: only at start and on config change.
    refresh_seconds: int = 0
    #: Free-form information: a dict or ``(key, value)`` pairs.
    extra: TagsLike = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = str(self.name)
        self.version = str(self.version)
        self.description = str(self.description)
        self.input_options = [str(o) for o in self.input_options]
        self.output_options = [str(o) for o in self.output_options]
        self.refresh_seconds = int(self.refresh_seconds)
        if not 0 <= self.refresh_seconds <= 0xFFFF_FFFF:
            raise ValueError(f"refresh_seconds {self.refresh_seconds} is not a u32")
        self.extra = _tags(self.extra)


_KEY_OK = re.compile(r"[A-Za-z0-9_.-]+")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def key_problem(key: str) -> Optional[str]:
    """Why the host would refuse stream key ``key``, or None."""
    if not key or len(key) > 64 or key.startswith(".") or not _KEY_OK.fullmatch(key):
        return (
            f"invalid stream key {key[:80]!r}: expected [A-Za-z0-9_.-]+ "
            "without a leading dot, at most 64 characters"
        )
    return None


def safe_key(text: Any) -> str:
    """A valid stream key made from ``text`` (an upstream id or a name):
    runs of other characters become ``_``, leading dots are dropped, at most
    64 characters. Distinct inputs may give the same key."""
    key = _KEY_BAD.sub("_", str(text)).lstrip(".")[:64]
    return key or "_"
