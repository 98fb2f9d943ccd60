"""Test configuration: the CPU platform only, and a PostgreSQL server for the ledger.

GPU targets compile deviceless and need jax's platform to be "cpu" before any backend
starts. pytest imports jaxgreen (hence jax) to resolve the warning filters in
pyproject.toml before this file runs, so the environment variable alone can come too
late: the config is also set here, at collection, before any test starts a backend.

``postgres_url`` (the shared-ledger tests) is a fresh database on
``$JAXGREEN_TEST_POSTGRES`` (a URL whose user may create databases), or, when that is
unset, on a throwaway server started for the session from the PostgreSQL found under
``/usr/lib/postgresql/*/bin`` (as the ``postgres`` user when run as root), listening on
127.0.0.1 on a free port and removed at the end. With neither, the tests that need it
are skipped, or fail when ``JAXGREEN_REQUIRE_POSTGRES=1`` (CI).
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

# The tests count the bundled benchmark and example programs (`benchmarks.zoo`,
# `examples`): the repository root is importable, but after site-packages, so `jaxgreen`
# itself is the installed package under test, not the source tree.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# jaxgreen's compilation cache: never the user's own cache folder.
import tempfile  # noqa: E402

os.environ.setdefault("JAXGREEN_CACHE_DIR", tempfile.mkdtemp(prefix="jaxgreen-test-cache-"))

import jax  # noqa: E402
from jax._src import xla_bridge  # noqa: E402

if not xla_bridge._backends:
  jax.config.update("jax_platforms", "cpu")


import pytest  # noqa: E402


class _LoweredText:
  """A stand-in for ``jax.stages.Lowered`` holding hand-written StableHLO."""

  def __init__(self, text):
    self.text = text

  def compiler_ir(self, dialect="stablehlo"):
    from jax._src.interpreters import mlir
    from jaxlib.mlir import ir

    return ir.Module.parse(self.text, context=mlir.make_ir_context())


@pytest.fixture
def lowered_text():
  """Hand-written StableHLO text -> an object ``count_lowered`` takes like a Lowered."""
  return _LoweredText


# -- a PostgreSQL server ---------------------------------------------------------------

_HOW = ("set JAXGREEN_TEST_POSTGRES=postgresql://user@host:port/db (a user that may "
        "create databases), or install PostgreSQL (apt-get install postgresql) so a "
        "throwaway server is started")


def _unavailable(why: str) -> None:
  if os.environ.get("JAXGREEN_REQUIRE_POSTGRES") == "1":
    pytest.fail(f"JAXGREEN_REQUIRE_POSTGRES=1 but {why}; {_HOW}")
  pytest.skip(f"{why}; {_HOW}")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _as_postgres(args: list[str], **kw) -> subprocess.CompletedProcess:
  """Runs a server binary as the ``postgres`` user when we are root (initdb and
  postgres refuse to run as root)."""
  if os.geteuid() == 0:
    args = ["runuser", "-u", "postgres", "--", *args]
  return subprocess.run(args, check=True, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
  """The URL of a PostgreSQL server's maintenance database."""
  try:
    import psycopg  # noqa: F401
  except ImportError:
    _unavailable("psycopg is not installed (pip install 'jaxgreen[postgres]')")
  url = os.environ.get("JAXGREEN_TEST_POSTGRES")
  if url:
    yield url
    return
  found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
  if not found:
    _unavailable("no PostgreSQL server to test against")
  bin_dir = Path(found[-1]).parent
  root = Path(tempfile.mkdtemp(prefix="jaxgreen-pg-"))
  if os.geteuid() == 0:
    shutil.chown(root, "postgres", "postgres")
  data, port = root / "data", _free_port()
  try:
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync"])
    _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                  "-t", "60", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                                    f"-c fsync=off", "start"])
  except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
    shutil.rmtree(root, ignore_errors=True)
    _unavailable(f"the throwaway PostgreSQL server did not start "
                 f"({getattr(e, 'stderr', '') or e})")
  try:
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
  finally:
    subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                   + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
  """A fresh database on the test server (dropped after the test)."""
  import psycopg

  name = f"jg_{uuid.uuid4().hex[:12]}"
  with psycopg.connect(postgres_server, autocommit=True, connect_timeout=30) as admin:
    admin.execute(f'CREATE DATABASE "{name}"')
  parts = urllib.parse.urlsplit(postgres_server)
  yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
  with psycopg.connect(postgres_server, autocommit=True, connect_timeout=30) as admin:
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the tests an install skipped ------------------------------------------------------
# With JAXGREEN_SKIPPED_LOG=path, the node id of every test (or test file) that skips is
# appended to that file: CI's every-extra install runs exactly the tests that the plain
# install skipped for want of an extra (.ci/run).


def _log_skipped(report) -> None:
  path = os.environ.get("JAXGREEN_SKIPPED_LOG")
  if path and report.skipped and report.nodeid.startswith("tests/"):
    with open(path, "a") as f:
      f.write(report.nodeid + "\n")


def pytest_runtest_logreport(report) -> None:
  _log_skipped(report)


def pytest_collectreport(report) -> None:
  _log_skipped(report)


@pytest.fixture(scope="session")
def rolled_threefry():
  """``rolled_threefry(fn, *args)``: whether jax writes ``fn``'s Threefry inline as a
  rolled while loop (jax 0.12.1 on the CPU) rather than as a ``threefry2x32`` function,
  which the HLO stages count by its formula."""
  import jax

  def rolled(fn, *args) -> bool:
    text = jax.jit(fn).lower(*args).as_text()
    return "@threefry2x32(" not in text and "stablehlo.while" in text

  return rolled


@pytest.fixture
def gpu_targets():
  """Skips a test that compiles for ``gpu:*`` targets when the gpu extra's CUDA plugin is
  missing or is not the installed jaxlib's release (the reason says how to get one)."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)
