"""The instance configuration: the ``[config]`` table of the operator's
``NAME.toml``, passed to every call as a JSON object and parsed once per
call into a :class:`Config` (a ``dict``, with checked accessors whose
errors are ``invalid-config`` errors naming the field)."""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Tuple, Type, Union

from ._types import ProviderError

__all__ = ["Config", "parse_config"]

_MISSING: Any = object()

_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "a table",
}


def _type_name(t: type) -> str:
    return _NAMES.get(t, t.__name__)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _matches(value: Any, types: Tuple[type, ...]) -> bool:
    for t in types:
        if t is bool:
            if isinstance(value, bool):
                return True
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif t is float:
            # TOML and JSON integers are numbers too.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif isinstance(value, t):
            return True
    return False


class Config(dict):
    """A configuration table: a ``dict`` whose checked accessors raise
    ``invalid-config`` errors naming the field (``config.cameras[2].lat``).

    ``require("url", str)`` returns the value or raises;
    ``optional("refresh", int, default=0)`` returns the default when the key
    is missing (or null); ``table``/``tables`` give nested tables as
    :class:`Config` with their path.
    """

    def __init__(self, data: Mapping[str, Any] = (), path: str = "config"):
        super().__init__(data)
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def _check(self, key: str, value: Any, types: Tuple[type, ...]) -> Any:
        if types and not _matches(value, types):
            want = " or ".join(_type_name(t) for t in types)
            raise ProviderError.config(
                f"{self._where(key)} must be {want}, not {_json_type(value)}"
            )
        if float in types and int not in types and not isinstance(value, bool):
            if isinstance(value, int):
                return float(value)
        return value

    def require(self, key: str, *types: Type) -> Any:
        """The value of ``key``, which must be present, not null, and of one
        of ``types`` (any type when none is given)."""
        value = self.get(key)
        if value is None:
            raise ProviderError.config(f"{self._where(key)} is missing")
        return self._check(key, value, types)

    def optional(self, key: str, *types: Type, default: Any = None) -> Any:
        """The value of ``key`` if present and not null (then it must be of
        one of ``types``), else ``default``."""
        value = self.get(key)
        if value is None:
            return default
        return self._check(key, value, types)

    def table(self, key: str, *, required: bool = False) -> "Config":
        """The nested table ``key`` (empty when missing, unless ``required``)."""
        value = self.require(key, dict) if required else self.optional(key, dict, default={})
        return Config(value, self._where(key))

    def tables(self, key: str, *, required: bool = False) -> List["Config"]:
        """The list of tables ``key`` (``[[key]]`` or ``key = [{...}]`` in
        TOML), each with its path (``config.key[0]``); empty when missing,
        unless ``required``."""
        items = self.require(key, list) if required else self.optional(key, list, default=[])
        out = []
        for i, item in enumerate(items):
            where = f"{self._where(key)}[{i}]"
            if not isinstance(item, dict):
                raise ProviderError.config(f"{where} must be a table, not {_json_type(item)}")
            out.append(Config(item, where))
        return out

    def strings(self, key: str, *, default: Any = _MISSING) -> List[str]:
        """The list of strings ``key`` (``default``, else an error, when
        missing)."""
        if default is _MISSING:
            items = self.require(key, list)
        else:
            items = self.optional(key, list, default=default)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ProviderError.config(
                    f"{self._where(key)}[{i}] must be a string, not {_json_type(item)}"
                )
        return list(items)

    def __repr__(self) -> str:
        return f"Config({dict.__repr__(self)}, path={self.path!r})"


def parse_config(config: Union[str, bytes, Mapping[str, Any], None]) -> Config:
    """Parses an instance configuration the way the exported functions do:
    JSON text (empty means ``{}``) or, in tests, a dict. Anything but a JSON
    object is an ``invalid-config`` error."""
    if config is None:
        return Config({})
    if isinstance(config, Mapping):
        # Through JSON, as the host sends it: tuples become lists, and a
        # value JSON cannot carry fails here rather than in the component.
        try:
            config = json.dumps(config)
        except (TypeError, ValueError) as e:
            raise ProviderError.config(f"config is not representable as JSON: {e}") from None
    if isinstance(config, bytes):
        config = config.decode("utf-8", errors="replace")
    if not config.strip():
        return Config({})
    try:
        value = json.loads(config)
    except ValueError as e:
        raise ProviderError.config(f"config is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProviderError.config(f"config must be a JSON object, not {_json_type(value)}")
    return Config(value)

