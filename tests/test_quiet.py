"""Start-up noise of the TPU and CUDA plugins stays off the terminal; real errors do not."""

from __future__ import annotations

import os
import site
import subprocess
import sys

import pytest

# A plain jax program: it never imports jaxgreen.
PLAIN_JAX = ("import jax, jax.numpy as jnp\n"
             "print(float(jnp.ones(3).sum()), jax.default_backend())\n")


def _run(code, **env):
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"} | env
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=env, timeout=180, cwd=os.path.dirname(__file__))


def _opted_in() -> bool:
  """Whether this environment ran ``jaxgreen quiet-jax --install``."""
  from jaxgreen._src.cli.quiet_jax import FILE

  return any(os.path.exists(os.path.join(p, FILE))
             for p in [*site.getsitepackages(), site.getusersitepackages()])


@pytest.mark.skipif(_opted_in(), reason="this environment opted in to the quiet start-up "
                                        "(jaxgreen quiet-jax --install)")
def test_nothing_of_jaxgreen_runs_at_interpreter_start():
  # jaxgreen is importable here (installed, or on PYTHONPATH), yet a fresh interpreter
  # that imports jax neither imports it nor carries its import hook.
  code = ("import importlib.util, sys, jax\n"
          "print(importlib.util.find_spec('jaxgreen') is not None, 'jaxgreen' in sys.modules,"
          " any(type(f).__name__ == '_JaxImportHook' for f in sys.meta_path))\n")
  out = _run(code)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["True", "False", "False"]


def test_the_installed_distribution_has_no_startup_file():
  from importlib import metadata

  try:
    files = metadata.files("jaxgreen") or []
  except metadata.PackageNotFoundError:
    pytest.skip("jaxgreen is not installed (run from the sources on PYTHONPATH): no "
                "distribution to inspect")
  # Only the installer's own editable-install .pth files (__editable__...) may be there.
  assert [str(f) for f in files if f.name.endswith(".pth")
          and not f.name.startswith("__editable__")] == []


def _quiet_jax(*args):
  from jaxgreen._src.cli import main

  return main(["quiet-jax", *args])


def _with_site(folder, code):
  """``code`` in a fresh interpreter that reads ``folder``'s .pth files first, as
  site-packages' are read at start-up."""
  return _run(f"import site; site.addsitedir({str(folder)!r})\n" + code)


def test_quiet_jax_installs_one_line_that_quiets_plain_jax_and_removes_it(tmp_path, capsys):
  from jaxgreen._src.cli.quiet_jax import FILE, LINE

  assert _quiet_jax("--install", "--site-packages", str(tmp_path)) == 0
  path = tmp_path / FILE
  said = capsys.readouterr().out
  assert f"wrote {path}" in said and LINE in said
  code_lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
  assert code_lines == [LINE]
  assert _quiet_jax("--install", "--site-packages", str(tmp_path)) == 0  # idempotent
  assert capsys.readouterr().out.strip() == f"already installed: {path}"
  assert [p.name for p in tmp_path.iterdir()] == [FILE]
  assert _quiet_jax("--site-packages", str(tmp_path)) == 0
  assert capsys.readouterr().out.strip() == f"installed: {path}"

  # The line imports jaxgreen (no jax) at start-up; a plain jax program is then quiet.
  seen = _with_site(tmp_path, "import sys; print('jaxgreen' in sys.modules, 'jax' in sys.modules)")
  assert seen.stdout.split() == ["True", "False"], seen.stderr[-2000:]
  out = _with_site(tmp_path, PLAIN_JAX)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["3.0", "cpu"] and out.stderr == ""

  assert _quiet_jax("--uninstall", "--site-packages", str(tmp_path)) == 0
  assert capsys.readouterr().out.strip() == f"removed {path}"
  assert list(tmp_path.iterdir()) == []
  assert _quiet_jax("--uninstall", "--site-packages", str(tmp_path)) == 0  # idempotent
  assert capsys.readouterr().out.strip() == f"not installed, nothing to remove: {path}"


def test_the_startup_line_survives_an_uninstalled_jaxgreen(tmp_path):
  from jaxgreen._src.cli.quiet_jax import LINE

  # The line left behind after `pip uninstall jaxgreen`: the interpreter still starts.
  (tmp_path / "leftover.pth").write_text(LINE.replace("import jaxgreen",
                                                      "import jaxgreen_not_installed") + "\n")
  out = _with_site(tmp_path, "print('started')")
  assert out.returncode == 0 and out.stdout.strip() == "started", out.stderr[-2000:]


def test_quiet_jax_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch, capsys):
  import pathlib

  def refuse(self, *a, **kw):
    raise PermissionError(13, "Permission denied", str(self))

  monkeypatch.setattr(pathlib.Path, "write_text", refuse)
  assert _quiet_jax("--install", "--site-packages", str(tmp_path)) == 2
  err = capsys.readouterr().err
  assert err.startswith("jaxgreen quiet-jax: error: cannot write ")
  assert "Permission denied" in err and "--site-packages" in err
  assert list(tmp_path.iterdir()) == []
  assert _quiet_jax("--install", "--site-packages", str(tmp_path / "missing")) == 2
  assert "is not a folder" in capsys.readouterr().err


def test_jax_imported_after_jaxgreen_is_quiet():
  out = _run("import jaxgreen\n" + PLAIN_JAX)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["3.0", "cpu"] and out.stderr == ""


def test_importing_jaxgreen_imports_no_jax():
  out = _run("import sys, jaxgreen; print('jax' in sys.modules)")
  assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_importing_jaxgreen_keeps_plugin_noise_off_stderr():
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  code = ("import jaxgreen, jax, jax.numpy as jnp\n"
          "print(float(jnp.ones(3).sum()), jax.default_backend())\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["3.0", "cpu"]
  assert out.stderr == ""


def test_plugin_log_is_dropped_only_without_the_hardware(monkeypatch):
  import logging

  from jaxgreen._src import _quiet

  rec = logging.LogRecord("jax._src.xla_bridge", logging.ERROR, __file__, 1,
                          "Jax plugin configuration error: Exception when calling %s",
                          ("jax_plugins.xla_cuda12.initialize()",), None)
  other = logging.LogRecord("jax._src.xla_bridge", logging.WARNING, __file__, 1,
                            "something else", (), None)
  monkeypatch.setattr(_quiet, "hardware_present", lambda platform: False)
  assert not _quiet._filter.filter(rec)
  assert _quiet._filter.filter(other)
  monkeypatch.setattr(_quiet, "hardware_present", lambda platform: True)
  assert _quiet._filter.filter(rec)  # with a driver, a failing plugin is news


def test_pytest_sessions_of_an_opted_in_environment_get_no_rewrite_warning(tmp_path):
  # With the opt-in line, jaxgreen is imported at interpreter start, before pytest marks
  # the modules of its plugin's distribution for assertion rewriting: no warning.
  from jaxgreen._src.cli.quiet_jax import FILE, LINE

  site_dir = tmp_path / "site"
  site_dir.mkdir()
  (site_dir / FILE).write_text(LINE + "\n")
  (tmp_path / "test_one.py").write_text("def test_one():\n  assert True\n")
  out = _with_site(site_dir, "import sys, pytest\nassert 'jaxgreen' in sys.modules\n"
                             "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
                             f"{str(tmp_path / 'test_one.py')!r}]))\n")
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  assert "cannot be rewritten" not in out.stdout + out.stderr
  assert "1 passed in" in out.stdout
