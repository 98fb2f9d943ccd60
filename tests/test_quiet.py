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
                        env=env, timeout=180)


def _startup_file_installed() -> bool:
  return any(os.path.exists(os.path.join(p, "jaxgreen-startup.pth"))
             for p in [*site.getsitepackages(), site.getusersitepackages()])


# The wheel installs jaxgreen-startup.pth into site-packages; an editable install of the
# sources does not, and there only `import jaxgreen` (first or not) quiets jax.
needs_startup_file = pytest.mark.skipif(
    not _startup_file_installed(),
    reason="jaxgreen-startup.pth is not installed here (an editable install); the wheel "
           "installs it")


@needs_startup_file
def test_a_plain_jax_program_is_quiet_and_keeps_its_backend():
  out = _run(PLAIN_JAX)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["3.0", "cpu"]
  assert out.stderr == ""


@needs_startup_file
def test_the_startup_file_imports_no_jax_and_can_be_turned_off():
  code = "import sys; print('jax' in sys.modules, 'jaxgreen' in sys.modules)"
  assert _run(code).stdout.split() == ["False", "True"]
  hook = ("import sys; print(any(type(f).__name__ == '_JaxImportHook' "
          "for f in sys.meta_path))")
  assert _run(hook).stdout.strip() == "True"
  assert _run(hook, JAXGREEN_QUIET="0").stdout.strip() == "False"


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

  from jaxgreen import _quiet

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


@needs_startup_file
def test_pytest_sessions_of_the_environment_get_no_rewrite_warning(tmp_path):
  # jaxgreen is imported at interpreter start, before pytest marks the modules of its
  # plugin's distribution for assertion rewriting: that must not warn in every session.
  (tmp_path / "test_one.py").write_text("def test_one():\n  assert True\n")
  out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path)], capture_output=True, text=True, timeout=180,
                       cwd=tmp_path)
  assert out.returncode == 0, out.stdout[-2000:]
  assert "cannot be rewritten" not in out.stdout + out.stderr
  assert "1 passed in" in out.stdout
