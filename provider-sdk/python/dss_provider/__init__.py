"""Write DSS stream providers in Python.

A provider subclasses :class:`Provider` with plain Python types and is
exported with :func:`export`; built with componentize-py (``build.sh``) it
is a WebAssembly component of the ``dss:provider/dss-provider@0.2.0``
world (``provider-sdk/wit/provider.wit``, the one source of truth shared
with the host). Run natively with CPython, the same code runs in ordinary
unit tests, with the host functions answered by
:class:`dss_provider.testing.MockHost`::

    import dss_provider as dss
    from dss_provider import host

    class Cameras(dss.Provider):
        def describe(self):
            return dss.ProviderInfo("cameras", "0.1.0", "Cameras from a list")

        def list_streams(self, config):
            return [dss.Stream(key, f"rtsp://cams.example/{key}")
                    for key in config.strings("cameras")]

    Provider = dss.export(Cameras)   # the name componentize-py looks for
"""

from __future__ import annotations

from typing import Any, Iterable

from . import host
from ._glue import export
from ._types import ErrorCode, Geo, ProviderError, ProviderInfo, Stream, key_problem, safe_key
from .config import Config, parse_config
from .host import Secret, secret

__all__ = [
    "Provider",
    "export",
    "Stream",
    "ProviderInfo",
    "Geo",
    "ProviderError",
    "ErrorCode",
    "Config",
    "parse_config",
    "secret",
    "Secret",
    "safe_key",
    "key_problem",
    "host",
    "INTERFACE_VERSION",
]

#: The version of the WIT interface this SDK builds against.
INTERFACE_VERSION = "0.2.0"

__version__ = "0.2.0"


class Provider:
    """What every provider implements. Subclass it and export the subclass
    with :func:`export`.

    Calls are stateless: the host makes a fresh component instance for each
    call (and the SDK a fresh instance of this class), passing the instance
    configuration again. ``config`` is the ``[config]`` table of the
    operator's ``NAME.toml``, parsed once per call into a :class:`Config`
    (a dict with checked accessors); configuration that is not a JSON object
    is refused as ``invalid-config`` before your method runs.

    Raise :class:`ProviderError` (``ProviderError.config(...)``,
    ``.upstream``, ``.parse``) to fail a call with a message for the
    operator; any other exception is reported as ``internal``.
    """

    def describe(self) -> ProviderInfo:
        """Describes the provider type (no configuration). Required."""
        raise NotImplementedError(f"{type(self).__name__}.describe() is not implemented")

    def init(self, config: Config) -> ProviderInfo:
        """Checks a configuration and returns the information adjusted for
        it. The default accepts any configuration and returns
        :meth:`describe`; override it to check the fields you need (raise
        ``ProviderError.config``)."""
        return self.describe()

    def list_streams(self, config: Config) -> Iterable[Stream]:
        """Lists the streams of an instance. Required."""
        raise NotImplementedError(f"{type(self).__name__}.list_streams() is not implemented")

    def transform_metadata(self, config: Config, key: str, metadata: Any) -> Any:
        """Turns stream metadata (a parsed JSON value, e.g. GPS user data
        sent by a phone) into the metadata stored for stream ``key`` (a
        JSON-able value). The default keeps it unchanged."""
        return metadata
