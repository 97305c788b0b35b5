import threading
import unittest

from dss_provider import ErrorCode, ProviderError, host, secret
from dss_provider.host import Headers, HttpError, Level, Response, Secret
from dss_provider.testing import MockHost


class LogTest(unittest.TestCase):
    def test_levels(self):
        with MockHost() as mock:
            host.log("info", "one")
            host.log(Level.DEBUG, "two")
            host.log("WARNING", "three")
            host.error("four")
            host.trace(5)
        self.assertEqual(
            mock.logs,
            [
                (Level.INFO, "one"),
                (Level.DEBUG, "two"),
                (Level.WARN, "three"),
                (Level.ERROR, "four"),
                (Level.TRACE, "5"),
            ],
        )
        self.assertEqual(mock.logged("warn"), ["three"])
        self.assertEqual(mock.logged(), ["one", "two", "three", "four", "5"])

    def test_unknown_level(self):
        with MockHost(), self.assertRaises(ValueError):
            host.log("loud", "x")

    def test_default_mock_without_install(self):
        # Like the Rust SDK: a provider that logs works in a plain test.
        host.info("nobody listens")

    def test_nested_mocks(self):
        outer, inner = MockHost(), MockHost()
        with outer:
            host.info("a")
            with inner:
                host.info("b")
            host.info("c")
        self.assertEqual(outer.logged(), ["a", "c"])
        self.assertEqual(inner.logged(), ["b"])

    def test_mocks_are_per_thread(self):
        mock = MockHost()
        other = []

        def run():
            host.info("other thread")
            other.append(True)

        with mock:
            t = threading.Thread(target=run)
            t.start()
            t.join()
        self.assertEqual(other, [True])
        self.assertEqual(mock.logs, [])


class ClockTest(unittest.TestCase):
    def test_now_ms(self):
        self.assertEqual(MockHost(now_ms=1_700_000_000_000).run(host.now_ms), 1_700_000_000_000)


class HttpGetTest(unittest.TestCase):
    def test_response(self):
        mock = MockHost().respond(
            "http://feed.test/list",
            200,
            "gate\nlobby",
            content_type="text/plain; charset=utf-8",
            headers={"X-Total": "2", "Link": "<next>"},
        )
        with mock:
            r = host.http_get("http://feed.test/list")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.ok)
        self.assertEqual(r.text(), "gate\nlobby")
        self.assertEqual(r.body, b"gate\nlobby")
        self.assertEqual(r.content_type, "text/plain; charset=utf-8")
        self.assertEqual(r.headers["x-total"], "2")
        self.assertEqual(r.headers.get("LINK"), "<next>")
        self.assertIn("Content-Type", r.headers)
        self.assertEqual(mock.requests[0].method, "GET")
        self.assertEqual(mock.requests[0].url, "http://feed.test/list")
        self.assertTrue(mock.requests[0].via_get)

    def test_json(self):
        with MockHost().respond("https://f.test/a", json={"n": [1, 2]}):
            r = host.http_get("https://f.test/a")
        self.assertEqual(r.json(), {"n": [1, 2]})
        self.assertEqual(r.content_type, "application/json")

    def test_json_parse_error(self):
        with MockHost().respond("https://f.test/a", body="<html>"):
            r = host.http_get("https://f.test/a")
        with self.assertRaises(ProviderError) as cm:
            r.json()
        self.assertEqual(cm.exception.code, ErrorCode.PARSE)
        self.assertIn("GET https://f.test/a", cm.exception.message)

    def test_failure_is_upstream_error(self):
        mock = MockHost().fail("http://evil.test/", "host evil.test is not in allow_hosts")
        with mock, self.assertRaises(HttpError) as cm:
            host.http_get("http://evil.test/")
        e = cm.exception
        self.assertIsInstance(e, ProviderError)
        self.assertEqual(e.code, ErrorCode.UPSTREAM)
        self.assertEqual(e.cause, "host evil.test is not in allow_hosts")
        self.assertEqual(e.message, "GET http://evil.test/: host evil.test is not in allow_hosts")

    def test_unknown_url(self):
        with MockHost(), self.assertRaises(HttpError) as cm:
            host.http_get("http://nowhere.test/")
        self.assertIn("no mock response", cm.exception.message)

    def test_get_ok(self):
        mock = MockHost().respond("http://x.test/404", 404, "nope")
        with mock:
            self.assertEqual(host.http_get("http://x.test/404").status, 404)
            with self.assertRaises(ProviderError) as cm:
                host.http_get_ok("http://x.test/404")
        self.assertEqual(cm.exception.code, ErrorCode.UPSTREAM)
        self.assertEqual(cm.exception.message, "GET http://x.test/404: HTTP status 404")

    def test_responder(self):
        mock = MockHost().respond_with(
            "http://x.test/echo",
            lambda req: Response(200, body=req.body or b"", headers=[("x-m", req.method)]),
            method="POST",
        )
        with mock:
            r = host.http_request("POST", "http://x.test/echo", body="hi")
        self.assertEqual(r.text(), "hi")
        self.assertEqual(r.headers["X-M"], "POST")


