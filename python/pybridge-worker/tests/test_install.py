"""The package as a user gets it: built into a wheel, installed with pip into
a fresh virtual environment, and imported by a worker written in another
directory, with nothing on PYTHONPATH.

The wheel is built offline (``pip wheel --no-build-isolation``) by the
interpreter in ``PYBRIDGE_BUILD_PYTHON``, which must import setuptools and
wheel; ``cargo xtask python`` prepares one under ``target/python/``.
"""

import glob
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120.0  # creating a virtual environment takes seconds; generous

MY_WORKER = '''
from pybridge_worker import Worker

worker = Worker("calc", "1.0.0")


@worker.method("calc.add", idempotent=True, cache="10m")
def add(a: int, b: int = 0) -> int:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    raise SystemExit(worker.main())
'''


def run(cmd, **kwargs):
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, **kwargs)
    if done.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (cmd, done.returncode, done.stdout.decode(errors="replace"),
                                                         done.stderr.decode(errors="replace")))
    return done


class TestInstall(unittest.TestCase):
    def test_pip_install_into_a_fresh_venv_and_import_from_elsewhere(self):
        builder = os.environ.get("PYBRIDGE_BUILD_PYTHON", sys.executable)
        probe = subprocess.run([builder, "-c", "import setuptools, wheel"], capture_output=True)
        self.assertEqual(probe.returncode, 0,
                         "%s cannot import setuptools and wheel: run the tests with `cargo xtask python`, which "
                         "prepares target/python/build-venv" % builder)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with tempfile.TemporaryDirectory(prefix="pybridge-install-") as tmp:
            wheels = os.path.join(tmp, "wheels")
            run([builder, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-build-isolation",
                 "--no-deps", "--no-index", "--wheel-dir", wheels, PACKAGE], env=env, cwd=tmp)
            (wheel,) = glob.glob(os.path.join(wheels, "pybridge_worker-*.whl"))
            self.assertIn("pybridge_worker-0.1.0-", os.path.basename(wheel))

            venv = os.path.join(tmp, "venv")
            run([sys.executable, "-m", "venv", venv], env=env)
            python = os.path.join(venv, "bin", "python")
            run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", wheel],
                env=env)

            elsewhere = os.path.join(tmp, "my-project")
            os.mkdir(elsewhere)
            script = os.path.join(elsewhere, "my_worker.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent(MY_WORKER))
            where = run([python, "-c", "import os, pybridge_worker; d = os.path.dirname(pybridge_worker.__file__);"
                         "print(d); print(os.path.exists(os.path.join(d, 'py.typed')))"], env=env, cwd=elsewhere)
            location, typed = where.stdout.decode().split()
            self.assertTrue(location.startswith(venv), location)
            self.assertEqual(typed, "True")

            # stdin stays open until the answer is read: EOF would cancel the
            # call (its answer would go nowhere).
            worker = subprocess.Popen([python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=env, cwd=elsewhere)
            try:
                ready = json.loads(worker.stdout.readline())
                worker.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"calc.add","params":{"a":2,"b":3}}\n')
                worker.stdin.flush()
                answer = json.loads(worker.stdout.readline())
            finally:
                worker.stdin.close()
                self.assertEqual(worker.wait(timeout=TIMEOUT), 0)
                worker.stdout.close()
                worker.stderr.close()
            self.assertEqual(ready["method"], "$/ready")
            (add,) = ready["params"]["methods"]
            self.assertEqual(add["description"], "Add two numbers.")
            self.assertEqual(add["cache_ttl_ms"], 600000)
            self.assertEqual(answer, {"jsonrpc": "2.0", "id": 1, "result": 5})

            demo = run([python, "-m", "pybridge_worker", "--handshake", "ready-line"], input=b"", env=env,
                       cwd=elsewhere)
            self.assertEqual(demo.stdout, b"READY\n")


if __name__ == "__main__":
    unittest.main()
