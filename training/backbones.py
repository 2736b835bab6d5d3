"""Our own backbones (torchvision does not import beside torch 2.13): CIFAR ResNets, a CIFAR-style
ResNet-18, a small MobileNetV2-style net and a wide, shallow VGG-style net after airbench
(`AirNet`), each with `forward_features` / `forward_head`.

`input_size` builds the *native* variant of the same network: a stride-2 stage keeps stride 1
once the feature map would drop below 4x4, so an 8- or 16-px input costs 4-16x fewer FLOPs than
upsampling it to 32 px while the deepest layers still see a 4x4 map.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lowres_sdk.errors import InputError

MIN_FEATURE_MAP = 4


def _stride(nominal: int, current: int) -> int:
    return 2 if nominal == 2 and current // 2 >= MIN_FEATURE_MAP else 1


class Backbone(nn.Module):
    """Common surface: ``forward_features`` (pooled embedding, [N, num_features]) and
    ``forward_head`` (logits), ``forward = head(features)``."""

    num_features: int
    input_size: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Backbone):
    """A stack of BasicBlock stages after a 3x3 stride-1 stem (CIFAR style)."""

    def __init__(self, blocks: list[int], widths: list[int], strides: list[int], num_classes: int,
                 input_size: int = 32):
        super().__init__()
        self.input_size = input_size
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin, size = [], widths[0], input_size
        for n, cout, nominal in zip(blocks, widths, strides):
            s = _stride(nominal, size)
            size //= s
            for i in range(n):
                layers.append(BasicBlock(cin, cout, s if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward_features(self, x):
        return self.layers(self.stem(x)).mean(dim=(2, 3))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNet(Backbone):
    """A small MobileNetV2-style net for CIFAR-sized input (stride-1 stem)."""

    # (expansion, channels, blocks, nominal stride)
    CONFIG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1)]

    def __init__(self, num_classes: int, input_size: int = 32, width: float = 1.0, last: int = 256):
        super().__init__()
        self.input_size = input_size
        c0 = _round(32 * width)
        layers = [nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU6()]
        cin, size = c0, input_size
        for t, c, n, nominal in self.CONFIG:
            s = _stride(nominal, size)
            size //= s
            for i in range(n):
                layers.append(InvertedResidual(cin, _round(c * width), s if i == 0 else 1, t))
                cin = _round(c * width)
        last = _round(last * max(1.0, width))
        layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.num_features = last
        self.fc = nn.Linear(last, num_classes)
        _init(self)

    def forward_features(self, x):
        return self.features(x).mean(dim=(2, 3))


class AirBlock(nn.Module):
    """conv -> (2x2 max-pool) -> BN -> act -> conv -> BN -> act: airbench's block (act: ReLU or GELU).
    ``pool_first``: the max-pool before the first conv instead (same weights, that conv 4x cheaper)."""

    def __init__(self, cin: int, cout: int, pool: bool, act: type[nn.Module] = nn.ReLU, pool_first: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = act()
        self.pool_first = pool_first

    def forward(self, x):
        x = self.conv1(self.pool(x)) if self.pool_first else self.pool(self.conv1(x))
        x = self.act(self.bn1(x))
        return self.act(self.bn2(self.conv2(x)))


class AirNet(Backbone):
    """A wide, shallow VGG-style net after Keller Jordan's airbench (CIFAR-10 94 % in ~10 epochs at
    32 px): a 3x3 stem and three AirBlocks, global max-pooling. Few, wide convolutions make big
    GEMMs, so on a CPU it trains and runs faster per FLOP than the thin CIFAR ResNets. Widths are
    (64, 128, 256) x ``width``; a block pools only while the map stays >= 4x4 (native variants)."""

    WIDTHS = (64, 128, 256)
    ACT: type[nn.Module] = nn.ReLU
    POOL_FIRST = (False, False, False)  # per block: max-pool before its first convolution (`AirBlock`)

    def __init__(self, num_classes: int, input_size: int = 32, width: float = 1.0):
        super().__init__()
        self.input_size = input_size
        widths = [_round(c * width) for c in self.WIDTHS]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), self.ACT())
        blocks, cin, size = [], widths[0], input_size
        for cout, pool_first in zip(widths, self.POOL_FIRST):
            pool = _stride(2, size) == 2
            size //= 2 if pool else 1
            blocks.append(AirBlock(cin, cout, pool, self.ACT, pool_first))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward_features(self, x):
        return self.blocks(self.stem(x)).amax(dim=(2, 3))


class AirNetPrepool(AirNet):
    """`AirNet` whose blocks max-pool before their first convolution: the same weights (an `AirNet`
    run can initialise it), but every convolution after the stem runs on the pooled map -- at 32 px
    x0.5, 25 MFLOPs instead of 54 (the first block's first convolution alone was 19)."""

    POOL_FIRST = (True, True, True)


class AirNetPrepool1(AirNet):
    """`AirNet` whose first block alone pools before its first convolution (again the same weights):
    the costliest convolution on a quarter of the map, the later blocks as in `AirNet` -- at 32 px
    x0.5, 40 MFLOPs; it keeps more of `AirNet`'s function than `AirNetPrepool` (switched on
    untrained, the shipped 32 px net keeps 73 % of the kept CIFAR classes at 32 px, 0 % pooling first in all
    three blocks)."""

    POOL_FIRST = (True, False, False)


class AirBench(AirNet):
    """`AirNet` with the rest of airbench94's network: widths (64, 256, 256), GELU, BatchNorm scales
    frozen at 1 (only the shifts learn), convolutions that start as identity on their first input
    channels (dirac), logits scaled by 1/9. At native 16 px: 100 MFLOPs, within the 111-MFLOP budget."""

    WIDTHS = (64, 256, 256)
    ACT = nn.GELU
    LOGIT_SCALE = 1 / 9

    def __init__(self, num_classes: int, input_size: int = 32, width: float = 1.0):
        super().__init__(num_classes, input_size, width)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.requires_grad_(False)
            elif isinstance(m, nn.Conv2d) and m.out_channels >= m.in_channels:
                nn.init.dirac_(m.weight.data[:m.in_channels])

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f) * self.LOGIT_SCALE


