"""Pallas, Mosaic and Triton kernels at the HLO stages: custom calls mapped back to a count.

A ``pallas_call`` reaches XLA as an opaque custom call (``tpu_custom_call`` on TPU,
``__gpu$xla.gpu.triton`` for Pallas on GPU via Triton, ``mosaic_gpu_v2`` for Mosaic GPU)
whose body XLA never looks into. jaxgreen counts it in one of three ways, in order:

1. **From the jaxpr.** When jaxgreen counts a function it has the program's jaxpr, where
   every kernel is counted exactly (:mod:`jaxgreen._src.jaxpr.rules.pallas`). Those counts
   are handed to the HLO counter as a :class:`KernelTable`, and each custom call is
   matched to its kernel by operand shapes, then by scope (the custom call's
   ``metadata={op_name=".../pallas_call"}`` names the scope of the jaxpr equation it
   came from), then by kernel name.
2. **The author's estimate.** Given HLO text alone (``count_hlo_text``,
   ``count_compiled``), a TPU kernel's ``pl.CostEstimate`` is in its
   ``backend_config``; its flops are taken (split evenly between ADD and MUL) and the
   count is marked inexact, naming the kernel in ``Cost.inexact``.
3. **Uncounted.** With neither, the kernel is listed in ``Cost.uncounted``; never a
   silent zero.

XLA's own figure for a kernel is the author's estimate on TPU (``HloCostAnalysis``
reads ``cost_estimate``; 0 without one) and "unknown" (-1) elsewhere; the difference
from jaxgreen's count is filed under the cause ``"kernels"``.

Example:
  >>> tpu_estimate({"custom_call_config": {"cost_estimate": {
  ...     "flops": "1000", "transcendentals": "7", "bytes_accessed": "99"}}})
  (1000, 7, 99)
  >>> kernel_name_of("flash_attention.1", {}, "tpu_custom_call")
  'flash_attention'
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from jaxgreen._src._scope import join
from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_acc import Sums
from jaxgreen._src.hlo.ir import Array, Computation, Instr
from jaxgreen._src.hlo.tally import Tally
from jaxgreen._src.hlo.xla import KERNELS

# Custom calls that run a user kernel: Mosaic TPU, Pallas-on-Triton (GPU), Mosaic GPU
# and jax's older Triton call.
KERNEL_TARGETS = frozenset({
    "tpu_custom_call", "__gpu$xla.gpu.triton", "mosaic_gpu", "mosaic_gpu_v2",
    "triton_kernel_call", "triton_kernel_call_ffi",
})
# Targets for which XLA's HloCostAnalysis reads the author's cost_estimate.
ESTIMATE_TARGETS = frozenset({"tpu_custom_call"})

_SUFFIX = re.compile(r"\.\d+$")
_COMMENT = re.compile(r"/\*.*?\*/")
_MLIR_NAME = re.compile(r'(?:^|[{,\s])name\s*=\s*"([^"]*)"')

Shapes = tuple[tuple[int, ...], ...]


@dataclasses.dataclass(frozen=True)
class KernelEntry:
  """One kernel of the traced program: where it is, its name, its operand shapes
  (in order) and jaxgreen's count of one call."""

  scope: str
  name: str
  shapes: Shapes
  cost: Cost


class KernelTable:
  """The kernels of one program, counted at the jaxpr stage, for the HLO counter to
  match custom calls against (see the module docstring).

  Example:
    >>> t = KernelTable([KernelEntry("attn", "mha", ((8, 8),), Cost(muls=64))])
    >>> t.find("attn", "mha", ((8, 8),)).cost.muls, t.find("", "", ((4,),))
    (64, None)
  """

  def __init__(self, entries: Iterable[KernelEntry] = ()):
    self.entries = list(entries)

  def __len__(self) -> int:
    return len(self.entries)

  def find(self, scope: str, name: str, shapes: Shapes) -> KernelEntry | None:
    """The kernel with operand ``shapes`` (narrowed by ``scope``, then by ``name``,
    while several kernels with different counts share them); None when none or several
    different ones fit."""
    cands = [e for e in self.entries if e.shapes == shapes]
    for keep in (lambda e: _same_scope(e, scope), lambda e: e.name == name):
      if len({_key(e.cost) for e in cands}) <= 1:
        break
      narrowed = [e for e in cands if keep(e)]
      cands = narrowed or cands
    if not cands or len({_key(e.cost) for e in cands}) != 1:
      return None
    return cands[0]


