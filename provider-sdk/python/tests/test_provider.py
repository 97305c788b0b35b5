"""The exported functions, natively: JSON in, checked SDK types out, errors
as ProviderError; and the testing helpers that call them."""

import unittest

import dss_provider as dss
from dss_provider import ErrorCode, ProviderError, ProviderInfo, Stream, host, testing
from dss_provider.testing import MockHost


class Cams(dss.Provider):
    def describe(self):
        return ProviderInfo("cams", "1.0.0", "Cameras", refresh_seconds=30)

    def init(self, config):
        config.require("cameras", list)
        return self.describe()

    def list_streams(self, config):
        host.debug("listing")
        return [Stream(k, f"rtsp://cams.test/{k}") for k in config.strings("cameras")]


class Minimal(dss.Provider):
    def describe(self):
        return ProviderInfo("min", "0.1.0", "Minimal")

    def list_streams(self, config):
        return iter([Stream("a", "src")])  # any iterable will do


class Broken(dss.Provider):
    def describe(self):
        return "not an info"

    def list_streams(self, config):
        return {}["missing"]

    def transform_metadata(self, config, key, metadata):
        return {"bad": object()}


class Wrong(dss.Provider):
    def describe(self):
        return ProviderInfo("w", "0", "w")

    def list_streams(self, config):
        return ["not a stream"]


class ExportedTest(unittest.TestCase):
    def test_describe(self):
        info = testing.describe(Cams)
        self.assertEqual(info.name, "cams")
        self.assertEqual(info.refresh_seconds, 30)

    def test_init_and_defaults(self):
        self.assertEqual(testing.init(Cams, {"cameras": []}).name, "cams")
        self.assertEqual(testing.init(Minimal, {}).name, "min")  # default init: describe

    def test_init_error(self):
        with self.assertRaises(ProviderError) as cm:
            testing.init(Cams, {})
        self.assertEqual(cm.exception, ProviderError.config("config.cameras is missing"))

    def test_invalid_json_is_invalid_config(self):
        for text in ["{", "[]", "3"]:
            with self.subTest(text=text), self.assertRaises(ProviderError) as cm:
                testing.list_streams(Cams, text)
            self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)

    def test_list_streams(self):
        with MockHost() as mock:
            streams = testing.list_streams(Cams, '{"cameras": ["gate", "lobby"]}')
        self.assertEqual([s.key for s in streams], ["gate", "lobby"])
        self.assertEqual(streams[1].source, "rtsp://cams.test/lobby")
        self.assertEqual(mock.logged("debug"), ["listing"])

    def test_iterable_result(self):
        self.assertEqual(len(testing.list_streams(Minimal)), 1)

    def test_transform_metadata_default_keeps_it(self):
        self.assertEqual(testing.transform_metadata(Minimal, {}, "a", {"lat": 1}), {"lat": 1})

    def test_other_exceptions_are_internal(self):
        with self.assertRaises(ProviderError) as cm:
            testing.list_streams(Broken)
        self.assertEqual(cm.exception.code, ErrorCode.INTERNAL)
        self.assertEqual(cm.exception.message, "list_streams(): KeyError: 'missing'")
        self.assertIsInstance(cm.exception.__cause__, KeyError)

    def test_wrong_return_types(self):
        with self.assertRaises(ProviderError) as cm:
            testing.describe(Broken)
        self.assertIn("not a ProviderInfo", cm.exception.message)
        with self.assertRaises(ProviderError) as cm:
            testing.list_streams(Wrong)
        self.assertIn("a str among its streams", cm.exception.message)
        with self.assertRaises(ProviderError) as cm:
            testing.transform_metadata(Broken, {}, "a", {})
        self.assertEqual(cm.exception.code, ErrorCode.INTERNAL)
        self.assertIn("not JSON", cm.exception.message)

    def test_metadata_not_json_is_parse_error(self):
        with self.assertRaises(ProviderError) as cm:
            dss._glue.call_transform_metadata(Minimal, "{}", "a", "{nope")
        self.assertEqual(cm.exception.code, ErrorCode.PARSE)

    def test_not_implemented_is_internal(self):
        class Empty(dss.Provider):
            pass

        with self.assertRaises(ProviderError) as cm:
            testing.list_streams(Empty)
        self.assertEqual(cm.exception.code, ErrorCode.INTERNAL)
        self.assertIn("NotImplementedError", cm.exception.message)


class CheckStreamsTest(unittest.TestCase):
    def test_problems(self):
        problems = testing.check_streams(
            [
                Stream("ok", "src"),
                Stream("ok", "src"),
                Stream("bad key", "src"),
                Stream("empty", ""),
                Stream("far", "src", geo=(95, 0)),
                Stream("long", "x" * 5000),
            ]
        )
        self.assertEqual(len(problems), 5, problems)
        self.assertIn("duplicate key 'ok'", problems)

    def test_list_streams_checks_by_default(self):
        class Dup(Minimal):
            def list_streams(self, config):
                return [Stream("a", "s"), Stream("a", "s")]

        with self.assertRaises(AssertionError):
            testing.list_streams(Dup)
        self.assertEqual(len(testing.list_streams(Dup, check=False)), 2)


class ExportNativeTest(unittest.TestCase):
    def test_export_without_bindings(self):
        P = dss.export(Cams)
        self.assertEqual(P.__name__, "Provider")
        self.assertIs(P.provider, Cams)
        p = P()
        self.assertEqual(p.describe().name, "cams")
        self.assertEqual([s.key for s in p.list_streams('{"cameras":["a"]}')], ["a"])
        self.assertEqual(p.transform_metadata("{}", "a", "[1]"), "[1]")
        with self.assertRaises(ProviderError):
            p.init("{}")

    def test_export_refuses_other_classes(self):
        with self.assertRaises(TypeError):
            dss.export(object)
        with self.assertRaises(TypeError):
            dss.export(Cams())


if __name__ == "__main__":
    unittest.main()
