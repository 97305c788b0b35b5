"""The Python templates of `dss providers new NAME --lang python`
(host/src/scaffold/python/*.in), filled as the host fills them: the
project's native tests pass and, when componentize-py is installed, it
builds in one command into a component that imports only what the host
links."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from dss_provider import build

TEMPLATES = build.SDK.parent / "host" / "src" / "scaffold" / "python"
FILES = {
    "app.py.in": "app.py",
    "test_app.py.in": "test_app.py",
    "build.sh.in": "build.sh",
    "instance.toml.in": "instance.toml",
    "README.md.in": "README.md",
    "gitignore.in": ".gitignore",
}
NAME = "my-cams2"


def fill(text: str) -> str:
    # As host/src/scaffold.rs does.
    return (
        text.replace("{{name}}", NAME)
        .replace("{{crate}}", NAME.replace("-", "_"))
        .replace("{{sdk}}", str(build.SDK))
    )


@unittest.skipUnless(TEMPLATES.is_dir(), "no scaffold templates beside this SDK")
class ScaffoldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name) / NAME
        cls.dir.mkdir()
        for template, out in FILES.items():
            (cls.dir / out).write_text(fill((TEMPLATES / template).read_text()))
        (cls.dir / "build.sh").chmod(0o755)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_placeholder_is_filled(self):
        for out in FILES.values():
            self.assertNotIn("{{", (self.dir / out).read_text(), out)

    def test_native_tests_pass_without_pythonpath(self):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [sys.executable, "-m", "unittest", "-v"],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 3 tests", proc.stderr)

    def test_instance_file(self):
        if sys.version_info < (3, 11):
            self.skipTest("tomllib needs Python 3.11")
        import tomllib

        instance = tomllib.loads((self.dir / "instance.toml").read_text())
        self.assertEqual(instance["module"], NAME)
        self.assertGreaterEqual(instance["limits"]["memory_mib"], 32)
        self.assertIn("cameras", instance["config"])

    @unittest.skipUnless(build.find_componentize_py(), "componentize-py not installed (scripts/python-tools.sh)")
    def test_builds_in_one_command(self):
        proc = subprocess.run(["bash", str(self.dir / "build.sh")], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = self.dir / f"{NAME}.wasm"
        self.assertIn(f"built {out}", proc.stderr)
        self.assertGreater(out.stat().st_size, 1_000_000)
        # Written atomically: no temporary file is left.
        self.assertEqual([p.name for p in self.dir.iterdir() if "tmp" in p.name], [])
        imports = build.component_imports(out)
        self.assertIn("dss:provider/host@0.2.0", imports)
        self.assertEqual(build.check_imports(out), [])


if __name__ == "__main__":
    unittest.main()
