"""The self-contained HTML report, checked in Python and in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src.account.pricetag import PriceTag, TrialCost

B, K, H, N = 32, 64, 256, 10


def mlp(w1, w2, x):
  with jax.named_scope("dense1"):
    h = jnp.tanh(x @ w1)
  return jnp.sum(h @ w2)


ARGS = (jax.ShapeDtypeStruct((K, H), jnp.float32), jax.ShapeDtypeStruct((H, N), jnp.float32),
        jax.ShapeDtypeStruct((B, K), jnp.float32))


def _tag() -> PriceTag:
  trial = TrialCost(id="t1", experiment="demo", name="lr=0.1", hparams={"lr": 0.1},
                    status="completed", train_steps=10, train_examples=640,
                    train_fpo=6_400_000, eval_steps=0, eval_examples=0, eval_fpo=0,
                    wall_s=2.0, device_kind="cpu", device_count=1, exact=True,
                    energy_j=None, energy_source=None)
  return PriceTag("demo", (trial,))


BUDGET = [{"n_trials": n, "budget_fpo": n * 1000, "expected": 0.5 + 0.1 * n, "std": 0.01,
           "lower": 0.49 + 0.1 * n, "upper": 0.51 + 0.1 * n, "metric": "acc", "mode": "max"}
          for n in (1, 2, 3)]
TRAINING = [{"trial_id": t, "step": s, "train_fpo": 100 * s, "metric": "loss",
             "value": 1.0 / (s + 1)} for t in ("a", "b") for s in range(4)]


@pytest.fixture(scope="module")
def results():
  cost = jaxgreen.count(jax.jit(mlp))(*ARGS)
  rec = jaxgreen.reconcile(mlp, targets=["cpu"], progress=False)(*ARGS)
  cmp = jaxgreen.compare(mlp, targets=["cpu"], progress=False, by_module=True)(*ARGS)
  return cost, rec, cmp


def _page(results) -> str:
  cost, rec, cmp = results
  return jaxgreen.report_html(cost, rec, cmp, _tag(), BUDGET, TRAINING, title="MLP <report>")


def test_page_is_self_contained_and_exact(results):
  cost, rec, cmp = results
  page = _page(results)
  assert "http://" not in page and "https://" not in page and "<link" not in page
  assert "Content-Security-Policy" in page and "default-src 'none'" in page
  assert f'id="total-fpo" data-v="{cost.fpo}">{cost.fpo:,}<' in page
  assert "MLP &lt;report&gt;" in page  # the title is escaped
  xla = rec["cpu"].xla.flops
  assert f"{int(xla):,}" in page  # the waterfall ends at XLA's flops
  for cause, v in rec["cpu"].causes.items():
    if v:
      assert f"{-int(v):,}" in page, cause  # one step per named cause
  assert "6,400,000" in page and "Budget curve" in page and "Training curves" in page
  dense = cmp.modules().row("cpu", "dense1")
  assert "Modules on the pod" in page and f"<td>dense1</td>{_cell(dense.global_fpo)}" in page
  top = next(iter(cost.by_source))
  assert f"{os.path.basename(__file__)}:{top.split(':')[-2]}:mlp" in page


def _cell(v: int) -> str:
  return f'<td class="n" data-v="{v}">{v:,}</td>'


def test_to_html_writes_the_file(results, tmp_path):
  cost = results[0]
  path = tmp_path / "cost.html"
  page = cost.to_html(str(path), title="one cost")
  assert path.read_text() == page and page.count("<section>") == 1


def test_bad_input_names_the_fix():
  with pytest.raises(TypeError, match="Cost, a Reconciliation"):
    jaxgreen.report_html(42)
  with pytest.raises(ValueError, match="at least one result"):
    jaxgreen.report_html()


# -- a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); CI "
                             "installs it")


def _chromium_dom(path: str) -> tuple[str, str]:
  """(the DOM after the load event, the browser's log) of a local page, headless."""
  with tempfile.TemporaryDirectory() as profile:
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", f"file://{os.path.abspath(path)}"],
        capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  return r.stdout, r.stderr


def _console(log: str) -> list[str]:
  return [ln for ln in log.splitlines() if "CONSOLE" in ln]


@needs_chromium
def test_the_harness_sees_errors_and_fetches(tmp_path):
  """A page with a script error and a remote image: both must show, or the check below
  could pass on a broken page."""
  page = jaxgreen.report_html(jaxgreen.Cost(adds=1))
  bad = page.replace("</body>", '<img src="https://example.invalid/x.png">'
                                "<script>notDefined()</script></body>")
  path = tmp_path / "bad.html"
  path.write_text(bad)
  dom, log = _chromium_dom(str(path))
  errors = re.search(r'data-errors="([^"]*)"', dom)
  assert errors and "notDefined" in errors.group(1) and "blocked" in errors.group(1)
  assert any("Uncaught" in ln for ln in _console(log))


@needs_chromium
def test_report_renders_in_chromium(results, tmp_path):
  cost, rec, _ = results
  path = tmp_path / "report.html"
  path.write_text(_page(results))
  dom, log = _chromium_dom(str(path))
  assert _console(log) == []  # no console message at all: no error, no blocked fetch
  html_tag = re.search(r"<html[^>]*>", dom).group(0)
  assert "data-errors" not in html_tag  # no script error, no blocked fetch
  # the load handler ran: cost, reconciliation, comparison and its modules, price tag,
  # budget and training curves
  assert 'data-rendered="7"' in html_tag
  fpo = re.search(r'id="total-fpo"[^>]*>([^<]*)<', dom)
  assert fpo and fpo.group(1) == f"{cost.fpo:,}"
  for key in ("adds", "muls", "transcendentals", "bytes"):
    m = re.search(rf'id="total-{key}"[^>]*>([^<]*)<', dom)
    assert m and m.group(1) == f"{getattr(cost, key):,}", key
  assert f"{int(rec['cpu'].xla.flops):,}" in dom
  assert dom.count("<rect") >= 4  # the icicles were drawn
