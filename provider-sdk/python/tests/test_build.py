"""Building a component: its errors (the build that fails needs
componentize-py, else it is skipped: scripts/python-tools.sh)."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from dss_provider import build


class ErrorsTest(unittest.TestCase):
    def test_no_app_module(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(RuntimeError) as cm:
                build.build(Path(d), quiet=True)
            self.assertIn("no app.py", str(cm.exception))

    def test_reserved_module_name(self):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "wit_world.py").write_text("")
            with self.assertRaises(RuntimeError):
                build.build(Path(d), module="wit_world", quiet=True)

    def test_trim_drops_the_backtrace(self):
        self.assertEqual(build._trim("error: x\n\nStack backtrace:\n  0: y"), "error: x")

    def test_not_a_component(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "x.wasm"
            p.write_bytes(b"\0asm\x01\x00\x00\x00")  # a core module
            with self.assertRaises(RuntimeError):
                build.component_imports(p)


@unittest.skipUnless(build.find_componentize_py(), "componentize-py not installed (scripts/python-tools.sh)")
class BuildTest(unittest.TestCase):
    # A successful build is tested with the scaffold (test_scaffold.py).

    def test_build_error_is_reported(self):
        with tempfile.TemporaryDirectory() as d:
            app = Path(d)
            (app / "app.py").write_text("raise ValueError('broken at import')\n")
            out = app / "x.wasm"
            env = dict(os.environ, PYTHONPATH=str(build.SDK_PYTHON))
            proc = subprocess.run(
                [sys.executable, "-m", "dss_provider.build", str(app), "-o", str(out)],
                capture_output=True,
                text=True,
                env=env,
            )
            self.assertEqual(proc.returncode, 1)
            self.assertIn("broken at import", proc.stderr)
            self.assertNotIn("Stack backtrace", proc.stderr)
            self.assertEqual([p.name for p in app.iterdir() if p.suffix == ".wasm" or "tmp" in p.name], [])


if __name__ == "__main__":
    unittest.main()
