"""The built documentation site, rendered in headless Chromium, as a reader sees it.

Run after building the site (``sphinx-build -W -b html docs docs/_build/html``); CI does
both in its documentation block. Each page is loaded from ``file://`` with its scripts
run (``--dump-dom``, with a virtual-time budget so the search page's script finishes),
and the rendered DOM is checked for content a reader needs: the landing page's links,
a tutorial's executed output, and the site search's first hit for the FAQ question.

Skipped, with the reason, when Debian's ``chromium`` is not installed
(``apt-get install chromium``) or the site has not been built. Set
``JAXGREEN_DOCS_HTML`` to check a site built elsewhere.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("JAXGREEN_DOCS_HTML", ROOT / "docs" / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAQ_QUESTION = "Why does jaxgreen count my scan 10× more than cost_analysis?"

pytestmark = pytest.mark.skipif(not (SITE / "index.html").is_file(),
                                reason=f"the documentation is not built at {SITE} "
                                       "(sphinx-build -W -b html docs docs/_build/html)")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def render(page: str, query: str = "") -> str:
  """The DOM of ``page`` after Chromium ran its scripts; ``query`` is its URL query."""
  url = (SITE / page).as_uri() + (f"?{query}" if query else "")
  with tempfile.TemporaryDirectory() as profile:
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]
  assert "<html" in run.stdout, f"Chromium rendered nothing for {url}: {run.stderr[-2000:]}"
  return run.stdout


def text_of(dom: str) -> str:
  dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
  return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


@needs_chromium
def test_landing_page_links_to_every_part():
  dom = render("index.html")
  text = text_of(dom)
  assert "FPO" in text and "Green AI" in text
  for target in ("tutorials/index.html", "guides/index.html", "guides/faq.html",
                 "guides/report.html", "api/index.html"):
    assert f'href="{target}' in dom, f"the landing page has no link to {target}"
  for card in ("Tutorials", "Guides", "FAQ", "The Green AI report", "API reference"):
    assert card in text, f"the landing page has no {card!r} card"
  assert "cost.table()" in re.sub(r"<[^>]+>", "", dom)  # its example, as code


@needs_chromium
def test_tutorial_shows_its_executed_output():
  dom = render("tutorials/count.html")
  text = text_of(dom)
  assert "Count a function and read the table" in text
  # The executed cells' output: the table's rows, with the count of a 10-step scan of a
  # 64x64 matmul and tanh: 10 * (64**3 + 64**2 * 9) MUL + 10 * (64**2 * 63 + 64**2 * 9) ADD.
  fpo = 10 * (64**3 + 64**2 * 9) + 10 * (64**2 * 63 + 64**2 * 9)
  assert f"{fpo:,}" in text
  assert "dot_general" in text and "FPO (ADD + MUL)" in text
  assert 'class="cell_output' in dom


def cell_outputs(dom: str) -> str:
  """The text of a page's executed cells' outputs only (not its prose or code)."""
  # Each output runs from its cell_output block to the next cell, paragraph or section.
  chunks = re.split(r'(?=<div class="cell docutils)|(?=<p>)|(?=<section)|(?=<h[1-6])', dom)
  return " ".join(text_of(c[c.index('class="cell_output'):]) for c in chunks
                  if 'class="cell_output' in c)


@needs_chromium
def test_count_tutorial_shows_the_html_view_and_the_costly_lines():
  dom = render("tutorials/count.html")
  # The Cost's notebook view (its own HTML: foldable scopes, a totals table), not a <pre>.
  assert "<details" in dom and "transcendentals (also in FPO)" in text_of(dom)
  out = cell_outputs(dom)
  # source_table() of the attention gradient: the file's lines, by FPO, with shares.
  for line in ("attention.py:6:attention", "attention.py:7:attention", "attention.py:11:block"):
    assert line in out, f"no output row for {line}"
  assert "source line" in out and "share" in out


@needs_chromium
def test_flax_tutorial_finds_the_costly_lines_of_linen_and_nnx():
  out = cell_outputs(render("tutorials/flax.html"))
  assert "models.py:8:attend" in out          # shared by both
  assert "Block.__call__" in out and "NnxBlock.__call__" in out


@needs_chromium
def test_report_tutorial_shows_co2e_mfu_forecast_and_cards():
  out = cell_outputs(render("tutorials/report.html"))
  for expected in ("gCO2e/kWh", "MFU", "HFU", "Forecast (estimate)", "gpu:h100x4",
                   "co2_eq_emissions", "\\begin{tabular}", "Compute resources. Answer:",
                   "EU AI Act", "10^25 FLOP"):
    assert expected in out, f"the report tutorial's output lacks {expected!r}"


def search_hits(query: str) -> list[tuple[str, str]]:
  """(title, link) of the site search's results for ``query``, best first."""
  dom = render("search.html", "q=" + urllib.parse.quote(query))
  found = re.search(r'<ul[^>]*class="search"[^>]*>(.*?)</ul>', dom, re.S)
  assert found, "the search page listed no results (did its script run?)"
  hits = re.findall(r'<li[^>]*>\s*<a href="([^"]*)"[^>]*>(.*?)</a>', found.group(1), re.S)
  return [(text_of(title).strip(), link) for link, title in hits]


