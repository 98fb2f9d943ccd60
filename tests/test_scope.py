"""clean_scope: jax name stacks and HLO op_name paths reduced to one module path."""

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src._scope import clean_scope, join


@pytest.mark.parametrize("raw,clean", [
    ("", ""),
    ("MLP/Dense_1", "MLP/Dense_1"),
    ("transpose(jvp(MLP))/Dense_1", "MLP/Dense_1"),
    ("jit(step)/jit(main)/jvp(MLP)/Dense_1/dot_general", "MLP/Dense_1/dot_general"),
    ("jvp(a/b)", "a/b"),  # a wrapper holding a path
    ("transpose(jvp(a/b))/c", "a/b/c"),
    ("vmap(jvp(enc))/layer(0)", "enc/layer(0)"),  # non-wrapper parentheses kept
    ("remat(checkpoint(blk))/x", "blk/x"),
    ("pjit(g)/a", "a"),
    ("jit(f)", ""),
    ("transpose(jvp(jit(inner)))/x", "x"),  # a jit under wrappers is dropped too
    ("jvp()/a", "a"),
    ("a//b", "a/b"),
    ("M/rematted_computation/Blk_0", "M/Blk_0"),  # recompute belongs to the block
])
def test_clean_scope(raw, clean):
  assert clean_scope(raw) == clean


@pytest.mark.parametrize("prefix,scope,joined", [
    ("", "", ""), ("a", "", "a"), ("", "b", "b"), ("a", "b/c", "a/b/c"),
])
def test_join(prefix, scope, joined):
  assert join(prefix, scope) == joined


def test_forward_and_backward_work_share_a_scope():
  def loss(w, x):
    with jax.named_scope("layer"):
      return jnp.sum(jnp.tanh(x @ w))

  s = jax.ShapeDtypeStruct
  c = jaxgreen.count(jax.grad(loss))(s((4, 3), jnp.float32), s((2, 4), jnp.float32))
  assert set(c.by_scope) <= {"", "layer"}
  assert c.by_scope["layer"].muls > 0
  assert sum(v.fpo for v in c.by_scope.values()) == c.fpo


def test_remat_backward_is_not_nested_in_itself():
  # nn.remat's backward runs under transpose(jvp(M))/jvp(M): one scope, two transforms.
  assert clean_scope("transpose(jvp(M))/jvp(M)/r/d") == "M/r/d"
  # a genuinely nested module of the same name, outside transforms, is kept
  assert clean_scope("M/M/d") == "M/M/d"
