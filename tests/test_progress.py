"""Progress while targets compile: a status line on a terminal, quiet elsewhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxgreen

X = jax.ShapeDtypeStruct((8, 16), jnp.float32)


def _f(a):
  return jnp.tanh(a).sum()


def test_progress_is_a_status_line_on_a_terminal_and_quiet_otherwise():
  import io

  from jaxgreen._src.progress import progress_line

  class Tty(io.StringIO):
    def isatty(self):
      return True

  for stream, tty in ((Tty(), True), (io.StringIO(), False)):
    report, done = progress_line(stream)
    report("cpu", 0, 2)
    report("tpu:v5e:2x2", 1, 2)
    done()
    text = stream.getvalue()
    if tty:
      assert "compiling for cpu (1/2," in text
      assert "compiling for tpu:v5e:2x2 (2/2," in text and " - cpu " in text
      assert "\r\033[K" in text
      assert text.endswith("\r\033[K")  # the line is cleared at the end
    else:
      assert text == ""


def test_progress_argument_of_compare_and_reconcile(capsys):
  calls = []
  jaxgreen.compare(_f, ["cpu", "tpu:v5e:3x3"], progress=lambda *a: calls.append(a))(X)
  jaxgreen.reconcile(_f, targets=["cpu"], progress=False)(X)
  jaxgreen.reconcile(_f, targets=["cpu"])(X)  # default: a status line only on a terminal
  assert calls == [("cpu", 0, 2), ("tpu:v5e:3x3", 1, 2)]
  assert capsys.readouterr().err == ""
  with pytest.raises(TypeError, match="progress=3 must be"):
    jaxgreen.reconcile(_f, targets=["cpu"], progress=3)(X)