@needs_chromium
@pytest.mark.parametrize("query", [FAQ_QUESTION, FAQ_QUESTION.lower().rstrip("?")])
def test_faq_question_is_the_first_search_hit(query):
  hits = search_hits(query)
  assert hits, f"no search results for {query!r}"
  title, link = hits[0]
  assert link.endswith("guides/faq.html#faq-scan") and title.endswith(FAQ_QUESTION), (
      f"first hit for {query!r} is {hits[0]}; then {hits[1:4]}")


@needs_chromium
def test_faq_page_is_the_first_hit_for_the_question_in_other_words():
  # Not the section's title, so no title match: the page holding every word (the FAQ,
  # whose first answer is this one) must still come first.
  hits = search_hits("why does jaxgreen count my scan 10x more than cost_analysis")
  assert hits and hits[0][1] == "guides/faq.html", hits[:4]


def documented_names() -> set[str]:
  """Python objects the built site documents, from its Sphinx inventory (objects.inv).

  An entry of priority -1 is autodoc's alias of an object under where its code lives
  (``jaxgreen._src.cost.Cost`` for ``jaxgreen.Cost``), not a page of its own: left out.
  """
  raw = (SITE / "objects.inv").read_bytes()
  body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
  return {line.split(" ", 1)[0] for line in body.splitlines()
          if " py:" in line and line.split(" ")[2] != "-1"}


def test_api_reference_has_every_public_name_and_nothing_private():
  pytest.importorskip("sphinx", reason="the docs' own checker needs the [docs] extra")
  sys.path.insert(0, str(ROOT / "docs" / "_ext"))
  try:
    from jaxgreen_docs import public_names
  finally:
    sys.path.pop(0)
  names = public_names()
  import jaxgreen
  assert {f"jaxgreen.{n}" for n in jaxgreen.__all__} <= set(names)
  assert "jaxgreen.testing.assert_fpo" in names and "jaxgreen.flax.summary" in names
  assert {"jaxgreen.report_html", "jaxgreen.forecast.forecast", "jaxgreen.card.report",
          "jaxgreen.hlo.count_hlo_text", "jaxgreen.optuna.objective"} <= set(names)
  documented = documented_names()
  missing = [n for n, paths in names.items() if not documented & set(paths)]
  assert not missing, f"public names without an API entry: {missing}"
  private = [n for n in documented if any(p.startswith("_") and not p.startswith("__")
                                          for p in n.split("."))]
  assert not private, f"private names in the API reference: {private}"
