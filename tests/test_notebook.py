"""A real notebook, executed headless in a fresh kernel: every result object jaxgreen
returns displays as HTML and every figure as a PNG, with no magic (no ``%matplotlib``).

The kernel is the ``python3`` kernel of this interpreter (ipykernel), started by
nbclient; nothing but the notebook's own cells runs in it.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat", reason="the [dev] extra's nbformat runs notebooks")
nbclient = pytest.importorskip("nbclient", reason="the [dev] extra's nbclient runs notebooks")
pytest.importorskip("ipykernel", reason="the [dev] extra's ipykernel is the notebook's kernel")
pytest.importorskip("matplotlib", reason="figures need the [plot] extra")

# (cell source, the MIME type its displayed result must have). No cell uses a magic.
SETUP = """
import json, sys, tempfile, os
import jax, jax.numpy as jnp, flax.linen as nn, optax
import jaxgreen, jaxgreen.flax
from jaxgreen import curves
x = jax.ShapeDtypeStruct((8, 32), jnp.float32)
model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(4)])
variables = jax.eval_shape(model.init, jax.random.key(0), x)
def loss(v, x):
  return jnp.sum(model.apply(v, x) ** 2)
"""
EXPERIMENT = """
ledger = os.path.join(tempfile.mkdtemp(), "nb.sqlite")
params = model.init(jax.random.key(0), jnp.ones((8, 32)))
opt = optax.sgd(0.1)

@jaxgreen.track(examples=8)
@jax.jit
def step(p, s, batch):
  g = jax.grad(loss)(p, batch)
  u, s = opt.update(g, s)
  return optax.apply_updates(p, u), s

exp = jaxgreen.Experiment("nb", ledger=ledger)
for lr in (0.1, 0.01):
  with exp.trial({"lr": lr}) as trial:
    p, s = params, opt.init(params)
    for i in range(3):
      p, s = step(p, s, jnp.ones((8, 32)))
      trial.log(i, val_acc=0.5 + lr * i)
exp.flush()
"""
RESULTS = [
    ("cost = jaxgreen.count(loss)(variables, x)\ncost", "text/html"),
    ("summary = jaxgreen.flax.summary(model, x, backward=True)\nsummary", "text/html"),
    ("rec = jaxgreen.reconcile(loss, targets=['cpu'], progress=False)(variables, x)\nrec",
     "text/html"),
    ("rec['cpu']", "text/html"),
    ("cmp = jaxgreen.compare(loss, ['cpu'], by_module=True, progress=False)(variables, x)\n"
     "cmp", "text/html"),
    ("cmp.modules()", "text/html"),
    ("cmp['cpu']", "text/html"),
    ("exp.price_tag()", "text/html"),
    ("trial.throughput", "text/html"),
    ("crv = curves.plot(exp.ledger, metric='val_acc', experiment='nb')\ncrv", "text/html"),
    ("cmp.plot()", "image/png"),
    ("cmp.modules().plot()", "image/png"),
    ("crv.figure()", "image/png"),
    ("curves.budget_figure(crv.budget)", "image/png"),
]
CHECK = """
print(json.dumps({"pyplot": "matplotlib.pyplot" in sys.modules, "fpo": cost.fpo,
                  "python": sys.executable,
                  "summary_fpo": summary.totals["fpo"], "train_fpo": exp.price_tag().train_fpo}))
"""


def _notebook():
  cells = [nbformat.v4.new_code_cell(SETUP.strip()),
           nbformat.v4.new_code_cell(EXPERIMENT.strip())]
  cells += [nbformat.v4.new_code_cell(src) for src, _ in RESULTS]
  cells.append(nbformat.v4.new_code_cell(CHECK.strip()))
  return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.slow
def test_a_headless_notebook_shows_results_as_html_and_figures_as_png(tmp_path, monkeypatch):
  nb = _notebook()
  assert not any("%" in line.lstrip()[:1] for c in nb.cells for line in c.source.splitlines())
  monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user start-up files
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  # timeout: seconds per cell; startup_timeout: for the kernel to answer.
  client = nbclient.NotebookClient(nb, timeout=300, startup_timeout=120, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()

  got = {}
  for cell, (src, mime) in zip(nb.cells[2:], RESULTS, strict=False):
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, (src, errors)
    assert len(results) == 1, (src, cell.outputs)
    got[src] = results[0]["data"]
    assert mime in got[src], (src, sorted(got[src]))
  for src, data in got.items():
    text = data["text/plain"]
    assert len(text) < 400 or "\n" in text, (src, text)  # a table or a short line, no dump
  check = json.loads(nb.cells[-1].outputs[0]["text"])
  assert check["pyplot"] is False  # figures showed inline without pyplot
  # The views hold the exact totals.
  assert f"{check['fpo']:,}" in got[RESULTS[0][0]]["text/html"]
  assert f"{check['summary_fpo']:,}" in got[RESULTS[1][0]]["text/html"]
  assert f"{check['train_fpo']:,}" in got["exp.price_tag()"]["text/html"]
  assert got["cmp['cpu']"]["text/plain"].startswith("TargetResult(target='cpu'")
  for src, mime in RESULTS:
    if mime == "image/png":
      import base64

      assert base64.b64decode(got[src]["image/png"])[:4] == b"\x89PNG", src
  # The kernel ran this interpreter (ipykernel's own python3 kernel).
  assert os.path.realpath(check["python"]) == os.path.realpath(sys.executable)
