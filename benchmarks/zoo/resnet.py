"""ResNet-18/34/50/101/152 (He et al., 2016) in Flax linen, torchvision's layout.

torchvision's architecture: a 7x7/2 convolution stem (no bias) with BatchNorm and ReLU,
a 3x3/2 max pool, four stages of BasicBlocks (ResNet-18/34) or Bottlenecks (50/101/152,
expansion 4, stride on the 3x3 convolution, "ResNet v1.5"), a 1x1 convolution +
BatchNorm shortcut where the shape changes, global average pooling and a 1000-way
dense layer. Parameter counts equal torchvision's (11,689,512 for ResNet-18).

Example:
  >>> model, x = model_and_input(resnet50())
  >>> jaxgreen.flax.summary(model, x)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ._common import classifier_train_step

# torchvision's per-model figures (weights' metadata, "GFLOPS" there are multiply-
# accumulates, and "num_params"), https://pytorch.org/vision/stable/models.html
PUBLISHED = {
    "resnet18": {"params_pub": 11_689_512, "gmacs": 1.81},
    "resnet34": {"params_pub": 21_797_672, "gmacs": 3.66},
    "resnet50": {"params_pub": 25_557_032, "gmacs": 4.09},
    "resnet101": {"params_pub": 44_549_160, "gmacs": 7.80},
    "resnet152": {"params_pub": 60_192_808, "gmacs": 11.51},
}


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
  """Attributes: name, blocks per stage, ``bottleneck`` block type, classes, image size."""

  name: str
  stage_sizes: tuple[int, ...]
  bottleneck: bool
  num_classes: int = 1000
  image_size: int = 224
  width: int = 64


def resnet18(**kw) -> ResNetConfig:
  return ResNetConfig("resnet18", (2, 2, 2, 2), False, **kw)


def resnet34(**kw) -> ResNetConfig:
  return ResNetConfig("resnet34", (3, 4, 6, 3), False, **kw)


def resnet50(**kw) -> ResNetConfig:
  return ResNetConfig("resnet50", (3, 4, 6, 3), True, **kw)


def resnet101(**kw) -> ResNetConfig:
  return ResNetConfig("resnet101", (3, 4, 23, 3), True, **kw)


def resnet152(**kw) -> ResNetConfig:
  return ResNetConfig("resnet152", (3, 8, 36, 3), True, **kw)


CONFIGS: dict[str, Callable[..., ResNetConfig]] = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "resnet101": resnet101, "resnet152": resnet152,
}


def _conv(features: int, kernel: int, stride: int = 1, name: str | None = None) -> nn.Conv:
  pad = (kernel - 1) // 2  # torchvision pads 3x3 by 1 and 7x7 by 3
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((pad, pad),) * 2,
                 use_bias=False, name=name)


def _bn(train: bool, name: str, zero_init: bool = False) -> nn.BatchNorm:
  # torchvision: momentum 0.1 (Flax's 0.9), eps 1e-5.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones,
                      name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions; the first carries the stride."""

  features: int
  stride: int = 1
  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = nn.relu(_bn(train, "bn1")(_conv(self.features, 3, self.stride, "conv1")(x)))
    y = _bn(train, "bn2")(_conv(self.features, 3, 1, "conv2")(y))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = _bn(train, "downsample_bn")(_conv(self.features, 1, self.stride, "downsample")(x))
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (with the stride), 1x1 expand by 4."""

  features: int
  stride: int = 1
  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    out = self.features * self.expansion
    y = nn.relu(_bn(train, "bn1")(_conv(self.features, 1, 1, "conv1")(x)))
    y = nn.relu(_bn(train, "bn2")(_conv(self.features, 3, self.stride, "conv2")(y)))
    y = _bn(train, "bn3")(_conv(out, 1, 1, "conv3")(y))
    if self.stride != 1 or x.shape[-1] != out:
      x = _bn(train, "downsample_bn")(_conv(out, 1, self.stride, "downsample")(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """``__call__(images float[B, H, W, 3], train=False) -> logits float[B, classes]``."""

  config: ResNetConfig

  @nn.compact
  def __call__(self, x, train: bool = False):
    cfg = self.config
    x = nn.relu(_bn(train, "bn1")(_conv(cfg.width, 7, 2, "conv1")(x)))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    block = Bottleneck if cfg.bottleneck else BasicBlock
    for i, n in enumerate(cfg.stage_sizes):
      for j in range(n):
        stride = 2 if i > 0 and j == 0 else 1
        x = block(cfg.width * 2**i, stride, name=f"layer{i + 1}_{j}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(cfg.num_classes, name="fc")(x)


def model_and_input(config: ResNetConfig, batch_size: int = 1):
  """``(model, images)`` for inference profiling; images is a ShapeDtypeStruct."""
  s = config.image_size
  return ResNet(config), jax.ShapeDtypeStruct((batch_size, s, s, 3), jnp.float32)


def make_train_step(config: ResNetConfig, batch_size: int, **kw: Any):
  """``(train_step, (variables, opt_state, images, labels))``, all abstract.

  ``train_step(variables, opt_state, images, labels) -> (variables, opt_state, loss)``,
  AdamW on cross-entropy, BatchNorm in training mode (batch statistics updated).
  """
  s = config.image_size
  return classifier_train_step(ResNet(config), (s, s, 3), batch_size,
                               mutable=("batch_stats",), call_kwargs={"train": True}, **kw)
