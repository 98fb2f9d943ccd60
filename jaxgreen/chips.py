"""Public figures of accelerator chips, and roofline estimates built on them.

Every figure carries its source (a comment next to it and :attr:`Chip.sources`); a figure
that is not published is ``None`` and shows as "unavailable" downstream, never guessed.

Why one long module: it is mostly data. Every published figure jaxgreen uses (peak rates,
memory, bandwidths, power, the device properties XLA compiles for, list prices) is here,
each beside its source, so one file is all a reviewer reads to check a figure, and a new
chip or price is one entry here. In order: the record types (:class:`GpuTarget`,
:class:`Chip`); the tables (:data:`CHIPS`, the GPU device properties, :data:`TPU_CHIPS`,
:data:`GPU_CHIPS`); look-ups (:func:`get_chip`, :func:`gpu_target_config`); the
roofline (:func:`roofline`, :func:`mfu`); the prices (:class:`Price`, :data:`PRICES`).

An NVIDIA chip has two sets of figures: the datasheet's (decimal "80 GB", "3.35 TB/s"),
for roofline estimates, and the device properties the CUDA driver reports
(:class:`GpuTarget`: an H100's 84,942,979,072 B at 3,352,320,000,000 B/s), which XLA needs
to compile for the chip without one (:func:`gpu_target_config`).

Units: FLOP/s count a fused multiply-add as two operations (one MUL + one ADD, as FPO
does); bytes are bytes (1 GB = 1e9 B, 1 GiB = 2**30 B); bandwidths are bytes/s.
``link_bandwidth`` is the chip's published interconnect bandwidth counting both
directions (NVLink's "900 GB/s", TPU ICI "bidirectional ... per chip"), so a chip
*sends* at half of it (:data:`LINK_SEND_SHARE`).

Roofline, per device and step (:func:`roofline`)::

  compute s    = FLOPs / peak FLOP/s (for the program's dtype)
  memory s     = bytes accessed / HBM bandwidth
  collective s = collective bytes sent / (link bandwidth x LINK_SEND_SHARE)
  step s       = max(compute s, memory s) + collective s   (no overlap assumed)
  energy J     = TDP x step s                               (an estimate, labelled so)

Example:
  >>> chip = get_chip("h100")
  >>> chip.peak("bf16")
  989000000000000.0
  >>> roofline(chip, flops=989e12, hbm_bytes=335e9).step_s  # max(1 s compute, 0.1 s memory)
  1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# A device sends collective data over half of its links' published both-ways bandwidth.
LINK_SEND_SHARE = 0.5

DTYPES = ("fp8", "bf16", "fp16", "fp32")
_FIGURES = ("peak_flops", "hbm_bytes", "hbm_bandwidth", "link_bandwidth", "tdp_watts")

_T = 1e12
_GB = 1e9
_GIB = 2**30


@dataclasses.dataclass(frozen=True)
class GpuTarget:
  """Device properties of one NVIDIA GPU, as the CUDA driver reports them to XLA.

  These are the fields of XLA's ``GpuTargetConfigProto`` (``gpu_device_info``) that
  depend on the chip; :func:`gpu_target_config` fills in the ones common to all.

  Attributes:
    description: the device name the driver reports (``jax.Device.device_kind``).
    cc: CUDA compute capability (major, minor).
    sms, clock_ghz, fp32_per_sm: streaming multiprocessors, boost clock, FP32 lanes per SM.
    memory_bytes, bandwidth: device memory (bytes) and its bandwidth (memory clock x bus
      width, bytes/s) as the driver reports them.
    l2_bytes, smem_per_sm, smem_optin: L2 cache, shared memory per SM and per block
      (opt-in), bytes.
    source: where the figures come from.
  """

  description: str
  cc: tuple[int, int]
  sms: int
  clock_ghz: float
  memory_bytes: int
  bandwidth: int
  l2_bytes: int
  smem_per_sm: int
  smem_optin: int
  fp32_per_sm: int
  source: str


@dataclasses.dataclass(frozen=True)
class Chip:
  """One chip's public figures; ``None`` where the vendor publishes none.

  Attributes:
    name: short name, e.g. ``"v5e"``, ``"h100"``.
    vendor: ``"google"`` or ``"nvidia"``.
    description: the product the figures are for.
    peak_flops: dtype (``"bf16"``, ``"fp16"``, ``"fp8"``, ``"fp32"``) -> dense peak
      FLOP/s (no structured sparsity).
    hbm_bytes: device memory in bytes.
    hbm_bandwidth: device memory bandwidth, bytes/s.
    link_bandwidth: chip-to-chip bandwidth (ICI / NVLink), both directions, bytes/s.
    tdp_watts: thermal design power (board power), watts.
    sources: figure name -> where it was published.
    gpu_target: the device properties a deviceless GPU compilation uses (NVIDIA chips
      jaxgreen can compile for), else None.
  """

  name: str
  vendor: str
  description: str
  peak_flops: Mapping[str, float | None]
  hbm_bytes: float | None
  hbm_bandwidth: float | None
  link_bandwidth: float | None
  tdp_watts: float | None
  sources: Mapping[str, str]
  gpu_target: GpuTarget | None = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    object.__setattr__(self, "peak_flops", MappingProxyType(dict(self.peak_flops)))
    object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

  def peak(self, dtype: str = "bf16") -> float | None:
    """Dense peak FLOP/s for ``dtype`` (``"bf16"``, ``"fp8"``, ``"fp32"``...), or None."""
    return self.peak_flops.get(_dtype_key(dtype))

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.pop("gpu_target")
    d["peak_flops"] = dict(self.peak_flops)
    d["sources"] = dict(self.sources)
    return d


def _tpu(name, description, bf16, fp8, hbm, hbm_bw, link, tdp, src, tdp_src=None):
  return Chip(
      name, "google", description, {"bf16": bf16, "fp8": fp8, "fp16": None, "fp32": None},
      hbm, hbm_bw, link, tdp,
      {"peak_flops": src, "hbm_bytes": src, "hbm_bandwidth": src,
       "link_bandwidth": src if link is not None else "unavailable: not published per chip",
       "tdp_watts": tdp_src or "unavailable: Google publishes no TDP for this chip"})


def _nvidia(name, description, bf16, fp16, fp8, fp32, hbm, hbm_bw, link, tdp, src,
            gpu_target=None):
  return Chip(name, "nvidia", description,
              {"bf16": bf16, "fp16": fp16, "fp8": fp8, "fp32": fp32},
              hbm, hbm_bw, link, tdp, {f: src for f in _FIGURES}, gpu_target)


# -- the tables -------------------------------------------------------------------------

_KIB = 2**10
_MIB = 2**20
_XLA_SPECS = "XLA's device specs (xla/tools/hlo_opt/gpu_specs/{}.txtpb)"

# The device properties XLA compiles for, as the CUDA driver reports them. Sources: XLA's
# own device spec files (read from real GPUs with the driver's device query), else the
# vendor's architecture whitepaper / tuning guide for the chip.
_A100 = GpuTarget(
    "NVIDIA A100-SXM4-80GB", (8, 0), 108, 1.41, 85_100_068_864, 2_039_040_000_000, 40 * _MIB,
    167_936, 166_912, 64, _XLA_SPECS.format("a100_sxm_80") + ": 108 SMs, 1.41 GHz, "
    "85,100,068,864 B, 2,039,040,000,000 B/s (1593 MHz x 5120-bit HBM2e), 40 MiB L2, "
    "164 KiB shared memory per SM (163 KiB per block), 64 FP32 lanes per SM")
_H100 = GpuTarget(
    "NVIDIA H100 80GB HBM3", (9, 0), 132, 1.98, 84_942_979_072, 3_352_320_000_000, 50 * _MIB,
    233_472, 232_448, 128, _XLA_SPECS.format("h100_sxm") + ": 132 SMs, 1.98 GHz, "
    "3,352,320,000,000 B/s (2619 MHz x 5120-bit HBM3), 50 MiB L2, 228 KiB shared memory per "
    "SM (227 KiB per block); 84,942,979,072 B as an H100 SXM5's driver reports it")
# NVIDIA H200 datasheet (2024): the H100 SXM die with 141 GB HBM3e at 4.8 TB/s.
_H200 = dataclasses.replace(
    _H100, description="NVIDIA H200", memory_bytes=141 * 10**9, bandwidth=4_800_000_000_000,
    source="NVIDIA H200 datasheet (2024): the H100 SXM die (its device properties) with "
    "141 GB HBM3e at 4.8 TB/s")
# NVIDIA Blackwell architecture technical brief and DGX B200 datasheet (2024).
_B200 = GpuTarget(
    "NVIDIA B200", (10, 0), 148, 1.965, 180 * 10**9, 8_000_000_000_000, 126 * _MIB, 233_472,
    232_448, 128, "NVIDIA Blackwell technical brief and DGX B200 datasheet (2024): 148 SMs, "
    "180 GB HBM3e at 8 TB/s, 126 MiB L2 (CUDA 12.8 deviceQuery), compute capability 10.0, "
    "Hopper-sized shared memory")
# NVIDIA L4 datasheet (2023) and the Ada tuning guide.
_L4 = GpuTarget(
    "NVIDIA L4", (8, 9), 58, 2.04, 24 * 2**30, 300_000_000_000, 48 * _MIB, 100 * _KIB,
    99 * _KIB, 128, "NVIDIA L4 datasheet (2023) and Ada tuning guide: 58 SMs, 2.04 GHz, "
    "24 GiB GDDR6 at 300 GB/s, 48 MiB L2, 100 KiB shared memory per SM (99 KiB per block)")


CHIPS: Mapping[str, Chip] = MappingProxyType({
    # Google Cloud TPU v4 docs (cloud.google.com/tpu/docs/v4): 275 TFLOP/s bf16 per chip,
    # 32 GiB HBM2 at 1200 GB/s, measured min/mean/max power 90/170/192 W. No fp8, no
    # published fp32 peak, no per-chip ICI bandwidth (only 1.1 PB/s all-reduce per pod).
    "v4": _tpu("v4", "Google Cloud TPU v4", 275 * _T, None, 32 * _GIB, 1200 * _GB, None,
               192.0, "Google Cloud TPU v4 docs: 275 TFLOP/s bf16, 32 GiB HBM2, 1200 GB/s",
               "Google Cloud TPU v4 docs: 192 W maximum measured power (no TDP published)"),
    # Google Cloud TPU v5e docs (cloud.google.com/tpu/docs/v5e): 197 TFLOP/s bf16,
    # 16 GB HBM2 at 819 GB/s, bidirectional ICI 400 GB/s per chip (1600 Gbps one way).
    "v5e": _tpu("v5e", "Google Cloud TPU v5e", 197 * _T, None, 16 * _GB, 819 * _GB,
                2 * 1600e9 / 8, None,
                "Google Cloud TPU v5e docs: 197 TFLOP/s bf16, 16 GB HBM2 at 819 GB/s, "
                "bidirectional ICI 400 GB/s per chip"),
    # Google Cloud TPU v5p docs (docs.cloud.google.com/tpu/docs/v5p-training): 459 TFLOP/s
    # bf16, 459 TFLOP/s fp8, 95 GiB HBM at 2765 GB/s, bidirectional ICI 1200 GB/s per chip.
    "v5p": _tpu("v5p", "Google Cloud TPU v5p", 459 * _T, 459 * _T, 95 * _GIB, 2765 * _GB,
                1200 * _GB, None,
                "Google Cloud TPU v5p docs: 459 TFLOP/s bf16 and fp8, 95 GiB HBM at "
                "2765 GB/s, bidirectional ICI 1200 GB/s per chip"),
    # Google Cloud TPU v6e docs (docs.cloud.google.com/tpu/docs/v6e): 918 TFLOP/s bf16,
    # 32 GB HBM at 1638 GB/s, bidirectional ICI 800 GB/s per chip (3200 Gbps one way).
    "v6e": _tpu("v6e", "Google Cloud TPU v6e (Trillium)", 918 * _T, None, 32 * _GB,
                1638 * _GB, 800 * _GB, None,
                "Google Cloud TPU v6e docs: 918 TFLOP/s bf16, 32 GB HBM at 1638 GB/s, "
                "bidirectional ICI 800 GB/s per chip"),
    # NVIDIA Tesla V100 SXM2 datasheet: 125 TFLOP/s fp16 tensor, 15.7 TFLOP/s fp32,
    # 32 GB HBM2 at 900 GB/s, NVLink 300 GB/s, 300 W. No bf16, no fp8.
    "v100": _nvidia("v100", "NVIDIA V100 SXM2 32GB", None, 125 * _T, None, 15.7 * _T,
                    32 * _GB, 900 * _GB, 300 * _GB, 300.0,
                    "NVIDIA V100 SXM2 datasheet: 125 TFLOP/s fp16 tensor, 15.7 TFLOP/s "
                    "fp32, 32 GB HBM2 at 900 GB/s, NVLink 300 GB/s, 300 W"),
    # NVIDIA A100 datasheet (SXM4 80GB): 312 TFLOP/s bf16/fp16 dense, 19.5 TFLOP/s fp32,
    # 80 GB HBM2e at 2039 GB/s, NVLink 600 GB/s, 400 W. No fp8.
    "a100": _nvidia("a100", "NVIDIA A100 SXM4 80GB", 312 * _T, 312 * _T, None, 19.5 * _T,
                    80 * _GB, 2039 * _GB, 600 * _GB, 400.0,
                    "NVIDIA A100 datasheet (SXM4 80GB): 312 TFLOP/s bf16 dense, 19.5 "
                    "TFLOP/s fp32, 2039 GB/s, NVLink 600 GB/s, 400 W", _A100),
    # NVIDIA H100 SXM datasheet: 989 TFLOP/s dense bf16/fp16 (1979 with sparsity),
    # 1979 TFLOP/s dense fp8, 67 TFLOP/s fp32, 80 GB at 3.35 TB/s, NVLink 900 GB/s, 700 W.
    "h100": _nvidia("h100", "NVIDIA H100 SXM5 80GB", 989 * _T, 989 * _T, 1979 * _T, 67 * _T,
                    80 * _GB, 3350 * _GB, 900 * _GB, 700.0,
                    "NVIDIA H100 SXM datasheet: 989 TFLOP/s dense bf16, 1979 fp8, 67 fp32, "
                    "80 GB at 3.35 TB/s, NVLink 900 GB/s, 700 W", _H100),
    # NVIDIA H200 SXM datasheet: H100's compute (989 bf16, 1979 fp8 dense, 67 fp32),
    # 141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s, up to 700 W.
    "h200": _nvidia("h200", "NVIDIA H200 SXM 141GB", 989 * _T, 989 * _T, 1979 * _T, 67 * _T,
                    141 * _GB, 4800 * _GB, 900 * _GB, 700.0,
                    "NVIDIA H200 SXM datasheet: 989 TFLOP/s dense bf16, 1979 fp8, 67 fp32, "
                    "141 GB at 4.8 TB/s, NVLink 900 GB/s, 700 W", _H200),
    # NVIDIA HGX B200 datasheet, 8 GPUs: 36 PFLOP/s bf16 and 72 PFLOP/s fp8 with sparsity
    # (dense: half, so 2.25 and 4.5 PFLOP/s per GPU), 600 TFLOP/s fp32 (75 per GPU);
    # DGX B200: 1440 GB HBM3e at 64 TB/s (180 GB at 8 TB/s per GPU); fifth-generation
    # NVLink 1.8 TB/s per GPU; 1000 W per GPU.
    "b200": _nvidia("b200", "NVIDIA B200 (HGX B200)", 2250 * _T, 2250 * _T, 4500 * _T,
                    75 * _T, 180 * _GB, 8000 * _GB, 1800 * _GB, 1000.0,
                    "NVIDIA HGX/DGX B200 datasheets: 36 PFLOP/s bf16 sparse per 8 GPUs "
                    "(2.25 dense per GPU), 4.5 fp8 dense, 75 TFLOP/s fp32, 180 GB at 8 TB/s, "
                    "NVLink 1.8 TB/s, 1000 W", _B200),
    # NVIDIA L4 datasheet: 242 TFLOP/s bf16 and 485 fp8 with sparsity (121 and 242.5
    # dense), 30.3 TFLOP/s fp32, 24 GB GDDR6 at 300 GB/s, 72 W; PCIe only, no NVLink.
    "l4": Chip("l4", "nvidia", "NVIDIA L4 24GB",
               {"bf16": 121 * _T, "fp16": 121 * _T, "fp8": 242.5 * _T, "fp32": 30.3 * _T},
               24 * _GB, 300 * _GB, None, 72.0,
               {**{f: "NVIDIA L4 datasheet: 121 TFLOP/s bf16 dense (242 sparse), 242.5 fp8 "
                      "dense, 30.3 TFLOP/s fp32, 24 GB GDDR6 at 300 GB/s, 72 W"
                   for f in _FIGURES},
                "link_bandwidth": "unavailable: the L4 has no NVLink (PCIe Gen4 only)"},
               _L4),
})


# TPU chips libtpu's deviceless topologies accept: name -> (topology name prefix, slice
# dimensions). Source: the topology names of the Google Cloud TPU docs ("v5e:2x2",
# "v4:2x2x1"): a v5e/v6e slice is 2-D (e.g. 2x2, 16x16); v4/v5p slices are 3-D (e.g. 2x2x1,
# 8x8x8).
TPU_CHIPS: Mapping[str, tuple[str, int]] = MappingProxyType({
    "v4": ("v4", 3), "v5e": ("v5e", 2), "v5p": ("v5p", 3), "v6e": ("v6e", 2),
})

#: NVIDIA chips jaxgreen compiles for without the hardware: name -> device properties.
GPU_CHIPS: Mapping[str, GpuTarget] = MappingProxyType(
    {name: c.gpu_target for name, c in CHIPS.items() if c.gpu_target is not None})


# -- look-ups ---------------------------------------------------------------------------

def gpu_target_config(chip: str | GpuTarget) -> str:
  """The ``GpuTargetConfigProto`` text for ``chip`` (only fields jaxlib 0.10.2 knows).

  The fields common to the chips (warp size, block and grid limits, registers) are
  those of XLA's device spec files; the cuDNN version is the one jaxlib's CUDA plugin
  is built with.

  Args:
    chip: a key of :data:`GPU_CHIPS` or a :class:`GpuTarget`.

  Returns:
    Protobuf text format, for ``topologies.get_topology_desc(target_config=...)``.

  Example:
    >>> "core_count: 132" in gpu_target_config("h100")
    True
  """
  c = GPU_CHIPS[chip] if isinstance(chip, str) else chip
  major, minor = c.cc
  cc = f"major: {major}" + (f" minor: {minor}" if minor else "")
  return (
      f"gpu_device_info {{ cuda_compute_capability {{ {cc} }} core_count: {c.sms} "
      f"threads_per_warp: 32 threads_per_block_limit: 1024 threads_per_core_limit: "
      f"{1536 if c.cc == (8, 9) else 2048} "
      f"shared_memory_per_block: 49152 shared_memory_per_block_optin: {c.smem_optin} "
      f"shared_memory_per_core: {c.smem_per_sm} memory_bandwidth: {c.bandwidth} "
      f"l2_cache_size: {c.l2_bytes} clock_rate_ghz: {c.clock_ghz} "
      f"device_memory_size: {c.memory_bytes} fpus_per_core: {c.fp32_per_sm} "
      f"registers_per_core_limit: 65536 registers_per_block_limit: 65536 "
      f"block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535 "
      f"thread_dim_limit_x: 1024 thread_dim_limit_y: 1024 thread_dim_limit_z: 64 }} "
      f'platform_name: "CUDA" dnn_version_info {{ major: 9 minor: 8 }} '
      f'device_description_str: "{c.description}"')


def _dtype_key(dtype: Any) -> str:
  if not isinstance(dtype, str):
    try:
      import numpy as np

      dtype = np.dtype(dtype).name
    except TypeError:
      dtype = str(dtype)
  s = dtype.lower()
  if s.startswith(("f8", "float8", "fp8")):
    return "fp8"
  return {"bfloat16": "bf16", "float16": "fp16", "f16": "fp16", "float32": "fp32",
          "f32": "fp32", "float64": "fp64", "f64": "fp64"}.get(s, s)


# jax device_kind substring (lower case, most specific first) -> chip name. Sources: the
# device name the CUDA driver reports (:attr:`GpuTarget.description`, e.g. "NVIDIA H100
# 80GB HBM3" -> h100) and the device kinds libtpu reports (Google Cloud TPU docs: "TPU v4",
# "TPU v5 lite" for v5e, "TPU v5" for v5p, "TPU v6 lite" for v6e).
_DEVICE_KINDS = (("h200", "h200"), ("h100", "h100"), ("a100", "a100"), ("v100", "v100"),
                 ("b200", "b200"), ("nvidia l4 ", "l4"), ("tpu v4", "v4"), ("tpu v5 lite", "v5e"),
                 ("tpu v5e", "v5e"), ("tpu v5p", "v5p"), ("tpu v5", "v5p"),
                 ("tpu v6 lite", "v6e"), ("tpu v6e", "v6e"))


def chip_of_device_kind(device_kind: str) -> str | None:
  """The chip name for a ``jax.Device.device_kind``, or None when it is not known."""
  kind = (device_kind or "").lower() + " "  # "NVIDIA L4 " but not "NVIDIA L40S "
  return next((name for sub, name in _DEVICE_KINDS if sub in kind), None)


def get_chip(name: str | Any) -> Chip:
  """The :class:`Chip` for a chip name (``"v5e"``, ``"h100"``) or a target.

  Args:
    name: a chip name, a target string (``"tpu:v5e:4x4"``, ``"gpu:h100x8"``) or a
      :class:`jaxgreen.targets.Target`.

  Raises:
    KeyError: for an unknown chip, naming the known ones.
  """
  if isinstance(name, Chip):
    return name
  chip = getattr(name, "chip", None)
  if chip is None:
    s = str(name).strip().lower()
    parts = s.split(":")
    if len(parts) >= 2 and parts[0] in ("tpu", "gpu"):
      s = parts[1]
      if parts[0] == "gpu":
        s = s.split("x")[0] if s not in CHIPS else s
    chip = s
  if chip not in CHIPS:
    raise KeyError(f"get_chip(name={name!r}): no figures for chip {chip!r}; known chips: "
                   f"{', '.join(CHIPS)}")
  return CHIPS[chip]


# -- roofline ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Roofline:
  """A roofline estimate of one step on one device; ``None`` where a figure is missing.

  Attributes:
    chip: the chip's name.
    dtype: the dtype whose peak was used.
    flops: floating-point operations per device (FPO: ADD + MUL).
    hbm_bytes: bytes read and written in device memory.
    collective_bytes: bytes each device sends in collectives.
    compute_s: ``flops / peak``.
    memory_s: ``hbm_bytes / HBM bandwidth``.
    collective_s: ``collective_bytes / (link bandwidth x LINK_SEND_SHARE)``.
    step_s: ``max(compute_s, memory_s) + collective_s`` (an estimate).
    energy_j: ``TDP x step_s`` per device (an estimate); None without a published TDP.
    intensity: arithmetic intensity, ``flops / hbm_bytes`` (FLOP per byte).
    ridge: the chip's ridge point, ``peak / HBM bandwidth`` (FLOP per byte).
    notes: why a figure is missing or which fallback was used.
  """

  chip: str
  dtype: str
  flops: float
  hbm_bytes: float | None
  collective_bytes: float
  compute_s: float | None
  memory_s: float | None
  collective_s: float | None
  step_s: float | None
  energy_j: float | None
  intensity: float | None
  ridge: float | None
  notes: tuple[str, ...] = ()

  @property
  def bound(self) -> str:
    """``"compute"``, ``"memory"`` or ``"unavailable"``: which roof is lower."""
    if self.compute_s is None or self.memory_s is None:
      return "unavailable"
    return "compute" if self.compute_s >= self.memory_s else "memory"

  def mfu(self, measured_step_s: float) -> float | None:
    """Model FLOPs utilisation: ``flops / (measured_step_s x peak)``; see :func:`mfu`."""
    chip = get_chip(self.chip)
    return mfu(self.flops, measured_step_s, chip, self.dtype)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self) | {"bound": self.bound, "energy_label": "estimate"}


def roofline(chip: str | Chip, *, flops: float, hbm_bytes: float | None,
             collective_bytes: float = 0.0, dtype: str = "bf16") -> Roofline:
  """Estimates one step's time and energy on one device of ``chip``.

  ``step_s = max(flops / peak, hbm_bytes / HBM bandwidth) + collective_bytes /
  (link bandwidth x LINK_SEND_SHARE)``; ``energy_j = TDP x step_s``. Where the peak for
  ``dtype`` is not published, the bf16 peak is used and a note says so.

  Args:
    chip: a chip name, target string or :class:`Chip`.
    flops: FLOPs per device (FPO).
    hbm_bytes: bytes accessed per device (None: unknown, so no memory roof).
    collective_bytes: bytes each device sends in collectives.
    dtype: the program's main floating-point dtype.

  Returns:
    A :class:`Roofline`.

  Example:
    >>> r = roofline("v5e", flops=197e12, hbm_bytes=819e9 / 2)
    >>> r.compute_s, r.memory_s  # 197e12 / 197e12, 409.5e9 / 819e9
    (1.0, 0.5)
  """
  c = get_chip(chip)
  if flops < 0 or (hbm_bytes is not None and hbm_bytes < 0) or collective_bytes < 0:
    raise ValueError(f"roofline(flops={flops}, hbm_bytes={hbm_bytes}, collective_bytes="
                     f"{collective_bytes}): figures must be >= 0")
  notes: list[str] = []
  key = _dtype_key(dtype)
  peak = c.peak(key)
  if peak is None:
    peak = c.peak("bf16") or c.peak("fp16")
    used = "bf16" if c.peak("bf16") else "fp16"
    if peak is not None:
      notes.append(f"{c.name}: no published {key} peak; the {used} peak was used")
      key = used
  compute_s = flops / peak if peak else None
  if peak is None:
    notes.append(f"{c.name}: no published peak FLOP/s: compute time unavailable")
  memory_s = (hbm_bytes / c.hbm_bandwidth
              if hbm_bytes is not None and c.hbm_bandwidth else None)
  if hbm_bytes is None:
    notes.append("bytes accessed unavailable: memory time unavailable")
  if collective_bytes == 0:
    collective_s: float | None = 0.0
  elif c.link_bandwidth:
    collective_s = collective_bytes / (c.link_bandwidth * LINK_SEND_SHARE)
  else:
    collective_s = None
    notes.append(f"{c.name}: no published per-chip link bandwidth: collective time "
                 f"unavailable")
  roofs = [s for s in (compute_s, memory_s) if s is not None]
  step_s = (max(roofs) + collective_s) if roofs and collective_s is not None else None
  energy_j = c.tdp_watts * step_s if c.tdp_watts is not None and step_s is not None else None
  if c.tdp_watts is None:
    notes.append(f"{c.name}: no published TDP: energy unavailable")
  intensity = flops / hbm_bytes if hbm_bytes else None
  ridge = peak / c.hbm_bandwidth if peak and c.hbm_bandwidth else None
  return Roofline(c.name, key, flops, hbm_bytes, collective_bytes, compute_s, memory_s,
                  collective_s, step_s, energy_j, intensity, ridge, tuple(notes))


def mfu(flops: float, measured_step_s: float, chip: str | Chip,
        dtype: str = "bf16") -> float | None:
  """Model FLOPs utilisation of one device: ``flops / (measured_step_s x peak)``.

  Args:
    flops: useful FLOPs per device per step (e.g. global FPO / devices).
    measured_step_s: a measured step time in seconds.
    chip: a chip name, target string or :class:`Chip`.
    dtype: the dtype whose peak is the reference (bf16 if that one is not published).

  Returns:
    A fraction in [0, 1] for a plausible measurement; None without a published peak.
  """
  if not measured_step_s or measured_step_s <= 0 or not math.isfinite(measured_step_s):
    raise ValueError(f"mfu(measured_step_s={measured_step_s!r}): pass a positive step "
                     f"time in seconds")
  c = get_chip(chip)
  peak = c.peak(dtype) or c.peak("bf16") or c.peak("fp16")
  return flops / (measured_step_s * peak) if peak else None


# -- prices -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Price:
  """A published on-demand list price of one chip for one hour.

  Attributes:
    usd_per_chip_hour: US dollars per chip (one TPU chip, one GPU) per hour.
    offer: what is priced (provider, machine type, region).
    source: where the price is published.
    date: when it was read from there (prices change; check before quoting).
  """

  usd_per_chip_hour: float
  offer: str
  source: str
  date: str


#: On-demand list prices per chip-hour (no committed-use or spot discounts). Chips not
#: listed have no price here: a forecast's cost is then unavailable unless given.
PRICES: Mapping[str, Price] = MappingProxyType({
    # Google Cloud TPU pricing page (cloud.google.com/tpu/pricing), on-demand price per
    # chip-hour in us-central1 (v5e also us-west4, v4 us-central2).
    "v4": Price(3.22, "Google Cloud TPU v4, on-demand, us-central2",
                "cloud.google.com/tpu/pricing", "2024-06"),
    "v5e": Price(1.20, "Google Cloud TPU v5e, on-demand, us-central1",
                 "cloud.google.com/tpu/pricing", "2024-06"),
    "v5p": Price(4.20, "Google Cloud TPU v5p, on-demand, us-east5",
                 "cloud.google.com/tpu/pricing", "2024-06"),
    "v6e": Price(2.70, "Google Cloud TPU v6e, on-demand, us-east1",
                 "cloud.google.com/tpu/pricing", "2024-12"),
    # Google Compute Engine GPU pricing (cloud.google.com/compute/gpus-pricing): the
    # a3-highgpu-8g machine (8 x H100 80GB) on demand in us-central1, $88.49 per hour,
    # divided by its 8 GPUs.
    "h100": Price(88.49 / 8, "Google Cloud a3-highgpu-8g (8 x H100) / 8, on-demand, "
                  "us-central1", "cloud.google.com/compute/gpus-pricing", "2024-06"),
})


def chip_table() -> list[list[str]]:
  """Rows (chip, bf16, fp8, fp32 TFLOP/s, HBM GB, HBM TB/s, link GB/s, TDP W) for a table."""
  def f(v, scale, fmt="{:,.0f}"):
    return "unavailable" if v is None else fmt.format(v / scale)

  return [[c.name, f(c.peak("bf16"), _T), f(c.peak("fp8"), _T), f(c.peak("fp32"), _T, "{:.1f}"),
           f(c.hbm_bytes, _GB), f(c.hbm_bandwidth, 1e12, "{:.2f}"), f(c.link_bandwidth, _GB),
           f(c.tdp_watts, 1)] for c in CHIPS.values()]


CHIP_TABLE_HEADERS = ("chip", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp32 TFLOP/s", "HBM GB",
                      "HBM TB/s", "link GB/s", "TDP W")
