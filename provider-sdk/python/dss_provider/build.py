"""Builds a Python provider into a component, in one command::

    python3 -m dss_provider.build APP_DIR [-o NAME.wasm] [--module app]

(``provider-sdk/python/build.sh`` runs it with the SDK on the path.) The
app directory holds the app module (``app.py`` by default) that binds
``Provider = dss_provider.export(...)``; the component is written to
``APP_DIR/<dir name>.wasm`` unless ``-o`` says otherwise, atomically (a
temporary file renamed), so a host watching the directory never sees half
a file.

componentize-py is looked for in ``$COMPONENTIZE_PY``, on ``PATH``, then
in ``target/python-tools/bin`` of the DSS repository this SDK is in
(``scripts/python-tools.sh`` installs it there). The WIT is the
repository's ``provider-sdk/wit`` (``--wit`` to override).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

#: provider-sdk/python
SDK_PYTHON = Path(__file__).resolve().parent.parent
#: provider-sdk
SDK = SDK_PYTHON.parent
WORLD = "dss-provider"
#: The componentize-py version this SDK is tested with.
COMPONENTIZE_PY_VERSION = "0.25.1"


def find_componentize_py() -> Optional[str]:
    """The componentize-py to run, or None."""
    env = os.environ.get("COMPONENTIZE_PY")
    if env:
        return env
    found = shutil.which("componentize-py")
    if found:
        return found
    local = SDK.parent / "target" / "python-tools" / "bin" / "componentize-py"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return None


def build(
    app_dir: Path,
    output: Optional[Path] = None,
    module: str = "app",
    wit: Optional[Path] = None,
    python_path: Optional[List[Path]] = None,
    quiet: bool = False,
) -> Path:
    """Builds ``app_dir`` into a component and returns its path; raises
    ``RuntimeError`` with a message on failure."""
    app_dir = app_dir.resolve()
    if not (app_dir / f"{module}.py").is_file() and not (app_dir / module / "__init__.py").is_file():
        raise RuntimeError(f"{app_dir}: no {module}.py (the app module) in it")
    if module in ("wit_world", "componentize_py_types", "componentize_py_runtime", "dss_provider"):
        raise RuntimeError(f"the app module cannot be named {module!r}")
    wit = (wit or SDK / "wit").resolve()
    if not wit.is_dir():
        raise RuntimeError(f"{wit}: the WIT directory does not exist")
    tool = find_componentize_py()
    if tool is None:
        raise RuntimeError(
            "componentize-py not found: run scripts/python-tools.sh in the DSS repository "
            f"(installs componentize-py=={COMPONENTIZE_PY_VERSION} into target/python-tools), "
            "or put componentize-py on PATH, or set COMPONENTIZE_PY"
        )
    output = (output or app_dir / f"{app_dir.name}.wasm").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    paths = [app_dir, SDK_PYTHON, *(python_path or [])]
    cmd = [tool, "-d", str(wit), "-w", WORLD, "componentize"]
    for p in paths:
        cmd += ["-p", str(Path(p).resolve())]
    cmd += [module, "-o", str(tmp)]
    env = dict(os.environ)
    # componentize-py adds $VIRTUAL_ENV's site-packages to the path: the
    # component should hold the app and the SDK, not the build tools.
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    try:
        try:
            proc = subprocess.run(cmd, env=env, cwd=app_dir, capture_output=True, text=True)
        except OSError as e:
            raise RuntimeError(f"running {tool}: {e}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise RuntimeError(f"componentize-py failed (exit {proc.returncode}):\n{_trim(detail)}")
        unknown = check_imports(tmp)
        if unknown:
            raise RuntimeError(
                "the component imports what the DSS host does not provide: " + ", ".join(unknown)
            )
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    if not quiet:
        size = output.stat().st_size / 1e6
        took = time.monotonic() - started
        print(f"built {output} ({size:.1f} MB) in {took:.1f} s", file=sys.stderr)
    return output


#: What the DSS host links: WASI 0.2 (with nothing granted) and the
#: provider interfaces. A component importing anything else is refused.
ALLOWED_IMPORTS = (
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "dss:provider/host@",
    "dss:provider/types@",
)


def component_imports(path: Path) -> List[str]:
    """The names a component imports (its top-level import section)."""
    data = path.read_bytes()
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        raise RuntimeError(f"{path}: not a WebAssembly component")
    names: List[str] = []
    pos = 8

    def leb(p: int) -> "tuple[int, int]":
        result = shift = 0
        while True:
            b = data[p]
            p += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, p

    def name(p: int) -> "tuple[str, int]":
        n, p = leb(p)
        return data[p : p + n].decode("utf-8"), p + n

    while pos < len(data):
        section = data[pos]
        size, body = leb(pos + 1)
        end = body + size
        if section == 10:  # import section
            count, p = leb(body)
            for _ in range(count):
                kind = data[p]
                text, p = name(p + 1)
                if kind == 0x01:  # a version suffix follows
                    _, p = name(p)
                names.append(text)
                desc = data[p]
                p += 1
                if desc == 0x00:  # core module: 0x11 typeidx
                    _, p = leb(p + 1)
                elif desc in (0x02, 0x03):  # value or type bound: tag, index/type
                    if data[p] == 0x01 and desc == 0x03:  # (sub resource)
                        p += 1
                    else:
                        _, p = leb(p + 1)
                else:  # func, component, instance: typeidx
                    _, p = leb(p)
        pos = end
    return names


def check_imports(path: Path) -> List[str]:
    """The imports of the component at ``path`` that the host does not
    link (empty when it only imports what the host provides)."""
    return [n for n in component_imports(path) if not n.startswith(ALLOWED_IMPORTS)]


def _trim(text: str) -> str:
    """componentize-py wraps its errors in a traceback of its own and
    appends a Rust backtrace: keep the message."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Stack backtrace:":
            lines = lines[:i]
            break
    text = "\n".join(lines).strip()
    marker = "AssertionError: "
    if text.startswith("Traceback") and marker in text:
        text = text[text.index(marker) + len(marker) :]
    if "has no attribute 'Provider'" in text:
        text += "\n(the app module must bind Provider = dss_provider.export(YourProvider))"
    return text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m dss_provider.build",
        description="Builds a Python DSS provider into a WebAssembly component.",
    )
    parser.add_argument("app_dir", type=Path, nargs="?", default=Path("."), help="the app directory (default: .)")
    parser.add_argument("-o", "--output", type=Path, help="the component (default: APP_DIR/<dir name>.wasm)")
    parser.add_argument("-m", "--module", default="app", help="the app module (default: app)")
    parser.add_argument("--wit", type=Path, help=f"the WIT directory (default: {SDK / 'wit'})")
    parser.add_argument(
        "-p",
        "--python-path",
        type=Path,
        action="append",
        default=[],
        help="another directory of pure-Python modules to include (repeatable)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    args = parser.parse_args(argv)
    try:
        build(args.app_dir, args.output, args.module, args.wit, args.python_path, args.quiet)
    except RuntimeError as e:
        print(f"build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
