"""The glue against the bindings componentize-py generates from
provider-sdk/wit (skipped when componentize-py is not installed: run
scripts/python-tools.sh). The generated modules are pure Python; their host
functions are replaced here by fakes."""

import subprocess
import sys
import tempfile
import unittest

import dss_provider as dss
from dss_provider import ErrorCode, ProviderError, ProviderInfo, Stream, secret
from dss_provider.build import SDK, WORLD, find_componentize_py
from dss_provider.host import HttpError, _WitBackend

TOOL = find_componentize_py()

GENERATED = ("wit_world", "componentize_py_types", "componentize_py_async_support", "poll_loop")


def _forget_generated():
    for name in list(sys.modules):
        if name.split(".")[0] in GENERATED:
            del sys.modules[name]


class Cams(dss.Provider):
    def describe(self):
        return ProviderInfo("cams", "1.2.3", "Cameras", input_options=["-re"], extra={"k": "v"})

    def list_streams(self, config):
        if config.get("fail"):
            raise ProviderError.upstream("feed down")
        if config.get("crash"):
            raise RuntimeError("boom")
        return [
            Stream("a", "src-a", "A").with_geo(1, 2).with_tag("t", "v"),
            Stream("b", "src-b", online=False, input_options=["-f", "lavfi"]),
        ]

    def transform_metadata(self, config, key, metadata):
        return {"key": key, **metadata}


@unittest.skipUnless(TOOL, "componentize-py not installed (scripts/python-tools.sh)")
@unittest.skipIf(sys.version_info < (3, 11), "the generated bindings need Python 3.11 (typing.Self)")
class BindingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        subprocess.run(
            [TOOL, "-d", str(SDK / "wit"), "-w", WORLD, "bindings", cls.tmp.name],
            check=True,
            capture_output=True,
        )
        _forget_generated()
        sys.path.insert(0, cls.tmp.name)
        from componentize_py_types import Err
        from wit_world.imports import host as wit_host
        from wit_world.imports import types as wt

        cls.Err, cls.wit_host, cls.wt = Err, wit_host, wt
        cls.Export = dss.export(Cams)

    @classmethod
    def tearDownClass(cls):
        sys.path.remove(cls.tmp.name)
        _forget_generated()
        cls.tmp.cleanup()

    def test_export_is_the_generated_protocol(self):
        from wit_world import exports

        self.assertIn(exports.Provider, self.Export.__mro__)
        self.assertEqual(self.Export.__name__, "Provider")

    def test_describe(self):
        wt = self.wt
        info = self.Export().describe()
        self.assertEqual(
            info,
            wt.ProviderInfo(
                name="cams",
                version="1.2.3",
                description="Cameras",
                input_options=["-re"],
                output_options=["-c", "copy"],
                refresh_seconds=0,
                extra=[wt.Tag(key="k", value="v")],
            ),
        )

    def test_list_streams(self):
        wt = self.wt
        streams = self.Export().list_streams("{}")
        self.assertEqual(
            streams,
            [
                wt.StreamSource(
                    key="a",
                    source="src-a",
                    name="A",
                    geo=wt.Geo(lat=1.0, lon=2.0),
                    online=True,
                    input_options=[],
                    tags=[wt.Tag(key="t", value="v")],
                ),
                wt.StreamSource(
                    key="b",
                    source="src-b",
                    name="b",
                    geo=None,
                    online=False,
                    input_options=["-f", "lavfi"],
                    tags=[],
                ),
            ],
        )

    def assertErr(self, fn, code, message):
        with self.assertRaises(self.Err) as cm:
            fn()
        err = cm.exception.value
        self.assertIsInstance(err, self.wt.Error)
        self.assertEqual(err.code, code)
        self.assertEqual(err.message, message)

    def test_errors(self):
        wt, p = self.wt, self.Export()
        self.assertErr(lambda: p.list_streams('{"fail": true}'), wt.ErrorCode.UPSTREAM, "feed down")
        self.assertErr(
            lambda: p.list_streams('{"crash": true}'),
            wt.ErrorCode.INTERNAL,
            "list_streams(): RuntimeError: boom",
        )
        self.assertErr(lambda: p.init("[]"), wt.ErrorCode.INVALID_CONFIG, "config must be a JSON object, not a list")
        self.assertErr(
            lambda: p.transform_metadata("{}", "a", "{"),
            wt.ErrorCode.PARSE,
            "metadata is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        )

    def test_error_codes_map_by_name(self):
        for code in ErrorCode:
            self.assertEqual(dss._glue.error_to_wit(self.wt, ProviderError(code, "m")).code.name, code.name)

    def test_transform_metadata(self):
        self.assertEqual(self.Export().transform_metadata("{}", "k", '{"lat": 1}'), '{"key":"k","lat":1}')

    def test_host_backend(self):
        wit = self.wit_host
        calls = []

        def http_request(request):
            calls.append(request)
            if request.url.endswith("/refused"):
                raise self.Err("host x.test is not in allow_hosts")
            return wit.HttpResponse(
                status=200,
                content_type="application/json",
                headers=[("content-type", "application/json"), ("x-n", "1")],
                body=b"[1]",
            )

        def http_get(url):
            calls.append(url)
            return wit.HttpResponse(status=404, content_type=None, headers=[], body=b"")

        logs = []
        saved = (wit.http_request, wit.http_get, wit.log, wit.now_ms)
        wit.http_request, wit.http_get = http_request, http_get
        wit.log = lambda level, message: logs.append((level, message))
        wit.now_ms = lambda: 42
        try:
            backend = _WitBackend()
            r = backend.http(
                "POST",
                "https://x.test/q",
                [("X-Api-Key", secret("K")), ("Accept", "application/json")],
                b"{}",
                False,
            )
            self.assertEqual(r.json(), [1])
            self.assertEqual(r.headers["X-N"], "1")
            req = calls[0]
            self.assertEqual(req.method, wit.Method.POST)
            self.assertEqual(req.url, "https://x.test/q")
            self.assertEqual(req.body, b"{}")
            self.assertEqual(
                req.headers,
                [
                    wit.Header(name="X-Api-Key", value=wit.HeaderValue_Secret("K")),
                    wit.Header(name="Accept", value=wit.HeaderValue_Text("application/json")),
                ],
            )
            with self.assertRaises(HttpError) as cm:
                backend.http("GET", "https://x.test/refused", [], None, False)
            self.assertEqual(cm.exception.message, "GET https://x.test/refused: host x.test is not in allow_hosts")
            self.assertEqual(backend.http("GET", "http://x.test/", [], None, True).status, 404)
            self.assertEqual(calls[-1], "http://x.test/")
            backend.log(dss.host.Level.WARN, "careful")
            self.assertEqual(logs, [(wit.LogLevel.WARN, "careful")])
            self.assertEqual(backend.now_ms(), 42)
        finally:
            wit.http_request, wit.http_get, wit.log, wit.now_ms = saved


if __name__ == "__main__":
    unittest.main()
