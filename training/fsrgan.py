"""`fsrgan`: feature super-resolution GAN (paper 004). A frozen feature extractor (``teacher``, e.g.
a ``highres`` run) gives pairs (f(LR), f(HR)); a generator G maps LR features towards HR ones, trained
against a WGAN critic D:

    L(G) = -mean D(G(f_LR)) + mean ||G(f_LR) - f_HR||^2      (eq. 9 with the paper's best r = 2)
    L(D) =  mean D(G(f_LR)) - mean D(f_HR)                     (eq. 7)

The critic's Lipschitz constraint is WGAN's weight clipping to [-clip, clip] (Arjovsky et
al., whom the paper follows), with ``critic_steps`` critic updates per generator update; both
use Adam at ``lr`` (``--fsr-lr``, paper: 0.0008). Features are extracted once, so this is its own short
procedure rather than the image loop; the checkpoint holds ``Chained(extractor, neck=G)``, which
exports as one graph: LR crop -> the extractor's pre-processing -> backbone -> G -> L2.
"""
from __future__ import annotations

import os
import time
from typing import ClassVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from lowres_sdk.errors import CheckpointError, InputError

from .backbones import Backbone, count_mflops, count_params
from .chain import Chained, chain_around, stage
from .checkpoint import existing_run, load_checkpoint, load_teacher, save_checkpoint
from .crossres import sample_resolutions
from .data import ImageSet, load_splits, to_float
from .degrade import ModelInput, resize
from .distributed import world as process_world
from .options import QuerySizes, option


@dataclass
class FSRGANOptions(QuerySizes):
    prefix: ClassVar[str] = "fsr"
    lr: float = option(8e-4, "Adam learning rate of G and D (paper 004).")
    critic_steps: int = option(5, "WGAN critic updates per generator update.")
    clip: float = option(0.01, "the critic's weights are clipped to [-c, c] (WGAN's Lipschitz constraint).")
    views: int = option(4, "LR views (random resolutions in --query-min..--query-max) per training image.")

    def check(self) -> None:
        if self.critic_steps < 1 or self.views < 1 or self.clip <= 0:
            raise InputError("fsr_critic_steps and fsr_views must be >= 1 and fsr_clip > 0")


class FSRCritic(nn.Module):
    """Paper 004's critic D (its Table 3) on the same s x s feature map as `FSRGenerator`: 3x3 convs
    with 8, 16, 32 (stride 2) and 64 (stride 1) channels, LeakyReLU(0.2), a linear score (no activation)."""

    def __init__(self, generator_side: int, dim: int):
        super().__init__()
        self.dim, self.side = dim, generator_side
        layers, cin, side = [], 1, generator_side
        for cout, stride in zip((8, 16, 32, 64), (2, 2, 2, 1)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2)]
            cin, side = cout, (side - 1) // stride + 1
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * side * side, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(f, (0, self.side * self.side - self.dim)).reshape(-1, 1, self.side, self.side)
        return self.net(x).squeeze(1)


