import unittest

from dss_provider import Config, ErrorCode, ProviderError, parse_config


class ParseTest(unittest.TestCase):
    def test_object(self):
        c = parse_config('{"url": "http://x", "n": 3}')
        self.assertIsInstance(c, Config)
        self.assertIsInstance(c, dict)
        self.assertEqual(c["url"], "http://x")

    def test_empty_is_empty_object(self):
        self.assertEqual(parse_config(""), {})
        self.assertEqual(parse_config("  \n"), {})
        self.assertEqual(parse_config(None), {})

    def test_invalid_json(self):
        with self.assertRaises(ProviderError) as cm:
            parse_config("{nope")
        self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)
        self.assertIn("not valid JSON", cm.exception.message)

    def test_not_an_object(self):
        with self.assertRaises(ProviderError) as cm:
            parse_config("[1, 2]")
        self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)
        self.assertIn("a list", cm.exception.message)

    def test_dict_goes_through_json(self):
        c = parse_config({"pair": (1, 2)})
        self.assertEqual(c["pair"], [1, 2])
        with self.assertRaises(ProviderError):
            parse_config({"x": object()})


class AccessorTest(unittest.TestCase):
    def setUp(self):
        self.c = parse_config(
            {
                "url": "http://x",
                "n": 3,
                "ratio": 1.5,
                "flag": True,
                "nothing": None,
                "names": ["a", "b"],
                "mixed": ["a", 1],
                "cams": [{"key": "a"}, {"key": 5}],
                "bad_cams": [{"key": "a"}, 7],
                "table": {"inner": "v"},
            }
        )

    def assertConfigError(self, fn, text):
        with self.assertRaises(ProviderError) as cm:
            fn()
        self.assertEqual(cm.exception.code, ErrorCode.INVALID_CONFIG)
        self.assertEqual(cm.exception.message, text)

    def test_require(self):
        self.assertEqual(self.c.require("url", str), "http://x")
        self.assertEqual(self.c.require("n"), 3)
        self.assertConfigError(lambda: self.c.require("missing", str), "config.missing is missing")
        self.assertConfigError(lambda: self.c.require("nothing", str), "config.nothing is missing")
        self.assertConfigError(
            lambda: self.c.require("url", int), "config.url must be an integer, not a string"
        )

    def test_numbers_and_booleans(self):
        self.assertEqual(self.c.require("n", float), 3.0)
        self.assertIsInstance(self.c.require("n", float), float)
        self.assertEqual(self.c.require("ratio", float), 1.5)
        self.assertConfigError(
            lambda: self.c.require("flag", int), "config.flag must be an integer, not a boolean"
        )
        self.assertConfigError(
            lambda: self.c.require("ratio", int), "config.ratio must be an integer, not a number"
        )
        self.assertIs(self.c.require("flag", bool), True)
        self.assertEqual(self.c.require("n", int, str), 3)

    def test_optional(self):
        self.assertEqual(self.c.optional("missing", str, default="d"), "d")
        self.assertEqual(self.c.optional("nothing", str, default="d"), "d")
        self.assertEqual(self.c.optional("url", str), "http://x")
        self.assertConfigError(
            lambda: self.c.optional("n", str, default="d"), "config.n must be a string, not an integer"
        )

    def test_strings(self):
        self.assertEqual(self.c.strings("names"), ["a", "b"])
        self.assertEqual(self.c.strings("missing", default=[]), [])
        self.assertConfigError(lambda: self.c.strings("missing"), "config.missing is missing")
        self.assertConfigError(
            lambda: self.c.strings("mixed"), "config.mixed[1] must be a string, not an integer"
        )

    def test_tables_have_paths(self):
        cams = self.c.tables("cams")
        self.assertEqual(len(cams), 2)
        self.assertEqual(cams[0].require("key", str), "a")
        self.assertConfigError(
            lambda: cams[1].require("key", str), "config.cams[1].key must be a string, not an integer"
        )
        self.assertConfigError(
            lambda: self.c.tables("bad_cams"), "config.bad_cams[1] must be a table, not an integer"
        )
        self.assertEqual(self.c.tables("missing"), [])
        self.assertConfigError(lambda: self.c.tables("missing", required=True), "config.missing is missing")

    def test_table(self):
        t = self.c.table("table")
        self.assertEqual(t.require("inner", str), "v")
        self.assertConfigError(lambda: t.require("x"), "config.table.x is missing")
        self.assertEqual(self.c.table("missing"), {})


if __name__ == "__main__":
    unittest.main()
