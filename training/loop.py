"""The one training loop: SGD + momentum, cosine or step LR, seeded, checkpoint every epoch, resumable,
and unchanged under `torchrun` (DDP over gloo on CPU).

Randomness (shuffling, augmentation, degradation noise) is drawn from a generator seeded by
(seed, epoch), so a resumed run replays exactly what an uninterrupted one would have done, and
every DDP rank sees the same global batch and keeps its own slice of it.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lowres_sdk.errors import CheckpointError, InputError

from .artifacts import write_run_artifacts
from .backbones import Backbone, build_model, count_mflops, count_params
from .checkpoint import existing_run, load_checkpoint, save_checkpoint
from .data import ImageSet, fraction_per_class, load_splits, to_float
from .distributed import world as process_world
from .ema import EMA
from .evaluate import predict
from .methods import METHODS
from .recipe import Recipe
from .task import Task


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop from a zero-padded image + random horizontal flip, per sample."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def cutout(x: torch.Tensor, generator: torch.Generator, size: int, fill: tuple[float, ...]) -> torch.Tensor:
    """Per sample, a ``size`` x ``size`` square centred anywhere in the image (clipped at its border)
    set to ``fill`` (one value per channel); a new tensor."""
    n, c, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    top, left = cy - size // 2, cx - size // 2
    hole = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)  # [n, h, w]
    value = torch.tensor(fill, dtype=x.dtype).view(1, c, 1, 1).expand(n, c, h, w)
    return torch.where(hole.unsqueeze(1), value, x)


def lr_at(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    if recipe.schedule == "triangle":  # airbench94: 0.2 x lr -> lr over the first 20 % of steps, then down to 0
        peak = 0.2 * total
        return recipe.lr * (0.2 + 0.8 * step / peak if step < peak else (total - step) / (total - peak))
    warmup = min(int(recipe.warmup_epochs * steps_per_epoch), total // 10)
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    return recipe.lr * (0.1 ** (int(t >= 0.5) + int(t >= 0.75)))


def param_groups(module: nn.Module, recipe: Recipe) -> list[dict]:
    """The optimizer's groups over ``module``'s trainable parameters: BatchNorm's at lr x
    ``norm_lr_scale`` with weight decay / it (the same decay per step), the rest at lr. One group
    when the scale is 1, so runs of earlier versions resume with the same parameter order."""
    scale = recipe.norm_lr_scale
    norm = {id(p) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters(recurse=False)} if scale != 1.0 else set()
    trainable = [p for p in module.parameters() if p.requires_grad]
    decay = recipe.weight_decay
    groups = [{"params": [p for p in trainable if id(p) not in norm], "lr_scale": 1.0, "weight_decay": decay},
              {"params": [p for p in trainable if id(p) in norm], "lr_scale": scale, "weight_decay": decay / scale}]
    return [g for g in groups if g["params"]]


def build_task(recipe: Recipe, train: ImageSet) -> Task:
    backbone = build_model(recipe.arch, len(train.classes), recipe.spec.size, recipe.width)
    if recipe.init:
        init_from_run(backbone, recipe.init)
    task = METHODS[recipe.method].module.make_task(recipe, backbone, train)
    task.aspects = train.aspects
    return task


def init_from_run(backbone: Backbone, run_dir: str | os.PathLike) -> list[str]:
    """Copy every weight of ``run_dir`` whose name and shape fit ``backbone``; returns those left as
    initialised (e.g. the classifier head when the number of classes differs)."""
    tensors, meta = load_checkpoint(run_dir)
    # The EMA's weights when the run kept one, as `load_model` reads a run.
    prefix = "ema.backbone." if any(k.startswith("ema.backbone.") for k in tensors) else "model.backbone."
    source = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = backbone.state_dict()
    fitting = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < len(own) // 2:
        raise CheckpointError(f"--init {run_dir} ({meta['recipe']['arch']}) does not fit this architecture "
                              f"({len(fitting)} of {len(own)} tensors match)")
    backbone.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))


def train(recipe: Recipe, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
          data: tuple[ImageSet, ImageSet] | None = None, _stop_after: int | None = None) -> dict:
    """Train ``recipe`` into ``out_dir`` (checkpoint every epoch); returns the final checkpoint metadata.

    ``_stop_after`` ends the run after that many epochs, as an interruption would (tests of resume).
    """
    method = METHODS[recipe.method]
    if method.own_procedure:  # feature-level methods: their own short procedure, not this loop
        return method.module.fit(recipe, out_dir, resume, progress, data, _stop_after)
    rank, world = process_world()
    out_dir = Path(out_dir)
    torch.manual_seed(recipe.seed)
    train_set, test_set = data if data is not None else load_splits(recipe.data, recipe.image_size,
                                                                    recipe.limit_per_class, fit=recipe.fit)
    if recipe.train_fraction < 1.0:
        train_set = fraction_per_class(train_set, recipe.train_fraction)
    task = build_task(recipe, train_set)
    state = TrainState(recipe, task.student.to(memory_format=torch.channels_last))
    start_epoch, history = 0, []
    if existing_run(out_dir, recipe, resume) is not None:  # every rank raises alike: none is left waiting
        start_epoch, history = state.restore(out_dir)
    net = nn.parallel.DistributedDataParallel(state.student) if world > 1 else state.student
    batch = min(recipe.batch_size, len(train_set))
    if batch % world:
        raise InputError(f"batch size {batch} must be divisible by the number of processes {world}")
    spec = recipe.spec
    backbone = state.student.backbone
    info = {"params": count_params(backbone), "mflops": round(count_mflops(backbone, spec.size), 2)}
    if getattr(backbone, "spec_json", None):
        info["chain"] = backbone.spec_json
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.time()
        loss, acc = train_epoch(task, net, state, train_set, epoch, batch, progress and rank == 0)
        evaluated = state.ema.model.backbone if state.ema is not None else backbone
        top1 = float((predict(evaluated, spec, test_set.images).argmax(1) == test_set.labels).mean())
        history.append({"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "test_top1": top1,
                        "seconds": time.time() - t0})
        if rank == 0:
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{recipe.epochs}: loss {loss:.3f} train {acc:.3f} "
                           f"test@{spec.resolution}px {top1:.4f} ({time.time() - t0:.0f}s)")
            save_checkpoint(out_dir, state.tensors(), {"recipe": recipe.to_dict(), "spec": spec.to_dict(),
                                                       "classes": train_set.classes, "epoch": epoch + 1,
                                                       "history": history, **info, **state.extra()})
            write_run_artifacts(out_dir, history, spec.resolution)  # results.csv + curves.png
        if world > 1:
            dist.barrier()
        if _stop_after is not None and epoch + 1 >= _stop_after:
            break
    return load_checkpoint(out_dir)[1]


class TrainState:
    """The trained network, its SGD optimizer and its EMA: what a checkpoint keeps and a resume restores."""

    def __init__(self, recipe: Recipe, student: nn.Module):
        self.recipe, self.student = recipe, student
        groups = param_groups(student, recipe)
        self.params = [p for g in groups for p in g["params"]]
        self.opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
        self.ema = EMA(student, recipe.ema_decay) if recipe.ema_decay > 0 else None

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.student)

    def tensors(self) -> dict:
        tensors = {f"model.{k}": v for k, v in self.student.state_dict().items()}
        tensors.update({f"optim.{i}.momentum_buffer": self.opt.state[p]["momentum_buffer"]
                        for i, p in enumerate(self.params)})
        if self.ema is not None:  # the EMA weights are what evaluation and export use
            tensors.update({f"ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        return tensors

    def extra(self) -> dict:
        return {"ema_updates": self.ema.updates} if self.ema is not None else {}

    def restore(self, out_dir: Path) -> tuple[int, list]:
        """Load the run in ``out_dir``; returns (epochs done, history)."""
        tensors, meta = load_checkpoint(out_dir)
        done, epochs = meta["epoch"], self.recipe.epochs
        live = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        if live or done < epochs:  # a finished run's copy may keep its EMA only (`save_finished_copy`)
            self.student.load_state_dict(live)
        if done < epochs:  # a finished run's copy may lack the optimizer (`save_finished_copy`)
            if "optim.0.momentum_buffer" not in tensors:
                raise CheckpointError(f"{out_dir} holds a finished run's copy without optimizer state; it cannot "
                                      f"continue training (train into a new --out with --init {out_dir})")
            for i, p in enumerate(self.params):
                self.opt.state[p]["momentum_buffer"] = tensors[f"optim.{i}.momentum_buffer"].clone()
        if self.ema is not None:
            self.ema.load({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}, meta["ema_updates"])
        return done, meta["history"]


def train_epoch(task: Task, net: nn.Module, state: TrainState, train_set: ImageSet, epoch: int, batch: int,
                progress: bool) -> tuple[float, float]:
    """One epoch of SGD over ``train_set`` in the order the (seed, epoch) generator draws; returns the
    mean training loss and accuracy of this rank's samples."""
    recipe, (rank, world) = task.recipe, process_world()
    n = len(train_set)
    steps = n // batch
    gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen)
    task.train()  # methods may keep parts frozen (teacher, stage-1 layers) in eval mode
    seen, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(range(steps), desc=f"{recipe.method} epoch {epoch + 1}/{recipe.epochs}", disable=not progress,
               leave=False, dynamic_ncols=True)
    for step in bar:
        index = order[step * batch:(step + 1) * batch]
        x = to_float(train_set.images[index.numpy()])
        if recipe.augment:
            x = augment(x, gen)
        if recipe.cutout:
            x = cutout(x, gen, recipe.cutout, recipe.spec.mean)
        y = torch.from_numpy(train_set.labels[index.numpy()])
        # Every rank built the same global batch (same generator); each keeps its slice.
        x, y, index = x[rank::world], y[rank::world], index[rank::world]
        for g in state.opt.param_groups:
            g["lr"] = lr_at(recipe, epoch * steps + step, steps * recipe.epochs, steps) * g["lr_scale"]
        loss, logits = task.loss(net, x, y, index, gen)
        state.step(loss)
        seen += len(y)
        correct += (logits.argmax(1) == y).sum().item()
        loss_sum += loss.item() * len(y)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return loss_sum / seen, correct / seen
