"""Argument parsing shared by subcommands: shape specs and MODULE:FUNCTION targets."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

_DTYPES = {
    "f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
    "f8e4m3fn": "float8_e4m3fn", "f8e5m2": "float8_e5m2",
    "s64": "int64", "s32": "int32", "s16": "int16", "s8": "int8",
    "i64": "int64", "i32": "int32", "i16": "int16", "i8": "int8",
    "u64": "uint64", "u32": "uint32", "u16": "uint16", "u8": "uint8",
    "pred": "bool", "bool": "bool", "c64": "complex64", "c128": "complex128",
}
_SPEC = re.compile(r"^\s*([a-z0-9]+)\s*\[\s*([0-9,\s]*)\]\s*$")
_DIMS = re.compile(r"^[0-9]+(?:,[0-9]+)*$")  # no empty dimension: f32[8,,128] is a typo


def parse_shape_spec(spec: str):
  """``"f32[8,128]"`` -> ``jax.ShapeDtypeStruct((8, 128), float32)``; ``"f32[]"`` a scalar."""
  import jax
  import jax.numpy as jnp

  m = _SPEC.match(spec)
  dims = m.group(2).replace(" ", "") if m else ""
  if not m or m.group(1) not in _DTYPES or (dims and not _DIMS.match(dims)):
    raise ValueError(
        f"--arg {spec!r} is not a shape spec; write DTYPE[DIMS], e.g. f32[8,128], "
        f"bf16[4,1024,768] or s32[] (dtypes: {', '.join(sorted(_DTYPES))})")
  dims = tuple(int(d) for d in dims.split(",")) if dims else ()
  return jax.ShapeDtypeStruct(dims, jnp.dtype(_DTYPES[m.group(1)]))


def load_function(target: str) -> Any:
  """Loads ``package.module:function`` or ``path/to/file.py:function``."""
  if ":" not in target:
    raise ValueError(f"{target!r} is not MODULE:FUNCTION; write e.g. "
                     f"mypkg.model:train_step or ./model.py:loss")
  mod_name, _, attr = target.rpartition(":")
  if mod_name.endswith(".py") or "/" in mod_name:
    path = Path(mod_name)
    if not path.exists():
      raise FileNotFoundError(f"{target!r}: no file {path}")
    if not path.is_file():
      raise FileNotFoundError(f"{target!r}: {path} is not a file")
    # Registered under its stem (dataclasses and pickle look modules up by name), unless
    # that would replace a module already loaded, such as a file named json.py.
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) != str(path.resolve()):
      name = f"_jaxgreen_target_{name}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  else:
    if "" not in sys.path:
      sys.path.insert(0, "")
    module = importlib.import_module(mod_name)
  obj: Any = module
  for part in attr.split("."):
    if not hasattr(obj, part):
      raise ValueError(f"{target!r}: module {mod_name!r} has no attribute {attr!r}")
    obj = getattr(obj, part)
  if not callable(obj):
    raise TypeError(f"{target!r} is a {type(obj).__name__}, not a function")
  return obj


def print_result(args, data: dict, table: str) -> None:
  """Prints ``data`` as JSON with ``--json``, else a heading naming the call and ``table``."""
  import json

  if args.json:
    json.dump(data, sys.stdout, indent=2)
    print()
  else:
    print(f"{args.function}({', '.join(args.arg) or 'no arguments'})\n")
    print(table)
