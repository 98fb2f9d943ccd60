"""The chip table (units, a source for every figure) and the roofline arithmetic."""

from __future__ import annotations

import math

import pytest

from jaxgreen import chips
from jaxgreen.chips import CHIPS, LINK_SEND_SHARE, get_chip, mfu, roofline

FIGURES = ("hbm_bytes", "hbm_bandwidth", "link_bandwidth", "tdp_watts")


def test_brief_chips_present():
  for name in ("v4", "v5e", "v5p", "v6e", "v100", "a100", "h100", "h200", "b200"):
    assert name in CHIPS


@pytest.mark.parametrize("name", list(CHIPS))
def test_every_figure_has_a_source(name):
  c = CHIPS[name]
  for field in (*FIGURES, "peak_flops"):
    src = c.sources.get(field, "")
    value = getattr(c, field)
    published = any(v is not None for v in value.values()) if field == "peak_flops" \
        else value is not None
    assert src, f"{name}.{field} has no source"
    # A published figure names where; a missing one says it is unavailable.
    assert src.startswith("unavailable") != published, (name, field, src)


@pytest.mark.parametrize("name", list(CHIPS))
def test_units_are_plausible(name):
  c = CHIPS[name]
  bf16 = c.peak("bf16") or c.peak("fp16")
  assert 1e14 <= bf16 <= 1e16  # 100 TFLOP/s .. 10 PFLOP/s
  assert 8e9 <= c.hbm_bytes <= 300e9  # 8 GB .. 300 GB
  assert 2e11 <= c.hbm_bandwidth <= 1e13  # 200 GB/s .. 10 TB/s
  if c.link_bandwidth is not None:
    assert 1e11 <= c.link_bandwidth <= 1e13
  if c.tdp_watts is not None:
    assert 50 <= c.tdp_watts <= 1500
  fp8, fp32 = c.peak("fp8"), c.peak("fp32")
  if fp8 is not None:
    assert fp8 >= bf16  # fp8 is never slower than bf16
  if fp32 is not None:
    assert fp32 < bf16


def test_known_figures():
  assert get_chip("h100").peak("bf16") == 989e12  # NVIDIA H100 SXM datasheet
  assert get_chip("v5e").hbm_bandwidth == 819e9  # Cloud TPU v5e docs
  assert get_chip("v5e").link_bandwidth == 2 * 1600e9 / 8  # 1600 Gbps each way
  assert get_chip("v5e").tdp_watts is None  # Google publishes no TDP
  assert get_chip("v6e").hbm_bandwidth == 1638e9  # Cloud TPU v6e docs: 1638 GBps
  assert get_chip("v6e").link_bandwidth == 2 * 3200e9 / 8  # 800 GB/s both ways


def test_get_chip_from_targets():
  assert get_chip("tpu:v5e:4x4") is CHIPS["v5e"]
  assert get_chip("gpu:h100x8") is CHIPS["h100"]
  assert get_chip("gpu:h200") is CHIPS["h200"]
  assert get_chip("TPU:V5P:2x2x1") is CHIPS["v5p"]
  with pytest.raises(KeyError, match="known chips"):
    get_chip("gpu:rtx9000")


def test_dtype_keys():
  import jax.numpy as jnp

  c = get_chip("h100")
  assert c.peak(jnp.bfloat16) == 989e12
  assert c.peak("float8_e4m3fn") == 1979e12
  assert c.peak("float32") == 67e12


def test_roofline_arithmetic_tpu():
  r = roofline("v5e", flops=197e12, hbm_bytes=819e9 / 2, collective_bytes=200e9)
  assert r.compute_s == pytest.approx(1.0)  # 197e12 / 197e12
  assert r.memory_s == pytest.approx(0.5)  # 409.5e9 / 819e9
  # 200e9 B sent over half of 400e9 B/s both ways
  assert r.collective_s == pytest.approx(200e9 / (400e9 * LINK_SEND_SHARE))
  assert r.step_s == pytest.approx(1.0 + 1.0)  # max(1, 0.5) + 1
  assert r.bound == "compute"
  assert r.energy_j is None and any("TDP" in n for n in r.notes)
  assert r.intensity == pytest.approx(197e12 / 409.5e9)
  assert r.ridge == pytest.approx(197e12 / 819e9)


def test_roofline_arithmetic_gpu_energy():
  r = roofline("gpu:h100x8", flops=989e12, hbm_bytes=2 * 3350e9)
  assert r.compute_s == pytest.approx(1.0)
  assert r.memory_s == pytest.approx(2.0)  # 6700e9 / 3350e9
  assert r.step_s == pytest.approx(2.0) and r.bound == "memory"
  assert r.collective_s == 0.0
  assert r.energy_j == pytest.approx(700 * 2.0)  # TDP x step time
  assert r.to_dict()["energy_label"] == "estimate"


def test_roofline_fallbacks():
  r = roofline("v5e", flops=197e12, hbm_bytes=None, dtype="fp32")
  assert r.dtype == "bf16" and any("no published fp32 peak" in n for n in r.notes)
  assert r.memory_s is None and r.step_s == pytest.approx(1.0)
  r = roofline("v4", flops=1.0, hbm_bytes=1.0, collective_bytes=1.0)
  assert r.collective_s is None and r.step_s is None  # v4: no per-chip ICI figure
  with pytest.raises(ValueError, match="must be >= 0"):
    roofline("h100", flops=-1, hbm_bytes=0)


def test_mfu():
  assert mfu(989e12 / 2, 1.0, "h100") == pytest.approx(0.5)  # half the peak in 1 s
  assert mfu(459e12, 2.0, "tpu:v5p:2x2x1", "bf16") == pytest.approx(0.5)
  with pytest.raises(ValueError, match="measured_step_s"):
    mfu(1.0, 0.0, "h100")
  r = roofline("h100", flops=989e12, hbm_bytes=1.0)
  assert r.mfu(4.0) == pytest.approx(0.25)


def test_chip_table_rows():
  rows = chips.chip_table()
  assert len(rows) == len(CHIPS)
  assert all(len(r) == len(chips.CHIP_TABLE_HEADERS) for r in rows)
  v5e = next(r for r in rows if r[0] == "v5e")
  assert v5e[1] == "197" and v5e[-1] == "unavailable"
  assert not any(isinstance(x, float) and math.isnan(x) for r in rows for x in r)


def test_fp64_is_not_priced_at_the_fp32_peak():
  r = roofline("h100", flops=67e12, hbm_bytes=0.0, dtype="float64")
  assert r.dtype == "bf16"  # no published fp64 peak in the table: the fallback, labelled
  assert r.compute_s == 67e12 / 989e12  # flops / H100 dense bf16 peak
  assert any("fp64" in n for n in r.notes)


@pytest.mark.parametrize("kind, chip", [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"), ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", None), ("TPU v5 lite", "v5e"), ("TPU v5p", "v5p"), ("TPU v4", "v4"),
    ("TPU v6 lite", "v6e"), ("cpu", None),
])
def test_chip_of_device_kind(kind, chip):
  from jaxgreen.chips import chip_of_device_kind

  assert chip_of_device_kind(kind) == chip
