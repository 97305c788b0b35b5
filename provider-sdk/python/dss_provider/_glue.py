"""Between a :class:`~dss_provider.Provider` subclass and the component's
exports: JSON in, checked Python types out, errors as ProviderError
(``call_*``, used natively by :mod:`dss_provider.testing` too), and the
conversion to and from the types componentize-py generates (``export``)."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, List, TypeVar

from ._types import ProviderError, ProviderInfo, Stream
from .config import parse_config

T = TypeVar("T")


def _instance(provider: Any) -> Any:
    from . import Provider

    if isinstance(provider, Provider):
        return provider
    if isinstance(provider, type) and issubclass(provider, Provider):
        return provider()
    raise TypeError(f"{provider!r} is not a dss_provider.Provider subclass")


def _guard(what: str, fn: Callable[[], T]) -> T:
    """Runs a provider method: a ProviderError goes through; any other
    exception becomes an ``internal`` error naming it, with its traceback on
    stderr in a component (the host logs a call's stderr)."""
    try:
        return fn()
    except ProviderError:
        raise
    except Exception as e:  # noqa: BLE001 - reported to the operator
        if sys.platform == "wasi":
            traceback.print_exc(file=sys.stderr)
        raise ProviderError.internal(f"{what}: {type(e).__name__}: {e}") from e


def _info(what: str, value: Any) -> ProviderInfo:
    if not isinstance(value, ProviderInfo):
        raise ProviderError.internal(f"{what} returned {type(value).__name__}, not a ProviderInfo")
    return value


def call_describe(provider: Any) -> ProviderInfo:
    """``describe``: the provider's information (no configuration)."""
    return _info("describe()", _guard("describe()", lambda: _instance(provider).describe()))


def call_init(provider: Any, config: str) -> ProviderInfo:
    """``init``: checks the configuration (JSON text)."""
    cfg = parse_config(config)
    return _info("init()", _guard("init()", lambda: _instance(provider).init(cfg)))


def call_list_streams(provider: Any, config: str) -> List[Stream]:
    """``list-streams``: the streams of an instance (configuration as JSON
    text)."""
    cfg = parse_config(config)

    def run() -> List[Stream]:
        result = _instance(provider).list_streams(cfg)
        if result is None or isinstance(result, (str, bytes, dict)):
            raise ProviderError.internal(
                f"list_streams() returned {type(result).__name__}, not a list of Stream"
            )
        return list(result)

    streams = _guard("list_streams()", run)
    for s in streams:
        if not isinstance(s, Stream):
            raise ProviderError.internal(
                f"list_streams() returned a {type(s).__name__} among its streams, not a Stream"
            )
    return streams


def call_transform_metadata(provider: Any, config: str, key: str, metadata: str) -> str:
    """``transform-metadata``: JSON text in, JSON text out."""
    cfg = parse_config(config)
    try:
        value = json.loads(metadata)
    except ValueError as e:
        raise ProviderError.parse(f"metadata is not JSON: {e}") from None
    out = _guard(
        "transform_metadata()",
        lambda: _instance(provider).transform_metadata(cfg, key, value),
    )
    try:
        return json.dumps(out, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ProviderError.internal(f"transform_metadata() returned a value that is not JSON: {e}") from None


# --- the export -------------------------------------------------------------


def export(provider: type) -> type:
    """The class componentize-py exports as the world's ``provider``
    interface for ``provider`` (a :class:`~dss_provider.Provider`
    subclass). The app module binds it to the name ``Provider``::

        Provider = dss_provider.export(MyCameras)

    Call it at module level: the app module is imported while the
    component is built (componentize-py snapshots the interpreter then),
    and only the modules imported by then exist in the component.

    Natively (no generated bindings: tests), the class has the same
    methods on JSON text, returning the SDK's types and raising
    ProviderError.
    """
    from . import Provider as Base

    if not (isinstance(provider, type) and issubclass(provider, Base)):
        raise TypeError(f"export(): {provider!r} is not a dss_provider.Provider subclass")
    try:
        from componentize_py_types import Err  # type: ignore[import-not-found]
        from wit_world import exports  # type: ignore[import-not-found]
        from wit_world.imports import host as _host  # type: ignore[import-not-found]  # noqa: F401
        from wit_world.imports import types as wt  # type: ignore[import-not-found]
    except ImportError:
        return _native_export(provider)
    return _wit_export(provider, exports.Provider, wt, Err)


def _native_export(provider: type) -> type:
    class Provider:
        """``provider`` run natively: JSON text in, SDK types out."""

        def describe(self) -> ProviderInfo:
            return call_describe(provider)

        def init(self, config: str) -> ProviderInfo:
            return call_init(provider, config)

        def list_streams(self, config: str) -> List[Stream]:
            return call_list_streams(provider, config)

        def transform_metadata(self, config: str, key: str, metadata: str) -> str:
            return call_transform_metadata(provider, config, key, metadata)

    Provider.__qualname__ = Provider.__name__ = "Provider"
    Provider.provider = provider  # type: ignore[attr-defined]
    return Provider


def tags_to_wit(wt: Any, pairs: Any) -> list:
    return [wt.Tag(key=str(k), value=str(v)) for k, v in pairs]


def info_to_wit(wt: Any, i: ProviderInfo) -> Any:
    return wt.ProviderInfo(
        name=str(i.name),
        version=str(i.version),
        description=str(i.description),
        input_options=[str(o) for o in i.input_options],
        output_options=[str(o) for o in i.output_options],
        refresh_seconds=int(i.refresh_seconds),
        extra=tags_to_wit(wt, i.extra),
    )


def stream_to_wit(wt: Any, s: Stream) -> Any:
    geo = s.geo
    return wt.StreamSource(
        key=str(s.key),
        source=str(s.source),
        name=str(s.name),
        geo=None if geo is None else wt.Geo(lat=float(geo.lat), lon=float(geo.lon)),
        online=bool(s.online),
        input_options=[str(o) for o in s.input_options],
        tags=tags_to_wit(wt, s.tags),
    )


def error_to_wit(wt: Any, e: ProviderError) -> Any:
    return wt.Error(code=wt.ErrorCode[e.code.name], message=e.message)


def _wit_export(provider: type, protocol: type, wt: Any, Err: type) -> type:
    def fail(e: ProviderError) -> Exception:
        return Err(error_to_wit(wt, e))

    def lowered(what: str, fn: Callable[[], T]) -> T:
        # A value the generated code cannot lower would trap the call;
        # converting here turns it into an internal error naming it.
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            raise ProviderError.internal(f"{what}: {type(e).__name__}: {e}") from e

    class Provider(protocol):  # type: ignore[misc, valid-type]
        """The ``dss:provider/provider`` export."""

        def describe(self) -> Any:
            # describe has no error to return: a failure traps, and the
            # traceback (stderr) is in the host's log.
            try:
                return info_to_wit(wt, call_describe(provider))
            except Exception:
                traceback.print_exc(file=sys.stderr)
                raise

        def init(self, config: str) -> Any:
            try:
                info = call_init(provider, config)
                return lowered("init()", lambda: info_to_wit(wt, info))
            except ProviderError as e:
                raise fail(e) from None

        def list_streams(self, config: str) -> Any:
            try:
                streams = call_list_streams(provider, config)
                return lowered("list_streams()", lambda: [stream_to_wit(wt, s) for s in streams])
            except ProviderError as e:
                raise fail(e) from None

        def transform_metadata(self, config: str, key: str, metadata: str) -> Any:
            try:
                return call_transform_metadata(provider, config, key, metadata)
            except ProviderError as e:
                raise fail(e) from None

    Provider.__qualname__ = Provider.__name__ = "Provider"
    Provider.provider = provider  # type: ignore[attr-defined]
    return Provider