def _round(c: float) -> int:
    return max(8, int(c + 4) // 8 * 8)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def cifar_resnet(depth: int, num_classes: int, input_size: int = 32, width: float = 1.0) -> ResNet:
    """ResNet-20/32/56/... of He et al. for 32 px input; ``width`` scales 16/32/64 channels."""
    if (depth - 2) % 6:
        raise InputError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 56, ...), got {depth}")
    n = (depth - 2) // 6
    widths = [round(16 * width), round(32 * width), round(64 * width)]
    return ResNet([n] * 3, widths, [1, 2, 2], num_classes, input_size)


def resnet18(num_classes: int, input_size: int = 32, width: float = 1.0) -> ResNet:
    """The CIFAR-style ResNet-18 (3x3 stem, no max-pool) that paper 002 uses."""
    return ResNet([2, 2, 2, 2], [round(c * width) for c in (64, 128, 256, 512)], [1, 2, 2, 2], num_classes, input_size)


# Names the CLI and checkpoints use. Each maps to a plain constructor (num_classes, input_size, width).
ARCHS: dict[str, Callable[..., Backbone]] = {
    "resnet20": lambda num_classes, input_size=32, width=1.0: cifar_resnet(20, num_classes, input_size, width),
    "resnet32": lambda num_classes, input_size=32, width=1.0: cifar_resnet(32, num_classes, input_size, width),
    "resnet56": lambda num_classes, input_size=32, width=1.0: cifar_resnet(56, num_classes, input_size, width),
    "resnet18": resnet18,
    "mobilenet": lambda num_classes, input_size=32, width=1.0: MobileNet(num_classes, input_size, width),
    "airnet": AirNet,
    "airnet-prepool": AirNetPrepool,
    "airnet-prepool1": AirNetPrepool1,
    "airbench": AirBench,
}


def build_model(arch: str, num_classes: int, input_size: int = 32, width: float = 1.0) -> Backbone:
    if arch not in ARCHS:
        raise InputError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if input_size < MIN_FEATURE_MAP:
        raise InputError(f"input_size must be >= {MIN_FEATURE_MAP} px, got {input_size}")
    return ARCHS[arch](num_classes, input_size=input_size, width=width)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_mflops(model: nn.Module, input_size: int) -> float:
    """Forward FLOPs in millions for one ``input_size`` image, counting a multiply-add as 2 FLOPs
    (convolutions and linear layers; BN/ReLU/pooling are negligible and not counted)."""
    macs = 0

    def hook(m, inp, out):
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, input_size, input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return 2 * macs / 1e6
