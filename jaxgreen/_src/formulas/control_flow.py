"""While-loop trip counts and cond/switch branch policies, shared by every stage."""

from __future__ import annotations

import math

# The comparison that holds when the operands of ``a <op> b`` are swapped (b <op'> a).
MIRROR = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


def loop_trips(op: str, start, bound, step) -> int | None:
  """Iterations of ``for (i = start; i <op> bound; i += step)``; None if unbounded.

  ``op`` is the comparison that keeps the loop going: lt, le, gt, ge or ne (any case).
  """
  op = op.lower()
  span = bound - start
  exact = all(isinstance(v, int) for v in (start, bound, step))

  def ceil_div(a, b):
    return -(-a // b) if exact else math.ceil(a / b)

  def floor_div(a, b):
    return a // b if exact else math.floor(a / b)

  if op == "lt" and step > 0:
    return max(0, ceil_div(span, step))
  if op == "le" and step > 0:
    return max(0, floor_div(span, step) + 1)
  if op == "gt" and step < 0:
    return max(0, ceil_div(span, step))
  if op == "ge" and step < 0:
    return max(0, floor_div(span, step) + 1)
  if op == "ne" and span % step == 0 and span / step >= 0:
    return int(span // step)
  if op in ("lt", "le", "gt", "ge"):
    # The step moves away from the bound: either no iteration, or an infinite loop.
    first = {"lt": start < bound, "le": start <= bound, "gt": start > bound,
             "ge": start >= bound}[op]
    return 0 if not first else None
  return None


def counted_loop_trips(op: str, counter_first: bool, offset, bound, start,
                       step) -> int | None:
  """Trips of a counted loop, as both induction-variable evaluators recognise it.

  The condition is ``counter + offset <op> bound`` (``bound <op> counter + offset``
  when ``counter_first`` is False), the counter starts at ``start`` and the body adds
  the constant ``step``. None when the step is zero, a value is not a number or the
  loop never ends.
  """
  op = op.lower()
  if not counter_first:
    op = MIRROR.get(op, "")
  if op not in MIRROR or not step:
    return None
  try:
    # counter + offset <op> bound  <=>  counter <op> bound - offset
    return loop_trips(op, start, bound - offset, step)
  except (TypeError, ValueError, ZeroDivisionError, OverflowError):
    return None


def loop_factors(trips: int | None) -> tuple[int, int]:
  """(body multiplier, condition multiplier) of a while loop, at every stage.

  A loop of ``trips`` iterations runs its body ``trips`` times and evaluates its
  condition ``trips + 1`` times (the last evaluation exits). When the trip count is
  unknown the body is counted once, so the condition is counted twice: the loop is
  counted as if it ran one iteration (and the count is marked inexact).
  """
  n = 1 if trips is None else int(trips)
  return n, n + 1


def pick_branches(costs, policy: str) -> list[tuple[int, float]]:
  """The branches a ``cond``/``switch``/``conditional`` is counted as, with weights.

  ``costs`` holds one ``(fpo, int_ops)`` per branch. ``"max"``/``"min"``: the branch
  of largest/smallest FPO (integer work breaks ties, then the first branch);
  ``"mean"``: every branch with weight 1/n.
  """
  costs = list(costs)
  if not costs:
    return []
  if policy == "mean":
    return [(i, 1 / len(costs)) for i in range(len(costs))]
  pick = min if policy == "min" else max
  best = pick(costs)
  return [(costs.index(best), 1)]

