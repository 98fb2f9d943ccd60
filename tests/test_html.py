"""HTML fragments: escaped, self-contained (no script, nothing fetched), trees that fold."""

from __future__ import annotations

import html.parser
import re

from jaxgreen._src import _html


class _Tags(html.parser.HTMLParser):
  """Open/close tag balance and every URL-bearing attribute of a fragment."""

  def __init__(self):
    super().__init__()
    self.stack, self.urls, self.tags = [], [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    self.urls += [v for k, v in attrs if k in ("src", "href")]
    if tag not in ("br", "img"):
      self.stack.append(tag)

  def handle_endtag(self, tag):
    assert self.stack and self.stack[-1] == tag, (self.stack, tag)
    self.stack.pop()


def parse(fragment: str) -> _Tags:
  p = _Tags()
  p.feed(fragment)
  p.close()
  assert p.stack == [], p.stack  # balanced
  return p


def test_cells_are_escaped_unless_marked_html():
  out = _html.table(["name", "x"], [["<script>alert(1)</script>", _html.Html("<b>1</b>")]])
  assert "<script>" not in out and "&lt;script&gt;" in out and "<b>1</b>" in out
  parse(out)


def test_a_tree_folds_parents_and_adds_missing_ancestors():
  rows = [(("M", "a", "x"), ["10"], 0.5), (("M", "a", "y"), ["6"], 0.3),
          (("M", "b"), ["4"], 0.2)]
  out = _html.tree(["module", "FPO"], rows, open_depth=1)
  tags = parse(out)
  # Parents M and M/a (an ancestor with no row of its own) fold; leaves x, y, b do not.
  assert tags.tags.count("details") == 2 and tags.tags.count("summary") == 2
  assert out.count("<details open>") == 1  # depth 0 open, depth 1 folded (open_depth=1)
  names = re.findall(r'</span>([^<]+)</span>', out)
  assert [n for n in names if n in "Max y b"][:5] == ["M", "a", "x", "y", "b"]
  assert "50.0%" in out and "30.0%" in out


def test_fragments_are_self_contained():
  out = _html.fragment(_html.tree(["m", "v"], [(("a",), ["1"], 1.0)]),
                       _html.image(b"\x89PNG\r\n"), _html.notes(["n <1>"]), title="t")
  tags = parse(out)
  assert "script" not in tags.tags
  assert all(u.startswith("data:image/png;base64,") for u in tags.urls) and tags.urls
  assert "http" not in out and "@import" not in out and "url(" not in out


def test_bars_clamp_and_show_sign():
  assert "width:100.00%" in _html.bar(1.7) and "170.0%" in _html.bar(1.7)
  neg = _html.bar(-0.25)
  assert _html.NEGATIVE in neg and "width:25.00%" in neg and "-25.0%" in neg
  assert _html.bar(None) == ""
