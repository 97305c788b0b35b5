"""Native tests of the python-cameras provider: plain CPython (3.11 or
later), no Wasm; the host functions are answered by MockHost. Run from this
directory: python3 -m unittest
"""

import sys
import tomllib
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import dss_provider  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent.parent / "provider-sdk" / "python"))

from dss_provider import ErrorCode, Geo, ProviderError, testing
from dss_provider.host import Level, Secret
from dss_provider.testing import MockHost

import app
from app import Cameras

FEED = "https://feed.example/cameras.json"

CONFIG = {
    "cameras": [
        {"key": "bars", "name": "Colour bars", "source": "smptehdbars=size=640x360:rate=25", "lat": -22.9, "lon": -43.1},
        {"key": "mandel", "source": "mandelbrot=size=640x360:rate=25", "input_options": ["-re", "-f", "lavfi"]},
    ]
}


class ConfigCamerasTest(unittest.TestCase):
    def test_lists_the_configured_cameras(self):
        with MockHost() as mock:
            streams = testing.list_streams(Cameras, CONFIG)
        self.assertEqual([s.key for s in streams], ["bars", "mandel"])
        bars, mandel = streams
        self.assertEqual(bars.name, "Colour bars")
        self.assertEqual(bars.geo, Geo(-22.9, -43.1))
        self.assertEqual(mandel.name, "mandel")
        self.assertIsNone(mandel.geo)
        self.assertEqual(mandel.input_options, ["-re", "-f", "lavfi"])
        self.assertEqual(mock.requests, [])
        self.assertEqual(mock.logged(Level.DEBUG), ["2 cameras"])

    def test_the_instance_file_works(self):
        # instance.toml's [config], as the host sends it.
        instance = tomllib.loads((HERE / "instance.toml").read_text())
        self.assertEqual(instance["module"], "python-cameras")
        self.assertGreaterEqual(instance["limits"]["memory_mib"], 32)
        info = testing.init(Cameras, instance["config"])
        self.assertEqual(info.input_options, ["-re", "-f", "lavfi"])
        self.assertEqual(info.refresh_seconds, 0)
        streams = testing.list_streams(Cameras, instance["config"])
        self.assertEqual(len(streams), 3)
        self.assertTrue(all(s.source.endswith("rate=25") for s in streams))

    def test_describe(self):
        info = testing.describe(Cameras)
        self.assertEqual(info.name, "python-cameras")
        self.assertIn("libx264", info.output_options)

    def test_init_options_override_the_defaults(self):
        info = testing.init(Cameras, {**CONFIG, "input_options": ["-f", "lavfi"], "output_options": ["-c", "copy"]})
        self.assertEqual(info.input_options, ["-f", "lavfi"])
        self.assertEqual(info.output_options, ["-c", "copy"])

    def assertConfigError(self, config, message):
        for call in (testing.init, testing.list_streams):
            with self.subTest(call=call.__name__), self.assertRaises(ProviderError) as cm:
                call(Cameras, config)
            self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)
            self.assertIn(message, cm.exception.message)

    def test_config_errors_name_the_field(self):
        self.assertConfigError({"cameras": [{"key": "a"}]}, "config.cameras[0].source is missing")
        self.assertConfigError({"cameras": [{"key": "a b", "source": "x"}]}, "config.cameras[0].key: invalid stream key")
        self.assertConfigError({"cameras": [{"key": "a", "source": "x", "lat": 1}]}, "lat and lon go together")
        self.assertConfigError(
            {"cameras": [{"key": "a", "source": "x", "lat": 100, "lon": 0}]}, "position out of range"
        )
        self.assertConfigError({"cameras": "bars"}, "config.cameras must be a list")

    def test_init_only_errors(self):
        for config, message in [
            ({}, "nothing to list"),
            ({"feed_url": "ftp://x/"}, "config.feed_url"),
            ({**CONFIG, "api_key_secret": "K"}, "needs config.feed_url"),
            ({**CONFIG, "refresh_seconds": -1}, "refresh_seconds"),
        ]:
            with self.subTest(config=config), self.assertRaises(ProviderError) as cm:
                testing.init(Cameras, config)
            self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)
            self.assertIn(message, cm.exception.message)


