import unittest

import dss_provider as dss
from dss_provider import ErrorCode, Geo, ProviderError, ProviderInfo, Stream


class StreamTest(unittest.TestCase):
    def test_defaults(self):
        s = Stream("gate", "rtsp://cams.example/gate")
        self.assertEqual(s.name, "gate")
        self.assertIsNone(s.geo)
        self.assertTrue(s.online)
        self.assertEqual(s.input_options, [])
        self.assertEqual(s.tags, [])

    def test_builders_chain(self):
        s = (
            Stream("gate", "rtsp://x/gate", "Gate")
            .with_geo(-22.9, -43.2)
            .with_online(False)
            .with_tag("site", "north")
            .with_tag("floor", 2)
            .with_input_options(["-rtsp_transport", "tcp"])
        )
        self.assertEqual(s.geo, Geo(-22.9, -43.2))
        self.assertFalse(s.online)
        self.assertEqual(s.tags, [("site", "north"), ("floor", "2")])
        self.assertEqual(s.input_options, ["-rtsp_transport", "tcp"])

    def test_geo_and_tags_in_constructor(self):
        s = Stream("a", "src", geo=(1, 2), tags={"k": "v"})
        self.assertEqual(s.geo, Geo(1.0, 2.0))
        self.assertEqual(s.tags, [("k", "v")])

    def test_geo_validity(self):
        self.assertTrue(Geo(90, -180).is_valid())
        self.assertFalse(Geo(91, 0).is_valid())
        self.assertFalse(Geo(float("nan"), 0).is_valid())

    def test_lists_are_not_shared(self):
        a, b = Stream("a", "s"), Stream("b", "s")
        a.with_tag("x", "y")
        self.assertEqual(b.tags, [])


class ProviderInfoTest(unittest.TestCase):
    def test_defaults(self):
        i = ProviderInfo("cams", "1.0.0", "Cameras")
        self.assertEqual(i.output_options, ["-c", "copy"])
        self.assertEqual(i.input_options, [])
        self.assertEqual(i.refresh_seconds, 0)
        self.assertEqual(i.extra, [])

    def test_refresh_must_be_u32(self):
        with self.assertRaises(ValueError):
            ProviderInfo("a", "1", "d", refresh_seconds=-1)

    def test_extra_from_dict(self):
        self.assertEqual(ProviderInfo("a", "1", "d", extra={"k": 1}).extra, [("k", "1")])


class ErrorTest(unittest.TestCase):
    def test_helpers(self):
        self.assertEqual(ProviderError.config("m").code, ErrorCode.INVALID_CONFIG)
        self.assertEqual(ProviderError.upstream("m").code, ErrorCode.UPSTREAM)
        self.assertEqual(ProviderError.parse("m").code, ErrorCode.PARSE)
        self.assertEqual(ProviderError.internal("m").code, ErrorCode.INTERNAL)

    def test_code_from_wit_name(self):
        e = ProviderError("invalid-config", "no url")
        self.assertEqual(e.code, ErrorCode.INVALID_CONFIG)
        self.assertEqual(str(e), "invalid-config: no url")
        self.assertEqual(e, ProviderError.config("no url"))

    def test_unknown_code(self):
        with self.assertRaises(ValueError):
            ProviderError("nope", "m")


class KeyTest(unittest.TestCase):
    def test_key_problem(self):
        for ok in ["a", "A-b_c.d", "x" * 64, "0"]:
            self.assertIsNone(dss.key_problem(ok), ok)
        for bad in ["", ".hidden", "a b", "x" * 65, "é", "a/b"]:
            self.assertIsNotNone(dss.key_problem(bad), bad)

    def test_safe_key(self):
        self.assertEqual(dss.safe_key("Cam #1 / North"), "Cam_1_North")
        self.assertEqual(dss.safe_key(42), "42")
        self.assertEqual(dss.safe_key("..x"), "x")
        self.assertEqual(dss.safe_key(""), "_")
        self.assertEqual(len(dss.safe_key("y" * 100)), 64)
        for text in ["Cam #1", "...", "ç", "a" * 80, " "]:
            self.assertIsNone(dss.key_problem(dss.safe_key(text)), text)


if __name__ == "__main__":
    unittest.main()
