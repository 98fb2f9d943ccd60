"""Cost of the FPO guard's pytest plugin to a test session that does not use it.

The peer is the same session with the plugin disabled (``-p no:jaxgreen``), measured
side by side in one run: a project of 200 trivial tests is collected and run in fresh
pytest processes, alternating plugin on / off (order flipped every repetition), and the
script prints the ratio of median wall times (target: no measurable difference, < 1.02).

  python benchmarks/pytest_plugin_overhead.py [--reps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _session(folder: str, plugin: bool) -> float:
  args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder]
  if not plugin:
    args[3:3] = ["-p", "no:jaxgreen"]
  t = time.perf_counter()
  r = subprocess.run(args, capture_output=True, text=True, check=False)
  elapsed = time.perf_counter() - t
  if r.returncode != 0:
    raise SystemExit(r.stdout + r.stderr)
  return elapsed


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--reps", type=int, default=15)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as folder:
    with open(os.path.join(folder, "test_plain.py"), "w") as f:
      f.write("import pytest\n\n@pytest.mark.parametrize('i', range(200))\n"
              "def test_plain(i):\n  assert i + 1 > i\n")
    on, off = [], []
    for rep in range(args.reps):
      for plugin in ((True, False) if rep % 2 == 0 else (False, True)):
        (on if plugin else off).append(_session(folder, plugin))
  m_on, m_off = statistics.median(on), statistics.median(off)
  print(f"pytest session, 200 tests, median of {args.reps}:")
  print(f"  plugin disabled (-p no:jaxgreen)  {m_off:.3f} s")
  print(f"  plugin loaded (entry point)       {m_on:.3f} s")
  print(f"  ratio loaded / disabled           {m_on / m_off:.3f}  (target < 1.02)")


if __name__ == "__main__":
  main()
