"""The FPO guard as another project uses it: the pytest plugin, installed, and
``jaxgreen check`` on the same baseline.

A small project (a Flax model whose blocks are rematerialised, and one test pinning its
train step's FPO) is written to a temporary folder and tested in fresh pytest processes,
which load the plugin through its ``pytest11`` entry point exactly as a user's would.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

MODEL = textwrap.dedent('''
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    REMAT = True


    class Block(nn.Module):
      width: int

      @nn.compact
      def __call__(self, x):
        return x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(x)))


    class Model(nn.Module):
      @nn.compact
      def __call__(self, x):
        block = nn.remat(Block) if REMAT else Block
        for i in range(2):
          x = block(16, name=f"block{i}")(x)
        return nn.Dense(10, name="head")(x)


    model = Model()
    params = model.init(jax.random.key(0), jnp.zeros((4, 16)))


    def train_step(x, y):
      def loss(p):
        logits = model.apply(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return jax.grad(loss)(params)
''')

TEST = textwrap.dedent('''
    import jax
    import jax.numpy as jnp

    from model import train_step


    def test_train_step_fpo(fpo_snapshot):
      fpo_snapshot(train_step, jax.ShapeDtypeStruct((4, 16), jnp.float32),
                   jax.ShapeDtypeStruct((4,), jnp.int32))
''')

ENTRY = "test_train_step_fpo"


def _run(cwd, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=600)


def _pytest(cwd, *args):
  return _run(cwd, "-m", "pytest", "-p", "no:cacheprovider", "-W",
              "default::UserWarning", *args)


def _check(cwd, *args):
  return _run(cwd, "-m", "jaxgreen", "check", "test_model.fpo.json", "model.py:train_step",
              "--arg", "f32[4,16]", "--arg", "s32[4]", "--entry", ENTRY, *args)


def test_baseline_fails_on_a_model_change_and_passes_after_update(tmp_path):
  (tmp_path / "model.py").write_text(MODEL)
  (tmp_path / "test_model.py").write_text(TEST)
  baseline = tmp_path / "test_model.fpo.json"

  first = _pytest(tmp_path)  # records the baseline next to the test, and passes
  assert first.returncode == 0, first.stdout + first.stderr
  assert "FPO baseline recorded: test_train_step_fpo" in first.stdout
  recorded = json.loads(baseline.read_text())["entries"][ENTRY]
  assert recorded["by_scope"]["Model/block0/Dense_0"] > 0

  again = _pytest(tmp_path)
  assert again.returncode == 0 and "baseline recorded" not in again.stdout

  # A one-line change: the blocks are no longer rematerialised, so the backward pass no
  # longer recomputes their forward. The failure names the blocks' scopes.
  (tmp_path / "model.py").write_text(MODEL.replace("REMAT = True", "REMAT = False"))
  changed = _pytest(tmp_path)
  assert changed.returncode == 1
  out = changed.stdout
  assert "test_train_step_fpo: FPO changed:" in out
  # (Flax names the outer Dense first: Dense_1 is the 16 -> 64 layer, recomputed.)
  assert "Model/block0/Dense_1" in out and "Model/block1/Dense_1" in out
  # ... and the line: the block's forward, no longer recomputed in the backward pass
  block = 1 + MODEL.splitlines().index("    return x + nn.Dense(self.width)(nn.gelu(nn.Dense("
                                       "4 * self.width)(x)))")
  assert f"model.py:{block}:Block.__call__: this line's FPO" in out
  assert "pytest --jaxgreen-update" in out
  cli = _check(tmp_path, "--markdown")  # the same verdict on the command line
  assert cli.returncode == 1, cli.stderr
  assert cli.stdout.startswith("**FPO changed:") and "| Model/block0/Dense_1 |" in cli.stdout

  updated = _pytest(tmp_path, "--jaxgreen-update")
  assert updated.returncode == 0 and "FPO baseline updated" in updated.stdout
  new = json.loads(baseline.read_text())["entries"][ENTRY]
  assert new["fpo"] < recorded["fpo"]  # the recomputed forward is gone
  assert _pytest(tmp_path).returncode == 0
  assert _check(tmp_path).returncode == 0


def test_check_without_an_entry_says_how_to_name_one(tmp_path):
  (tmp_path / "model.py").write_text(MODEL)
  (tmp_path / "test_model.fpo.json").write_text(
      '{"entries": {"a": {"fpo": 1}, "b": {"fpo": 2}}, "format": "jaxgreen-fpo-baseline/1"}')
  r = _run(tmp_path, "-m", "jaxgreen", "check", "test_model.fpo.json", "model.py:train_step",
           "--arg", "f32[4,16]", "--arg", "s32[4]")
  assert r.returncode == 2
  assert "has no entry 'model.py:train_step' (entries: a, b); pass --entry NAME" in r.stderr


def test_plugin_is_inert_until_used():
  # Loading the plugin imports neither jaxgreen's counters nor jax (the jaxgreen modules
  # that an opted-in environment's jaxgreen-quiet-jax.pth loads at start are there before).
  r = _run(".", "-c", "import sys; before = set(sys.modules); import jaxgreen_pytest; "
                      "print(sorted(m for m in set(sys.modules) - before "
                      "if m.split('.')[0] in ('jax', 'jaxgreen')))")
  assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
