"""python-cameras: a DSS stream provider written in Python.

Lists the cameras of its instance configuration and, optionally, those of a
JSON feed fetched through the host (with an API key the host adds from the
instance's secrets: the module only names it).

    [config]
    cameras = [{ key = "bars", name = "Colour bars", source = "smptehdbars=size=640x360:rate=25",
                 lat = -22.9068, lon = -43.1729 }]
    # optional
    feed_url = "http://127.0.0.1:8000/demo/cameras.json"
    api_key_secret = "FEED_KEY"        # sent as X-Api-Key, by secret
    refresh_seconds = 60
    input_options = ["-re", "-f", "lavfi"]
    output_options = ["-c:v", "libx264", ...]

A feed is a JSON list of objects with ``key`` (or ``id``), ``source``, and
optionally ``name``, ``lat``/``lon``, ``online`` (bool) or ``status`` (text;
"off", "offline" or "Desligado" mean offline).
"""

import dss_provider as dss
from dss_provider import Config, ProviderError, ProviderInfo, Stream, host, secret

VERSION = "0.1.0"

#: The sources are FFmpeg test patterns (lavfi): read in real time...
DEFAULT_INPUT = ["-re", "-f", "lavfi"]
#: ...and encoded, since a generated picture has no stream to copy.
DEFAULT_OUTPUT = [
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
    "-pix_fmt", "yuv420p", "-g", "25",
]

OFFLINE = {"off", "offline", "down", "desligado", "false", "0"}


def camera_from_config(entry: Config) -> Stream:
    """A camera of the ``cameras`` list; a wrong field is an invalid-config
    error naming it (``config.cameras[1].source is missing``)."""
    key = entry.require("key", str)
    problem = dss.key_problem(key)
    if problem:
        raise ProviderError.config(f"{entry.path}.key: {problem}")
    stream = Stream(
        key,
        entry.require("source", str),
        entry.optional("name", str, default=key),
        online=entry.optional("online", bool, default=True),
    )
    lat = entry.optional("lat", float)
    lon = entry.optional("lon", float)
    if (lat is None) != (lon is None):
        raise ProviderError.config(f"{entry.path}: lat and lon go together")
    if lat is not None:
        stream.with_geo(lat, lon)
        if not stream.geo.is_valid():
            raise ProviderError.config(f"{entry.path}: position out of range ({lat}, {lon})")
    options = entry.optional("input_options", list)
    if options is not None:
        stream.with_input_options(entry.strings("input_options"))
    return stream


def camera_from_feed(item: object, index: int):
    """A camera of the feed, or None (logged) when the entry is unusable."""
    if not isinstance(item, dict):
        host.warn(f"feed entry {index}: not an object, skipped")
        return None
    ident = item.get("key", item.get("id"))
    source = item.get("source")
    if ident is None or not isinstance(source, str) or not source:
        host.warn(f"feed entry {index}: no key/id or source, skipped")
        return None
    key = dss.safe_key(ident)
    stream = Stream(key, source, str(item.get("name") or key))
    if isinstance(item.get("online"), bool):
        stream.with_online(item["online"])
    elif isinstance(item.get("status"), str):
        stream.with_online(item["status"].strip().lower() not in OFFLINE)
    lat, lon = item.get("lat"), item.get("lon")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        stream.with_geo(lat, lon)
        if not stream.geo.is_valid():
            stream.geo = None
    return stream.with_tag("origin", "feed")


class Cameras(dss.Provider):
    def describe(self) -> ProviderInfo:
        return ProviderInfo(
            "python-cameras",
            VERSION,
            "Cameras from the configuration and an optional JSON feed (Python example)",
            input_options=DEFAULT_INPUT,
            output_options=DEFAULT_OUTPUT,
        )

    def init(self, config: Config) -> ProviderInfo:
        info = self.describe()
        for entry in config.tables("cameras"):
            camera_from_config(entry)
        url = config.optional("feed_url", str)
        if url is not None and not url.startswith(("http://", "https://")):
            raise ProviderError.config("config.feed_url: an http:// or https:// URL")
        if config.optional("api_key_secret", str) is not None and url is None:
            raise ProviderError.config("config.api_key_secret needs config.feed_url")
        if not config.tables("cameras") and url is None:
            raise ProviderError.config("config: no cameras and no feed_url: nothing to list")
        info.input_options = config.strings("input_options", default=info.input_options)
        info.output_options = config.strings("output_options", default=info.output_options)
        info.refresh_seconds = config.optional("refresh_seconds", int, default=60 if url else 0)
        if not 0 <= info.refresh_seconds <= 86_400:
            raise ProviderError.config("config.refresh_seconds: 0 to 86400")
        return info

    def list_streams(self, config: Config) -> list:
        streams = [camera_from_config(entry) for entry in config.tables("cameras")]
        url = config.optional("feed_url", str)
        if url is not None:
            streams += self.feed(url, config.optional("api_key_secret", str))
        seen, unique = set(), []
        for s in streams:
            if s.key in seen:
                host.warn(f"duplicate camera {s.key!r}: the first one is kept")
                continue
            seen.add(s.key)
            unique.append(s)
        host.debug(f"{len(unique)} cameras")
        return unique

    def feed(self, url: str, api_key_secret) -> list:
        headers = {"Accept": "application/json"}
        if api_key_secret:
            headers["X-Api-Key"] = secret(api_key_secret)
        items = host.http_request_ok("GET", url, headers=headers).json()
        if not isinstance(items, list):
            raise ProviderError.parse(f"{url}: the feed is not a JSON list")
        cameras = [camera_from_feed(item, i) for i, item in enumerate(items)]
        return [c for c in cameras if c is not None]

    def transform_metadata(self, config: Config, key: str, metadata):
        """GPS metadata ({"lat": .., "lon": ..}) is kept with the time the
        host received it; anything else is kept as it is."""
        if isinstance(metadata, dict) and "lat" in metadata and "lon" in metadata:
            return {**metadata, "camera": key, "received_ms": host.now_ms()}
        return metadata


# The class componentize-py exports as the world's `provider` interface.
Provider = dss.export(Cameras)