def _same_scope(e: KernelEntry, scope: str) -> bool:
  # pallas names an equation's scope after the kernel in some releases
  return scope in (e.scope, f"{e.scope}/{e.name}" if e.scope else e.name)


def _key(c: Cost) -> tuple:
  return (c.adds, c.muls, c.transcendentals, c.int_ops)


def kernel_name_of(instr_name: str, cfg: dict[str, Any], target: str,
                   fields_name: str | None = None) -> str:
  """The kernel's name: the lowered module's ``kernel_name``, Triton's ``name =`` in
  its backend config, else the custom call's instruction name without its ``.N``."""
  if fields_name:
    return fields_name
  name = cfg.get("name") if isinstance(cfg.get("name"), str) else None
  return name or _SUFFIX.sub("", instr_name) or target


def mlir_config_name(raw: str | None) -> str | None:
  """``name = "..."`` of a backend config written as an MLIR dictionary (Triton).

  >>> mlir_config_name('{debug = false, name = "mha_forward", num_warps = 4 : i32}')
  'mha_forward'
  """
  if not raw or raw.lstrip().startswith('"'):
    return None
  m = _MLIR_NAME.search(raw)
  return m.group(1) if m else None


def tpu_estimate(cfg: dict[str, Any]) -> tuple[int, int, int] | None:
  """(flops, transcendentals, bytes accessed) of a TPU kernel's ``cost_estimate``."""
  inner = cfg.get("custom_call_config", cfg)
  est = inner.get("cost_estimate") if isinstance(inner, dict) else None
  if not isinstance(est, dict):
    return None
  try:
    return (int(est.get("flops", 0)), int(est.get("transcendentals", 0)),
            int(est.get("bytes_accessed", 0)))
  except (TypeError, ValueError):
    return None


def kernel_operands(comp: Computation, ins: Instr) -> list[Array]:
  """The arrays of ``ins``'s operands in order (XLA writes ``/*index=5*/`` before every
  fifth operand of a long list; it is not part of the name)."""
  out: list[Array] = []
  for name in ins.operands:
    src = comp.by_name.get(_COMMENT.sub("", name).strip().lstrip("%"))
    if src is not None:
      out.extend(src.arrays)
  return out


def operand_shapes(arrays: Sequence[Any]) -> Shapes:
  return tuple(tuple(int(d) for d in a.dims) for a in arrays)


def counted_tally(entry: KernelEntry, xla: float, xla_tr: float) -> Tally:
  """A tally holding jaxgreen's count of one call of kernel ``entry`` (its per-primitive
  and per-scope rows as at the jaxpr stage) beside XLA's figure ``xla``; the difference
  is filed under :data:`KERNELS`."""
  cost = entry.cost
  t = Tally()
  t.total = Sums.of(cost)
  for key, c in cost.by_primitive.items():
    t.by_primitive[key] = Sums.of(c)
  for key, c in cost.by_scope.items():  # the rule's scopes are relative to the equation's
    row = t.by_scope.setdefault(join(entry.scope, key), Sums())
    row.add(c)
  t.uncounted = cast(dict[str, int], dict(cost.uncounted))
  t.inexact = dict.fromkeys(cost.inexact)
  t.assumed = dict.fromkeys(cost.assumed)
  t.xla_flops = t.xla_flops_trips = xla
  t.xla_transcendentals = xla_tr
  t.visiting_f32 = np.float32(xla)
  delta = cost.adds + cost.muls - xla
  if delta:
    t.causes[KERNELS] = delta
  return t


def kernel_instr_name(ins: Instr) -> str | None:
  """The ``kernel_name`` a lowered custom call carries, if any."""
  if ins.fields is not None and ins.fields.get("kernel_name"):
    return str(ins.fields["kernel_name"])
  return None


def kernel_fields(o: Any) -> dict[str, Any]:
  """The fields of a lowered kernel custom call (an MLIR operation): its
  ``kernel_name`` and its JSON ``backend_config`` (TPU), or the ``name`` in Triton's."""
  from jaxlib.mlir import ir

  out: dict[str, Any] = {}
  attrs = o.attributes
  if "kernel_name" in attrs:
    out["kernel_name"] = ir.StringAttr(attrs["kernel_name"]).value
  if "backend_config" in attrs:
    raw = attrs["backend_config"]
    try:
      cfg = json.loads(ir.StringAttr(raw).value)
    except ValueError:  # not a string (Triton's dictionary), or not JSON
      cfg = None
    if isinstance(cfg, dict):
      out["backend_config"] = cfg
    elif "kernel_name" not in out and mlir_config_name(str(raw)):
      out["kernel_name"] = mlir_config_name(str(raw))
  return out
