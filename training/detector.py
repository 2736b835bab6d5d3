"""The region detector: a small fully-convolutional CenterNet (Zhou et al., "Objects as Points")
over frame + motion channel at half resolution, so a fixed camera's people and vehicles come out whole
where motion blobs give fragments and pairs. Trained on annotated sequences (`detector_data`),
resumable, exported to ONNX for `lowres_sdk.video.detector.DetectorRegions`."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lowres_sdk.errors import DataError

from .detector_data import CATEGORIES, STRIDE, PersonBank, Sequence, sample


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """Stride-4 trunk with dilated 3x3 convolutions (receptive field ~260 input px: a person up close
    on a low camera is 100-150 px tall at half resolution) and three 1x1 heads: centre heat per
    category, log size, centre offset."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.trunk = nn.Sequential(_block(4, 16, 2), _block(16, width, 2), _block(width, width),
                                   _block(width, width, dilation=2), _block(width, width, dilation=4),
                                   _block(width, width, dilation=8), _block(width, width, dilation=16),
                                   _block(width, width))
        self.heat = nn.Conv2d(width, len(CATEGORIES), 1)
        self.wh = nn.Conv2d(width, 2, 1)
        self.off = nn.Conv2d(width, 2, 1)
        nn.init.constant_(self.heat.bias, -2.19)  # CenterNet's prior: p = 0.1 at start

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.trunk(x / 255.0 - 0.5)  # raw uint8-valued input: the runtime feeds pixels as they are
        return torch.sigmoid(self.heat(f)), self.wh(f), self.off(f)


def focal_loss(pred: torch.Tensor, heat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), zero weight over ignore regions."""
    p = pred.clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -(1 - p) ** 2 * torch.log(p) * pos
    neg_loss = -(1 - heat) ** 4 * p ** 2 * torch.log(1 - p) * (1 - pos) * weight
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def loss_of(model: CenterNet, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    heat, wh, off = model(batch["x"])
    mask = batch["mask"]
    n = mask.sum().clamp(min=1)
    losses = {"heat": focal_loss(heat, batch["heat"], batch["weight"]),
              "wh": (torch.abs(wh - batch["wh"]) * mask).sum() / n,
              "off": (torch.abs(off - batch["off"]) * mask).sum() / n}
    losses["loss"] = losses["heat"] + 0.5 * losses["wh"] + losses["off"]
    return losses


def batch_of(seqs: list[Sequence], rng: np.random.Generator, size: int, n: int,
             people: PersonBank | None = None) -> dict[str, torch.Tensor]:
    """``n`` patches, each category drawn equally often, then a sequence of it uniformly."""
    by_category = [[s for s in seqs if s.category == c] for c in range(len(CATEGORIES))]
    by_category = [group for group in by_category if group]
    items = [sample(group[rng.integers(len(group))], rng, size, people=people) for group in
             (by_category[rng.integers(len(by_category))] for _ in range(n))]
    out = {"x": torch.from_numpy(np.stack([x for x, _ in items])).float()}
    for key in items[0][1]:
        out[key] = torch.from_numpy(np.stack([t[key] for _, t in items]))
    return out


def train(seqs: list[Sequence], out_dir: str | Path, *, steps: int = 2500, batch: int = 24, size: int = 160,
          lr: float = 2e-3, width: int = 32, seed: int = 0, people: PersonBank | None = None, log=print) -> CenterNet:
    """Train (resuming from ``out_dir``/detector.pt if present) with AdamW and a cosine schedule;
    ``out_dir`` gets the checkpoint every 100 steps and ``history.json``."""
    if not seqs:
        raise DataError("no training sequences")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CenterNet(width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    ckpt, step, history = out_dir / "detector.pt", 0, []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)  # tensors, numbers and lists only: nothing unpickled
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        step, history = state["step"], state["history"]
    model.train()
    start = time.perf_counter()
    while step < steps:
        rng = np.random.default_rng([seed, step])  # per-step generator: a resumed run draws the same patches
        losses = loss_of(model, batch_of(seqs, rng, size, batch, people))
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        sched.step()
        step += 1
        history.append({k: round(float(v.detach()), 4) for k, v in losses.items()})
        if step % 100 == 0 or step == steps:
            mean = {k: round(float(np.mean([h[k] for h in history[-100:]])), 4) for k in history[-1]}
            log(f"step {step}/{steps} {mean} {time.perf_counter() - start:.0f}s")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "history": history}, ckpt)
    (out_dir / "history.json").write_text(json.dumps(history))
    return model.eval()


def export_onnx(model: CenterNet, path: str | Path, about: dict) -> Path:
    """ONNX with dynamic batch, height and width; ``about`` (training sequences, steps, categories)
    goes into its metadata so the runtime and the leak test can read what the model saw."""
    import onnx

    path = Path(path)
    x = torch.zeros(1, 4, 96, 128)
    torch.onnx.export(model.eval(), x, str(path), input_names=["input"], output_names=["heat", "wh", "off"],
                      dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    meta = {"categories": list(CATEGORIES), "stride": STRIDE, **about}
    proto.metadata_props.add(key="lowres_sdk.detector", value=json.dumps(meta))
    onnx.save(proto, str(path))
    return path