class HttpRequestTest(unittest.TestCase):
    def test_secret_and_text_headers_are_recorded(self):
        mock = MockHost().respond("https://api.test/cams", json=[])
        with mock:
            host.http_request(
                "get",
                "https://api.test/cams",
                headers={"X-Api-Key": secret("FEED_KEY"), "Accept": "application/json"},
            )
        req = mock.requests[0]
        self.assertEqual(req.method, "GET")
        self.assertFalse(req.via_get)
        self.assertEqual(req.header("x-api-key"), Secret("FEED_KEY"))
        self.assertEqual(req.secret_headers, {"x-api-key": "FEED_KEY"})
        self.assertEqual(req.text_headers, {"accept": "application/json"})
        self.assertIsNone(req.body)

    def test_post_json(self):
        mock = MockHost().respond("https://api.test/q", method="POST", json={"ok": True})
        with mock:
            r = host.http_request_ok("POST", "https://api.test/q", json={"query": "{ cams }"})
        self.assertEqual(r.json(), {"ok": True})
        req = mock.requests[0]
        self.assertEqual(req.json(), {"query": "{ cams }"})
        self.assertEqual(req.header("Content-Type"), "application/json")

    def test_post_body_text_and_bytes(self):
        mock = MockHost().respond("http://x.test/", method="POST")
        with mock:
            host.http_request("POST", "http://x.test/", body="é")
            host.http_request("POST", "http://x.test/", body=b"\x00\x01")
        self.assertEqual(mock.requests[0].body, "é".encode())
        self.assertEqual(mock.requests[1].body, b"\x00\x01")

    def test_method_matters(self):
        mock = MockHost().respond("http://x.test/", method="POST")
        with mock, self.assertRaises(HttpError):
            host.http_request("GET", "http://x.test/")

    def test_pairs_keep_repeated_headers(self):
        mock = MockHost().respond("http://x.test/")
        with mock:
            host.http_request("GET", "http://x.test/", headers=[("Accept", "a"), ("Accept", "b")])
        self.assertEqual(mock.requests[0].headers, [("Accept", "a"), ("Accept", "b")])

    def test_unknown_secret_fails_as_on_the_host(self):
        mock = MockHost(secrets={"FEED_KEY"}).respond("http://x.test/")
        with mock:
            host.http_request("GET", "http://x.test/", headers={"X-Api-Key": secret("FEED_KEY")})
            with self.assertRaises(HttpError) as cm:
                host.http_request("GET", "http://x.test/", headers={"X-Api-Key": secret("OTHER")})
        self.assertIn("unknown secret 'OTHER'", cm.exception.message)

    def test_host_headers_are_refused(self):
        mock = MockHost().respond("http://x.test/")
        with mock, self.assertRaises(HttpError) as cm:
            host.http_request("GET", "http://x.test/", headers={"User-Agent": "me"})
        self.assertIn("set by the host", cm.exception.message)

    def test_bad_arguments(self):
        with MockHost():
            with self.assertRaises(ValueError):
                host.http_request("PUT", "http://x.test/")
            with self.assertRaises(TypeError):
                host.http_request("GET", "http://x.test/", headers={"X-N": 5})
            with self.assertRaises(ValueError):
                host.http_request("POST", "http://x.test/", body="a", json={})
            with self.assertRaises(ValueError):
                secret("")

    def test_secret_repr_names_no_value(self):
        self.assertEqual(repr(secret("K")), "secret('K')")


class ResponseTest(unittest.TestCase):
    def test_text_charset(self):
        r = Response(200, "text/plain; charset=latin-1", body="é".encode("latin-1"))
        self.assertEqual(r.text(), "é")
        self.assertEqual(Response(200, "text/plain; charset=bogus", body=b"a").text(), "a")
        self.assertEqual(Response(200, body=b"\xff").text(), "\ufffd")

    def test_headers(self):
        h = Headers([("set-cookie", "a"), ("Set-Cookie", "b")])
        self.assertEqual(h.get_all("SET-COOKIE"), ["a", "b"])
        self.assertEqual(h["set-cookie"], "a")
        self.assertEqual(len(h), 2)
        self.assertIsNone(h.get("x"))
        with self.assertRaises(KeyError):
            h["x"]


if __name__ == "__main__":
    unittest.main()
