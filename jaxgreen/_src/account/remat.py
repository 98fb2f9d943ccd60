"""Model FPO: a step as if nothing were rematerialised (PaLM's model FLOPs).

PaLM (Chowdhery et al. 2022, appendix B) reports two utilisations: *model* FLOPs
utilisation counts the computation the model needs, without rematerialisation;
*hardware* FLOPs utilisation counts what the hardware executes, recomputation
included. jaxgreen's count of a step is the hardware figure (the program as run).

Under ``jax.checkpoint`` (``jax.remat``, ``flax.linen.remat``) the backward pass is a
``checkpoint`` equation marked ``differentiated=True`` whose body first recomputes
forward values the program already computed, then runs the backward. The recomputed
equations are found exactly as what they are: an equation of that body that applies
the same primitive, with the same parameters, to the same values as an equation the
enclosing program already ran (the body's inputs are mapped to the enclosing
program's values). What the backward needs that the forward never computed (e.g. a
derivative's coefficient) is model work and stays counted; so is a forward value that
only the backward computes (``jax.grad`` drops an unused forward output: the backward's
computation of it is its only one). So

``model FPO = hardware FPO − recomputed FPO`` and ``HFU / MFU = hardware / model FPO``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> f = lambda w, x: jnp.sum(jnp.tanh(x @ w) @ w)
  >>> w, x = jnp.ones((4, 4)), jnp.ones((2, 4))
  >>> loss_and_grad = jax.value_and_grad(jax.checkpoint(f))
  >>> recompute_fpo(jax.make_jaxpr(loss_and_grad)(w, x))[0]  # x @ w and tanh, again
  200
  >>> recompute_fpo(jax.make_jaxpr(jax.value_and_grad(f))(w, x))  # nothing rematerialised
  (0, ())
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from jax.extend import core as jcore

from jaxgreen._src._compat import dce_jaxpr
from jaxgreen._src.api import count_jaxpr

# Primitives that call a sub-program once, as if inlined.
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
          "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}
_REMAT = ("checkpoint", "remat2", "remat")


def _open(j: Any) -> Any:
  return j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j


def _key(eqn: Any, names: dict[Any, Any]) -> tuple | None:
  """What an equation computes, but its parameters: primitive and inputs (as the
  enclosing program's values); None when an input is not one of them."""
  ins = []
  for a in eqn.invars:
    if isinstance(a, jcore.Literal):
      ins.append(("literal", repr(a.val), str(a.aval)))
    elif a in names:
      ins.append(names[a])
    else:
      return None
  return (eqn.primitive.name, tuple(ins))


def _same_params(a: Any, b: Any) -> bool:
  """Equal parameters (sub-programs compared by their text when not the same object)."""
  try:
    if a.params == b.params:
      return True
  except Exception:  # parameters without a usable ==
    pass
  return str(sorted(a.params.items(), key=lambda kv: kv[0])) == str(
      sorted(b.params.items(), key=lambda kv: kv[0]))


def _has_backward(jaxpr: Any) -> bool:
  """True when a differentiated checkpoint is anywhere in the program."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in _REMAT and eqn.params.get("differentiated"):
      return True
    for v in eqn.params.values():
      subs = v if isinstance(v, tuple | list) else (v,)
      if any(isinstance(j, jcore.ClosedJaxpr | jcore.Jaxpr) and _has_backward(_open(j))
             for j in subs):
        return True
  return False


class _Scan:
  """Walks one program, remembering what each equation computed."""

  def __init__(self) -> None:
    # (primitive, inputs) -> the equations that computed it (parameters compared apart)
    self.seen: dict[tuple, list[Any]] = {}
    self.recomputed: list[Any] = []  # equations of backward bodies that recompute
    self.notes: list[str] = []

  def walk(self, jaxpr: Any, names: dict[Any, Any], times: int = 1) -> None:
    for eqn in jaxpr.eqns:
      name = eqn.primitive.name
      if name in _REMAT and eqn.params.get("differentiated"):
        self._backward(eqn, names, times)
      elif name in _REMAT or name in _CALLS:
        self._inline(eqn, names, eqn.params.get("jaxpr" if name in _REMAT else _CALLS[name]),
                     times)
      elif name == "scan":  # a loop body runs length times; its values stay inside
        _Scan._nested(self, eqn.params["jaxpr"], times * int(eqn.params["length"]))
      else:
        self._record(eqn, names)

  def _nested(self, body: Any, times: int) -> None:
    inner = _Scan()
    body = _open(body)
    inner.walk(body, {v: ("in", id(v)) for v in (*body.constvars, *body.invars)}, times)
    self.recomputed += inner.recomputed
    self.notes += inner.notes

  def _find(self, eqn: Any, key: tuple | None) -> Any:
    """The equation already run that computes what ``eqn`` computes, or None."""
    if key is None:
      return None
    return next((e for e in self.seen.get(key, ()) if _same_params(e, eqn)), None)

  def _record(self, eqn: Any, names: dict[Any, Any]) -> None:
    key = _key(eqn, names)
    same = self._find(eqn, key)
    if same is not None:
      for v, w in zip(eqn.outvars, same.outvars, strict=True):
        names[v] = names.get(w, ("out", id(w)))
      return
    for v in eqn.outvars:
      names[v] = ("out", id(v))
    if key is not None:
      self.seen.setdefault(key, []).append(eqn)

  def _inline(self, eqn: Any, names: dict[Any, Any], sub: Any, times: int) -> None:
    if sub is None:
      self._record(eqn, names)
      return
    body = _open(sub)
    inner = dict(names) | _bind(body, eqn.invars, names)
    self.walk(body, inner, times)
    for v, w in zip(eqn.outvars, body.outvars, strict=True):
      names[v] = inner.get(w, ("out", id(w))) if isinstance(w, jcore.Var) else ("out", id(v))

  def _backward(self, eqn: Any, names: dict[Any, Any], times: int) -> None:
    """A differentiated checkpoint: its body's equations that compute what the
    enclosing program already computed are the recomputation."""
    body = _open(eqn.params["jaxpr"])
    self._replay(body, _bind(body, eqn.invars, names), names, times)
    for v in eqn.outvars:
      names[v] = ("out", id(v))

  def _replay(self, body: Any, inner: dict[Any, Any], names: dict[Any, Any],
              times: int) -> None:
    """Matches a backward body's equations against what already ran; calls in it
    (a ``custom_jvp`` GELU, a nested ``jit``) are entered, as the forward's were."""
    for e in body.eqns:
      sub = _sub_program(e)
      if sub is not None:
        sub = _open(sub)
        sub_inner = _bind(sub, e.invars, inner)
        self._replay(sub, sub_inner, names, times)
        for v, w in zip(e.outvars, sub.outvars, strict=True):
          inner[v] = sub_inner.get(w, ("bwd", id(v))) if isinstance(w, jcore.Var) \
              else ("bwd", id(v))
        continue
      same = self._find(e, _key(e, inner))
      if same is not None:
        self.recomputed += [e] * times
        for v, w in zip(e.outvars, same.outvars, strict=True):
          inner[v] = names.get(w, ("out", id(w)))
      else:
        for v in e.outvars:
          inner[v] = ("bwd", id(v))


def _sub_program(eqn: Any) -> Any:
  """The program a call (or a checkpoint not differentiated) runs once, else None."""
  name = eqn.primitive.name
  if name in _REMAT and not eqn.params.get("differentiated"):
    return eqn.params.get("jaxpr")
  return eqn.params.get(_CALLS[name]) if name in _CALLS else None


def _bind(body: Any, args: Sequence[Any], names: dict[Any, Any]) -> dict[Any, Any]:
  """Names of a sub-program's inputs: the enclosing program's values passed to it."""
  inner: dict[Any, Any] = {v: ("const", id(v)) for v in body.constvars}
  for v, a in zip(body.invars, args[len(args) - len(body.invars):], strict=True):
    inner[v] = (("literal", repr(a.val), str(a.aval)) if isinstance(a, jcore.Literal)
                else names.get(a, ("in", id(a))))
  return inner


def _fpo_of(eqns: Sequence[Any]) -> int:
  """FPO of equations, each counted alone by jaxgreen's own rules."""
  total = 0
  for e in eqns:
    ins = list(dict.fromkeys(a for a in e.invars if isinstance(a, jcore.Var)))
    with warnings.catch_warnings():  # a one-equation program needs no debug info
      warnings.simplefilter("ignore", DeprecationWarning)
      jaxpr = jcore.Jaxpr([], ins, list(e.outvars), [e])
    total += int(count_jaxpr(jaxpr, dce=False).fpo)
  return total


def recompute_fpo(closed_jaxpr: Any) -> tuple[int, tuple[str, ...]]:
  """(FPO recomputed by rematerialisation, notes) of a traced step.

  ``hardware FPO − recompute_fpo(...)[0]`` is the model FPO. Equations inside
  ``while`` loops and ``cond`` branches are not searched (notes say so when a
  differentiated checkpoint is there).
  """
  jaxpr = _open(closed_jaxpr)
  if not _has_backward(jaxpr):
    return 0, ()
  # As counted: a forward value nobody uses is not computed, so not recomputed either.
  jaxpr, _ = dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
  scan = _Scan()
  scan.walk(jaxpr, {v: ("in", id(v)) for v in (*jaxpr.constvars, *jaxpr.invars)})
  return _fpo_of(scan.recomputed), tuple(dict.fromkeys(scan.notes))
