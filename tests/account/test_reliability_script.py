"""``benchmarks/reliability.py``: its figures, its exit status, and Ctrl-C deferral."""

from __future__ import annotations

import collections
import os
import signal
import sys
import time

import pytest

from benchmarks import reliability
from jaxgreen._src.account import Experiment, preemption


def test_hlo_fuzzing_raises_only_hlo_parse_errors():
  pytest.importorskip("hypothesis", reason="the [dev] extra installs hypothesis")
  texts = reliability.seed_texts()
  outcomes = reliability.fuzz(texts[:2], 200, hang_s=5.0)
  total, raw, hangs, kinds = reliability._fuzz_figures(outcomes)
  assert (total, raw, hangs, kinds) == (200, 0, 0, [])
  assert outcomes["rejected"] > 0 and outcomes["exact"] > 0  # the mutations bite
  assert reliability.fuzz(texts[:2], 200, hang_s=5.0) == outcomes  # derandomized


def test_mutations_are_deterministic_and_bounded():
  text = "HloModule m\nENTRY %e {\n  ROOT %p = f32[4]{0} parameter(0)\n}"
  assert reliability._mutate(text, [("cut", 0.5, 0.0, "")]) == text[:len(text) // 2]
  assert reliability._mutate(text, [("line", 0.0, 0.0, "")]) == text.split("\n", 1)[1]
  for op in reliability._OPS:  # the last position of each op stays in range
    reliability._mutate(text, [(op, 0.999, 0.999, "{")])


def test_a_raw_exception_or_a_hang_is_counted():
  assert reliability._count_one("HloModule m\nENTRY %e {\n}", 5.0) == "rejected"
  outcomes = collections.Counter({"rejected": 9_998, "raw: KeyError: 'x'": 1, "hang": 1})
  assert reliability._fuzz_figures(outcomes) == (10_000, 1, 1, ["raw: KeyError: 'x'"])


def test_ctrl_c_at_every_commit_and_begin_counts_each_step_once(tmp_path):
  for prefix in ("COMMIT", "BEGIN IMMEDIATE"):
    ran, recorded = reliability.interrupt_at(tmp_path, prefix, writes=3)
    # 3 runs (flush_steps=1), interrupted just after the 1st, 2nd or 3rd statement: the
    # 1st write is the trial's row, so each run made 0, 1 or 2 calls
    assert (ran, recorded) == (0 + 1 + 2, 0 + 1 + 2), prefix


@pytest.mark.parametrize("lost", [0, 1])
def test_the_script_exits_non_zero_when_a_figure_misses(monkeypatch, capsys, lost):
  monkeypatch.setattr(reliability, "ledger_figures", lambda *a: [("a", lost, 0)])
  monkeypatch.setattr(reliability, "ctrl_c_figures", lambda *a: [])
  monkeypatch.setattr(reliability, "merge_figures", lambda *a: [])
  monkeypatch.setattr(reliability, "seed_texts", lambda: ["x"])
  monkeypatch.setattr(reliability, "fuzz", lambda *a: collections.Counter({"rejected": 5}))
  assert reliability.main([]) == lost
  out = capsys.readouterr().out
  assert f"steps lost: {lost} (target 0)" in out and "raw exceptions 0" in out


def test_ctrl_c_inside_step_bookkeeping_is_raised_just_after(monkeypatch, tmp_path):
  Experiment("int", ledger=None).close()  # installs the handler where SIGINT is Python's
  sent = []
  monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))

  def bookkeeping():
    preemption._on_sigint(signal.SIGINT, sys._getframe())  # Ctrl-C lands in here
    return "finished"

  preemption.defer_interrupts([bookkeeping.__code__])
  assert bookkeeping() == "finished"  # not interrupted midway...
  deadline = time.monotonic() + 10
  while not sent and time.monotonic() < deadline:
    time.sleep(0.005)
  assert sent == [(os.getpid(), signal.SIGINT)]  # ...the signal is taken again just after
  with pytest.raises(KeyboardInterrupt):  # elsewhere: KeyboardInterrupt, as without jaxgreen
    preemption._on_sigint(signal.SIGINT, sys._getframe())
