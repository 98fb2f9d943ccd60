"""Per-module FPO tables for Flax models (linen and nnx), from one trace of the model.

``summary(model, *inputs)`` traces the whole ``apply`` once with :func:`jaxgreen.count`
and files the work of every equation under the module that issued it, using the jaxpr
name stack (``GPT2/h_0/mlp/c_fc``). Lifted transforms keep their paths: work inside
``nn.scan`` is multiplied by the scan length, ``nn.remat`` recomputation lands on the
rematerialised module, and ``nn.vmap`` counts the mapped batch.

nnx modules push no name scopes of their own, so for the count each submodule of a
throwaway copy of the model is given a subclass whose methods run under
``jax.named_scope(attribute_name)``; the user's model is never modified
(:mod:`jaxgreen.flax._programs` builds and traces the programs,
:mod:`jaxgreen.flax._modules` files their work under module paths).

Conventions are those of :func:`jaxgreen.count`: a ``Dense`` of ``n_in -> n_out`` on
``b`` rows is MUL = b·n_in·n_out, ADD = b·(n_in-1)·n_out plus b·n_out for the bias; a
convolution counts every window tap on input or edge padding (a transposed one: every input
element times every kernel tap).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from flax import nnx

from jaxgreen._src.api import count_jaxpr
from jaxgreen._src.cost import Cost, Counts
from jaxgreen._src.program import Program
from jaxgreen._src.report import human, markdown_table, table
from jaxgreen.flax._modules import by_module, param_counts, subtree, tree_order
from jaxgreen.flax._programs import grad_program, program, trace_once

__all__ = ["ModuleSummary", "summary", "xla_flops"]

_UNAVAILABLE = "unavailable"


@dataclasses.dataclass(frozen=True)
class ModuleSummary:
  """A per-module FPO table of a Flax model.

  Attributes:
    model: the model's class name.
    rows: one plain dict per module, parents before children, DataFrame-ready
      (``pandas.DataFrame(s.rows)``). Keys: ``path`` (``"ResNet/layer1_0/conv1"``),
      ``module`` (class name), ``depth`` (0 for the model), ``params`` (parameters in
      the module and its children), ``adds``/``muls``/``fpo`` (forward pass, module
      *including* its children), ``own_fpo`` (forward work issued by the module's own
      code, children excluded) and, with ``backward=True``, ``train_adds``,
      ``train_muls``, ``train_fpo`` (forward + backward, including children) and
      ``train_own_fpo``.
      The model's row includes work done outside any module, so its counts equal
      the totals.
    totals: ``params``, ``adds``, ``muls``, ``fpo`` (forward), ``xla_flops`` (XLA's
      ``cost_analysis()['flops']`` of the forward program, or ``"unavailable"``) and,
      with ``backward=True``, ``train_adds``, ``train_muls``, ``train_fpo``,
      ``xla_train_flops``.
    forward: the full :class:`~jaxgreen.Cost` of the forward pass.
    train: the full :class:`~jaxgreen.Cost` of forward + backward, or None.
  """

  model: str
  rows: tuple[dict[str, Any], ...]
  totals: dict[str, Any]
  forward: Cost
  train: Cost | None = None

  @property
  def backward(self) -> bool:
    return self.train is not None

  def _columns(self) -> tuple[list[str], list[list[object]]]:
    headers = ["module path", "type", "params", "ADD", "MUL", "FPO", "own FPO"]
    if self.backward:
      headers += ["train FPO"]
    out = []
    for r in self.rows:
      name = r["path"].rsplit("/", 1)[-1]
      cells = ["  " * r["depth"] + name, r["module"], f"{r['params']:,}", human(r["adds"]),
               human(r["muls"]), human(r["fpo"]), human(r["own_fpo"])]
      if self.backward:
        cells.append(human(r["train_fpo"]))
      out.append(cells)
    t = self.totals
    total = ["total", "", f"{t['params']:,}", human(t["adds"]), human(t["muls"]),
             human(t["fpo"]), ""]
    if self.backward:
      total.append(human(t["train_fpo"]))
    out.append(total)
    return headers, out

  def _footer(self) -> list[str]:
    t = self.totals
    lines = [f"FPO = ADD + MUL (Green AI). Forward FPO: {t['fpo']:,}; "
             f"XLA flops: {_fmt_xla(t['xla_flops'])}."]
    if self.backward:
      lines.append(f"Forward + backward FPO: {t['train_fpo']:,}; "
                   f"XLA flops: {_fmt_xla(t['xla_train_flops'])}.")
    if not self.forward.exact or (self.train is not None and not self.train.exact):
      lines.append("Counts are not exact: see .forward.uncounted / .forward.inexact.")
    return lines

  def __str__(self) -> str:
    headers, body = self._columns()
    align = "ll" + "r" * (len(headers) - 2)
    return "\n".join([f"{self.model}", table(headers, body, align), *self._footer()])

  def to_markdown(self) -> str:
    """The table as GitHub Markdown (module paths indented with non-breaking spaces)."""
    headers, body = self._columns()
    for cells in body:
      name = str(cells[0])
      stripped = name.lstrip(" ")
      cells[0] = "\u00a0" * (len(name) - len(stripped)) + stripped
    align = "ll" + "r" * (len(headers) - 2)
    return "\n\n".join([f"**{self.model}**", markdown_table(headers, body, align),
                        "  \n".join(self._footer())])

  def __repr__(self) -> str:
    t = self.totals
    train = f", train_fpo={t['train_fpo']:,}" if self.backward else ""
    exact = self.forward.exact and (self.train is None or self.train.exact)
    return (f"ModuleSummary(model={self.model!r}, modules={len(self.rows)}, "
            f"params={t['params']:,}, fpo={t['fpo']:,}{train}, exact={exact})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else str(self))

  def _repr_html_(self) -> str:
    """The notebook view: the module tree, foldable, with each module's share of FPO."""
    from jaxgreen._src import _html

    t = self.totals
    heads = ["module", "type", "params", "ADD", "MUL", "FPO", "own FPO"]
    heads += ["train FPO"] if self.backward else []
    rows = []
    for r in self.rows:
      cells = [r["module"], f"{r['params']:,}", f"{r['adds']:,}", f"{r['muls']:,}",
               f"{r['fpo']:,}", f"{r['own_fpo']:,}"]
      cells += [f"{r['train_fpo']:,}"] if self.backward else []
      rows.append((r["path"].split("/"), cells, r["fpo"] / t["fpo"] if t["fpo"] else None))
    tree = _html.tree(heads, rows, bar_header="share of forward FPO",
                      align="l" + "r" * (len(heads) - 2))
    return _html.fragment(tree,
                          _html.notes(self._footer()), title=f"{self.model}: FPO by module")

  def to_pandas(self) -> Any:
    """:attr:`rows` as a ``pandas.DataFrame`` (needs pandas: ``pip install
    'jaxgreen[pandas]'``)."""
    from jaxgreen._src.report import data_frame

    return data_frame(self.rows, "ModuleSummary.to_pandas")

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready: ``model``, ``rows``, ``totals``, ``forward`` and ``train`` costs."""
    return {"model": self.model, "rows": [dict(r) for r in self.rows],
            "totals": dict(self.totals), "forward": self.forward.to_dict(),
            "train": None if self.train is None else self.train.to_dict()}

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)


def summary(model: nn.Module | nnx.Module, *inputs: Any, variables: Mapping | None = None,
            rngs: Any = None, method: str | Callable | None = None,
            mutable: bool | str | Sequence[str] = False, backward: bool = False,
            loss: Callable[[Any], jax.Array] | None = None, max_depth: int | None = None,
            xla: bool = True, **kwargs: Any) -> ModuleSummary:
  """Counts a Flax model's forward (and optionally backward) pass, module by module.

  The model is traced once (nothing is allocated or run; ``inputs`` may be arrays or
  ``jax.ShapeDtypeStruct``) and the work is filed under module paths from the jaxpr
  name stack. With ``backward=True`` a second program, ``jax.grad`` of a scalar loss
  of the output with respect to the parameters, is counted as it is: the backward
  work is counted from the real gradient program, not estimated as a multiple of the
  forward.

  Args:
    model: a ``flax.linen.Module`` or a ``flax.nnx.Module`` (concrete or from
      ``nnx.eval_shape``).
    *inputs: positional inputs of the model's call.
    variables: linen only: the variables (``{"params": ..., "batch_stats": ...}``),
      arrays or ShapeDtypeStructs. Default: ``jax.eval_shape(model.init, rngs, *inputs)``.
    rngs: linen only: a PRNG key or a dict of keys used to initialise and to apply
      (e.g. ``{"params": k, "dropout": k}``). Default ``jax.random.key(0)``.
    method: the method to profile instead of ``__call__`` (name or, for linen, function).
    mutable: linen only: collections the apply may update (``["batch_stats"]`` for
      BatchNorm in training mode); the updates are discarded.
    backward: also count forward + backward (gradient of ``loss`` w.r.t. the params).
    loss: scalar loss of the model's output for ``backward``; default: the sum of
      squares of all floating-point outputs (its n MUL and n-1 ADD land on the model's
      row). Dead code is removed before counting, so a loss whose gradient ignores the
      output (a plain sum) would drop the last layers' forward work.
    max_depth: leave out rows deeper than this (0 keeps only the model's row); their
      work is still included in their ancestors' rows.
    xla: also ask XLA for its flop estimate (``jit(...).lower(...).cost_analysis()``).
    **kwargs: keyword arguments of the model's call (e.g. ``train=False``).

  Returns:
    A :class:`ModuleSummary`; ``print(s)`` shows the table, ``s.rows`` are dicts.

  Example:
    >>> import flax.linen as nn, jax, jax.numpy as jnp, jaxgreen.flax
    >>> s = jaxgreen.flax.summary(nn.Dense(3), jax.ShapeDtypeStruct((2, 4), jnp.float32))
    >>> s.totals["muls"], s.totals["adds"]  # 2*4*3; 2*3*3 + 2*3 (bias)
    (24, 24)
  """
  if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 0):
    raise ValueError(f"summary(max_depth={max_depth!r}) must be None or an int >= 0")
  if loss is not None and not callable(loss):
    raise TypeError(f"summary(loss=...) must be callable (output -> scalar), got {loss!r}")
  prog = program(model, inputs, variables, rngs, method, mutable, kwargs)
  args = (prog["params"], prog["rest"], *inputs)
  # The model's Python code is traced once; the gradient program replays that jaxpr
  # (same equations, same name stacks) instead of tracing it again, and XLA's estimate
  # lowers each program from the very trace jaxgreen counts (jax's AOT ``trace``).
  forward, replay = trace_once(prog["forward"], args)
  fwd = count_jaxpr(forward.traced.jaxpr)
  train = grad = None
  if backward:
    grad, _ = trace_once(grad_program(replay, loss), args)
    train = count_jaxpr(grad.traced.jaxpr)
  rows = _rows(prog, fwd, train, max_depth)
  totals: dict[str, Any] = {"params": sum(param_counts(prog["params"]).values()),
                            "adds": fwd.adds, "muls": fwd.muls, "fpo": fwd.fpo,
                            "xla_flops": _xla_flops_of(forward) if xla else _UNAVAILABLE}
  if train is not None:
    totals |= {"train_adds": train.adds, "train_muls": train.muls, "train_fpo": train.fpo,
               "xla_train_flops": _xla_flops_of(grad) if xla else _UNAVAILABLE}
  return ModuleSummary(model=prog["root"], rows=tuple(rows), totals=totals, forward=fwd,
                       train=train)


def _rows(prog: Mapping[str, Any], fwd: Cost, train: Cost | None,
          max_depth: int | None) -> list[dict[str, Any]]:
  """One row per module, parents before children, down to ``max_depth``."""
  modules = prog["modules"]  # path tuple -> class name (recorded while tracing)
  root = prog["root"]
  paths = [()] + [p for p in modules if p]  # call order (linen) / graph order (nnx)
  params = param_counts(prog["params"])
  own_fwd = by_module(fwd, root, modules)
  own_train = by_module(train, root, modules) if train is not None else {}
  rows = []
  for path in tree_order(paths, list(own_fwd)):
    if max_depth is not None and len(path) > max_depth:
      continue
    total = subtree(own_fwd, path)
    row = {"path": "/".join((root, *path)), "module": modules[path], "depth": len(path),
           "params": sum(n for p, n in params.items() if p[:len(path)] == path),
           "adds": total.adds, "muls": total.muls, "fpo": total.fpo,
           "own_fpo": own_fwd.get(path, Counts()).fpo}
    if train is not None:
      t = subtree(own_train, path)
      row |= {"train_adds": t.adds, "train_muls": t.muls, "train_fpo": t.fpo,
              "train_own_fpo": own_train.get(path, Counts()).fpo}
    rows.append(row)
  return rows


def xla_flops(fn: Callable, *args: Any) -> float | str:
  """XLA's flop estimate of ``fn(*args)``, or ``"unavailable"``.

  Best effort by design: ``cost_analysis()`` may be None, a list of dicts (one per
  program), lack the ``"flops"`` key, or report -1 for custom calls, depending on
  the backend and jax version. XLA counts a multiply-add as 2 flops, like FPO, but
  also counts some operations FPO leaves out (and vice versa).
  """
  try:
    analysis = jax.jit(fn).lower(*args).cost_analysis()
  except Exception:  # noqa: BLE001 -- any backend failure means "no estimate"
    return _UNAVAILABLE
  return _flops_of(analysis)


def _xla_flops_of(program: Program | None) -> float | str:
  """XLA's flop estimate of a program's lowering (see :func:`xla_flops`)."""
  try:
    analysis = program.lowered.cost_analysis()  # type: ignore[union-attr]
  except Exception:  # noqa: BLE001 -- any backend failure means "no estimate"
    return _UNAVAILABLE
  return _flops_of(analysis)


def _flops_of(analysis: Any) -> float | str:
  if isinstance(analysis, list | tuple):
    analysis = analysis[0] if len(analysis) == 1 else None
  if not isinstance(analysis, Mapping):
    return _UNAVAILABLE
  flops = analysis.get("flops")
  if not isinstance(flops, int | float) or flops < 0 or not math.isfinite(flops):
    return _UNAVAILABLE
  return float(flops)


def _fmt_xla(x: float | str) -> str:
  return x if isinstance(x, str) else f"{x:,.0f}"