class FeedTest(unittest.TestCase):
    FEED_ITEMS = [
        {"id": 1, "name": "Av. Pres. Vargas", "lat": -22.90027, "lon": -43.177, "status": "Ligado", "source": "rgbtestsrc"},
        {"id": 3, "name": "Aterro", "status": "Desligado", "source": "smptebars"},
        {"key": "cam 7", "source": "testsrc", "online": False, "lat": 500, "lon": 0},
        {"id": 9},  # no source: skipped
        "junk",  # not an object: skipped
        {"key": "bars", "source": "other"},  # same key as a configured camera
    ]

    def config(self, **extra):
        return {**CONFIG, "feed_url": FEED, **extra}

    def test_feed_cameras_are_added(self):
        mock = MockHost().respond(FEED, json=self.FEED_ITEMS)
        with mock:
            streams = testing.list_streams(Cameras, self.config())
        by_key = {s.key: s for s in streams}
        self.assertEqual(list(by_key), ["bars", "mandel", "1", "3", "cam_7"])
        self.assertEqual(by_key["bars"].source, "smptehdbars=size=640x360:rate=25")  # the first is kept
        self.assertTrue(by_key["1"].online)
        self.assertEqual(by_key["1"].geo, Geo(-22.90027, -43.177))
        self.assertFalse(by_key["3"].online)
        self.assertFalse(by_key["cam_7"].online)
        self.assertIsNone(by_key["cam_7"].geo)  # out of range: dropped
        self.assertEqual(by_key["1"].tags, [("origin", "feed")])
        warnings = mock.logged(Level.WARN)
        self.assertEqual(len(warnings), 3, warnings)
        self.assertIn("duplicate camera 'bars'", warnings[2])

    def test_request_without_key(self):
        mock = MockHost().respond(FEED, json=[])
        with mock:
            testing.list_streams(Cameras, self.config())
        (req,) = mock.requests
        self.assertEqual((req.method, req.url), ("GET", FEED))
        self.assertEqual(req.text_headers, {"accept": "application/json"})
        self.assertEqual(req.secret_headers, {})

    def test_api_key_is_sent_by_secret(self):
        mock = MockHost(secrets={"FEED_KEY"}).respond(FEED, json=[])
        with mock:
            testing.list_streams(Cameras, self.config(api_key_secret="FEED_KEY"))
        (req,) = mock.requests
        self.assertEqual(req.header("X-Api-Key"), Secret("FEED_KEY"))
        self.assertEqual(req.secret_headers, {"x-api-key": "FEED_KEY"})
        self.assertNotIn("x-api-key", req.text_headers)

    def test_unknown_secret_is_an_upstream_error(self):
        mock = MockHost(secrets={"FEED_KEY"}).respond(FEED, json=[])
        with mock, self.assertRaises(ProviderError) as cm:
            testing.list_streams(Cameras, self.config(api_key_secret="OTHER"))
        self.assertEqual(cm.exception.code, ErrorCode.UPSTREAM)

    def test_refused_request(self):
        mock = MockHost().fail(FEED, "host feed.example is not in allow_hosts")
        with mock, self.assertRaises(ProviderError) as cm:
            testing.list_streams(Cameras, self.config())
        self.assertEqual(cm.exception.code, ErrorCode.UPSTREAM)
        self.assertEqual(cm.exception.message, f"GET {FEED}: host feed.example is not in allow_hosts")

    def test_http_error_status(self):
        with MockHost().respond(FEED, 401, "denied"), self.assertRaises(ProviderError) as cm:
            testing.list_streams(Cameras, self.config())
        self.assertEqual(cm.exception, ProviderError.upstream(f"GET {FEED}: HTTP status 401"))

    def test_feed_not_json_or_not_a_list(self):
        for body, message in [("<html>", "not JSON"), ('{"cameras": []}', "not a JSON list")]:
            with self.subTest(body=body), MockHost().respond(FEED, body=body), self.assertRaises(ProviderError) as cm:
                testing.list_streams(Cameras, self.config())
            self.assertEqual(cm.exception.code, ErrorCode.PARSE)
            self.assertIn(message, cm.exception.message)

    def test_refresh_defaults_to_a_minute_with_a_feed(self):
        self.assertEqual(testing.init(Cameras, self.config()).refresh_seconds, 60)
        self.assertEqual(testing.init(Cameras, self.config(refresh_seconds=5)).refresh_seconds, 5)


class MetadataTest(unittest.TestCase):
    def test_gps_gets_the_time(self):
        with MockHost(now_ms=1_700_000_000_000):
            out = testing.transform_metadata(Cameras, CONFIG, "bars", {"lat": 1.5, "lon": 2})
        self.assertEqual(out, {"lat": 1.5, "lon": 2, "camera": "bars", "received_ms": 1_700_000_000_000})

    def test_other_metadata_is_kept(self):
        self.assertEqual(testing.transform_metadata(Cameras, CONFIG, "bars", [1, "x"]), [1, "x"])


class ExportTest(unittest.TestCase):
    def test_the_module_exports_the_provider(self):
        # What componentize-py looks for: a class named Provider.
        self.assertEqual(app.Provider.__name__, "Provider")
        self.assertIs(app.Provider.provider, Cameras)


if __name__ == "__main__":
    unittest.main()