def generator_loss(critic: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """-mean D(G(f_LR)) + mean over the batch of ||G(f_LR) - f_HR||^2."""
    return -critic(fake).mean() + (fake - real).pow(2).sum(dim=1).mean()


def critic_loss(critic: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """mean D(fake) - mean D(real): the negated Wasserstein estimate the critic minimises."""
    return critic(fake).mean() - critic(real).mean()


@torch.no_grad()
def feature_pairs(extractor: Backbone, spec, images: np.ndarray, views: int, low: int, high: int,
                  generator: torch.Generator, progress: bool = True, batch: int = 256,
                  fixed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(LR), f(HR)) for ``views`` LR versions of every image, each at a random resolution in
    [low, high] (or at ``fixed`` px): [N * views, D] each, the HR features repeated per view."""
    extractor.eval()
    pre = ModelInput(spec)
    lr_out, hr_out = [], []
    for i in tqdm(range(0, len(images), batch), desc="fsrgan: extracting features", disable=not progress,
                  leave=False, dynamic_ncols=True):
        hr = to_float(images[i:i + batch])
        f_hr = extractor.forward_features(pre(hr))
        for _ in range(views):
            res = (torch.full((len(hr),), fixed) if fixed else
                   sample_resolutions(len(hr), 1.0, low, high, generator))
            f_lr = torch.empty_like(f_hr)
            for size in res.unique().tolist():
                group = (res == size).nonzero().flatten()
                f_lr[group] = extractor.forward_features(pre(resize(hr[group], size, spec.down, spec.up)))
            lr_out.append(f_lr)
            hr_out.append(f_hr)
    return torch.cat(lr_out), torch.cat(hr_out)


def _optim_tensors(prefix: str, opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> dict:
    return {f"{prefix}.{i}.{k}": v for i, p in enumerate(params) for k, v in opt.state[p].items()}


def _load_optim(prefix: str, opt: torch.optim.Optimizer, params: list[nn.Parameter], tensors: dict) -> None:
    for i, p in enumerate(params):
        head = f"{prefix}.{i}."
        opt.state[p] = {k[len(head):]: v.clone() for k, v in tensors.items() if k.startswith(head)}


def _load_extractor(recipe):
    extractor, spec, meta = load_teacher(recipe, "a frozen feature extractor")
    if isinstance(extractor, Chained):
        raise InputError(f"teacher {recipe.teacher} already has stages around its backbone; give a plain run")
    if meta["recipe"]["image_size"] != recipe.image_size:
        raise InputError(f"teacher {recipe.teacher} reads images at {meta['recipe']['image_size']} px, this run at "
                         f"{recipe.image_size} px; use the same --image-size")
    return extractor.requires_grad_(False), spec, meta


@torch.no_grad()
def _evaluate(chain: Chained, lr_f: torch.Tensor, hr_f: torch.Tensor, labels: np.ndarray) -> dict:
    chain.eval()
    sr = chain.neck(lr_f)
    top1 = lambda f: float((chain.forward_head(f).argmax(1).numpy() == labels).mean())  # noqa: E731
    return {"test_mse_raw": float((lr_f - hr_f).pow(2).sum(1).mean()),
            "test_mse": float((sr - hr_f).pow(2).sum(1).mean()), "test_top1_raw": top1(lr_f), "test_top1": top1(sr)}


def fit(recipe, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
        data: tuple[ImageSet, ImageSet] | None = None, _stop_after: int | None = None) -> dict:
    """Train G and D on feature pairs into ``out_dir`` (checkpoint every epoch, resumable); returns the
    final checkpoint metadata. Under torchrun only rank 0 works (features are small); the others wait."""
    rank, world = process_world()
    out_dir = Path(out_dir)
    if rank != 0:
        dist.barrier()
        return load_checkpoint(out_dir)[1]
    try:
        return _fit(recipe, out_dir, resume, progress, data, _stop_after)
    finally:
        if world > 1:
            dist.barrier()


def _fit(recipe, out_dir, resume, progress, data, stop_after) -> dict:
    o = recipe.options
    o.check_sizes("fsrgan", recipe.image_size)
    extractor, spec, tmeta = _load_extractor(recipe)
    train_set, test_set = data if data is not None else load_splits(recipe.data, recipe.image_size,
                                                                    recipe.limit_per_class, fit=recipe.fit)
    if tmeta["classes"] != train_set.classes:
        raise CheckpointError(f"teacher {recipe.teacher} was trained on classes {tmeta['classes'][:5]}..., the data "
                              f"has {train_set.classes[:5]}...; G learns in that teacher's feature space")
    existing_run(out_dir, recipe, resume)  # refuse a wrong --out before the long feature extraction
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    train_f = feature_pairs(extractor, spec, train_set.images, o.views, o.query_min, o.query_max, gen, progress)
    test_f = feature_pairs(extractor, spec, test_set.images, 1, 0, 0, gen, progress, fixed=o.query_min)
    dim = extractor.num_features
    chain = chain_around(extractor, tmeta["recipe"]["arch"], tmeta["recipe"]["width"], neck=stage("fsr", dim=dim))
    gan = _GAN(chain, FSRCritic(chain.neck.side, dim), o.lr)
    start_epoch, history = 0, []
    if existing_run(out_dir, recipe, resume) is not None:
        tensors, meta = load_checkpoint(out_dir)
        gan.load(tensors)
        start_epoch, history = meta["epoch"], meta["history"]
    info = {"params": count_params(chain), "mflops": round(count_mflops(chain, spec.size), 2), "chain": chain.spec_json,
            "teacher_classes": len(tmeta["classes"]),
            # G maps LR features into the extractor's feature space: galleries indexed by the extractor's
            # own embedder can be searched with this one's vectors.
            "embedding_space": tmeta.get("embedding_space", tmeta["weights_sha256"])}
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.time()
        row = {"epoch": epoch + 1, **gan.epoch(recipe, epoch, *train_f, progress),
               **_evaluate(chain, *test_f, test_set.labels), "test_resolution": o.query_min,
               "seconds": time.time() - t0}
        history.append(row)
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{recipe.epochs}: L(G) {row['loss_g']:.3f} L(D) {row['loss_d']:.4f} "
                       f"test@{o.query_min}px ||f-f_HR||^2 {row['test_mse_raw']:.3f} -> {row['test_mse']:.3f}, "
                       f"top-1 {row['test_top1_raw']:.4f} -> {row['test_top1']:.4f}")
        save_checkpoint(out_dir, gan.tensors(), {"recipe": recipe.to_dict(), "spec": spec.to_dict(),
                                                 "classes": train_set.classes, "epoch": epoch + 1,
                                                 "history": history, **info})
        if stop_after is not None and epoch + 1 >= stop_after:
            break
    return load_checkpoint(out_dir)[1]


class _GAN:
    """G (the chain's neck) and the critic D with their Adam optimizers: one epoch of training, and
    the tensors a checkpoint keeps of them."""

    def __init__(self, chain: Chained, critic: FSRCritic, lr: float):
        self.chain, self.g_net, self.critic = chain, chain.neck, critic
        self.g_params, self.d_params = list(self.g_net.parameters()), list(critic.parameters())
        self.opt_g = torch.optim.Adam(self.g_params, lr=lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.d_params, lr=lr, betas=(0.5, 0.9))

    def tensors(self) -> dict:
        tensors = {f"model.backbone.{k}": v for k, v in self.chain.state_dict().items()}
        tensors.update({f"critic.{k}": v for k, v in self.critic.state_dict().items()})
        tensors.update(_optim_tensors("optim_g", self.opt_g, self.g_params))
        tensors.update(_optim_tensors("optim_d", self.opt_d, self.d_params))
        return tensors

    def load(self, tensors: dict) -> None:
        self.chain.load_state_dict({k[len("model.backbone."):]: v for k, v in tensors.items()
                                    if k.startswith("model.backbone.")})
        self.critic.load_state_dict({k[len("critic."):]: v for k, v in tensors.items() if k.startswith("critic.")})
        _load_optim("optim_g", self.opt_g, self.g_params, tensors)
        _load_optim("optim_d", self.opt_d, self.d_params, tensors)

    def epoch(self, recipe, epoch: int, lr_f: torch.Tensor, hr_f: torch.Tensor, progress: bool) -> dict:
        """One epoch over the feature pairs; the mean losses and ||G(f_LR) - f_HR||^2."""
        o, n = recipe.options, len(lr_f)
        batch = min(recipe.batch_size, n)
        steps = n // batch
        gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
        torch.manual_seed(recipe.seed * 100_003 + epoch)  # G's dropout: a resumed run replays it too
        order = torch.randperm(n, generator=gen)
        self.g_net.train()
        self.critic.train()
        sums = {"loss_g": 0.0, "loss_d": 0.0, "mse": 0.0}
        bar = tqdm(range(steps), desc=f"fsrgan epoch {epoch + 1}/{recipe.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for step in bar:
            for _ in range(o.critic_steps):
                idx = torch.randint(0, n, (batch,), generator=gen)
                with torch.no_grad():
                    fake = self.g_net(lr_f[idx])
                loss_d = critic_loss(self.critic, fake, hr_f[idx])
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()
                with torch.no_grad():
                    for p in self.d_params:
                        p.clamp_(-o.clip, o.clip)
            idx = order[step * batch:(step + 1) * batch]
            fake = self.g_net(lr_f[idx])
            loss_g = generator_loss(self.critic, fake, hr_f[idx])
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            sums["loss_g"] += loss_g.item()
            sums["loss_d"] += loss_d.item()
            sums["mse"] += (fake.detach() - hr_f[idx]).pow(2).sum(1).mean().item()
            bar.set_postfix(loss_g=f"{sums['loss_g'] / (step + 1):.3f}", mse=f"{sums['mse'] / (step + 1):.3f}")
        return {k: v / steps for k, v in sums.items()}
