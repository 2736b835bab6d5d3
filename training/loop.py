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
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lowres_sdk.errors import CheckpointError, InputError
from lowres_sdk.spec import InputSpec

from .backbones import Backbone, build_model, count_mflops, count_params
from .checkpoint import load_checkpoint, save_checkpoint
from .data import ImageSet, load_splits
from .degrade import Degrade, ModelInput, Normalize


@dataclass
class Recipe:
    """Everything that defines a training run; saved inside its checkpoint."""

    method: str = "lr"                # lr | hr | dfd | staged | mixed | crossres | fsrgan | transfer | sr
    data: str = ""                    # dataset folder or archive with train/ and test/
    arch: str = "resnet20"
    width: float = 1.0
    resolution: int = 8               # detail (px) the model is trained for
    input_mode: str = "upsampled"     # upsampled: LR resized back to image_size; native: fed at resolution
    image_size: int = 32              # HR size images are read at
    fit: str = "stretch"              # non-square images: stretch or letterbox to a square
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"          # cosine | step (x0.1 at 50 % and 75 %)
    warmup_epochs: float = 1.0
    seed: int = 0
    augment: bool = True              # random crop (4 px zero pad) + horizontal flip
    limit_per_class: int | None = None
    train_fraction: float = 1.0       # train on the first fraction of each class (limited-data studies)
    init: str | None = None           # start from this run's weights (a new head if the classes differ)
    down: str = "bilinear"
    up: str = "bicubic"
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    jpeg_quality: int | None = None
    teacher: str | None = None        # dfd: run folder of the HR teacher
    dfd_lambda: float = 2.0           # paper 002's best value on CIFAR-10 at 8x8
    init_from_teacher: bool = True    # dfd: start the student from the teacher's weights (paper: "fine-tune")
    cache_teacher: bool = False       # dfd: precompute teacher features (only without augmentation)
    trainable: str = "all"            # staged: parameter-name prefixes stage 2 may change ("all", "fc", "layers.8,fc")
    mixed_ratio: float = 0.5          # mixed: probability that a training sample is degraded
    clusters: int = 50                # transfer: k of k-means = the transferred feature dimension
    transfer_hidden: int = 256        # transfer: hidden width of the 2-layer transfer net
    transfer_labels: str = "nearest"  # transfer: pseudo-label of an LR feature: nearest HR centroid | paired
    sr_width: int = 64                # sr: channels of the ESPCN super-resolution net
    crossres_p: float = 0.5           # crossres: probability that a training sample is downsampled (paper 003)
    query_min: int = 8                # crossres / fsrgan: random LR resolution range (px, shortest side)
    query_max: int = 24
    fsr_lr: float = 8e-4              # fsrgan: Adam learning rate of G and D (paper 004: 0.0008)
    fsr_critic_steps: int = 5         # fsrgan: critic updates per generator update (WGAN)
    fsr_clip: float = 0.01            # fsrgan: critic weight clipping (WGAN's Lipschitz constraint)
    fsr_views: int = 4                # fsrgan: LR views (random resolutions) per training image

    def __post_init__(self):
        if self.method in ("hr", "crossres", "fsrgan"):  # models that take any query resolution at HR size
            self.resolution = self.image_size
        if self.input_mode not in ("upsampled", "native"):
            raise InputError(f"input_mode must be 'upsampled' or 'native', got {self.input_mode!r}")
        if self.schedule not in ("cosine", "step"):
            raise InputError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if not 1 <= self.resolution <= self.image_size:
            raise InputError(f"resolution {self.resolution} px must be between 1 and the image size {self.image_size} px")
        if not 0.0 < self.train_fraction <= 1.0:
            raise InputError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")

    @property
    def spec(self) -> InputSpec:
        size = self.resolution if self.input_mode == "native" else self.image_size
        return InputSpec(size=size, resolution=self.resolution, down=self.down, up=self.up, fit=self.fit)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Student(nn.Module):
    """The trained network as DDP sees it: one forward returning (logits, features), where
    features pass through ``adapter`` (e.g. DFD's projection to the teacher's width)."""

    def __init__(self, backbone: Backbone, adapter: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter if adapter is not None else nn.Identity()

    def forward(self, x):
        # channels_last runs the CPU convolutions ~20 % faster (measured, ResNet-20, 2 threads).
        f = self.backbone.forward_features(x.contiguous(memory_format=torch.channels_last))
        return self.backbone.forward_head(f), self.adapter(f)


class Task(nn.Module):
    """A method = how a batch of augmented HR images becomes a loss. Subclasses live one per file."""

    def __init__(self, recipe: Recipe, student: Student):
        super().__init__()
        self.recipe, self.student = recipe, student
        # Training-time degradation (with the optional realism); the deployed graph uses ModelInput.
        out = recipe.image_size if recipe.input_mode == "upsampled" and recipe.resolution < recipe.image_size else None
        self.degrade = Degrade(recipe.resolution, out, recipe.down, recipe.up,
                               recipe.blur_sigma, recipe.noise_std, recipe.jpeg_quality)
        spec = recipe.spec
        self.normalize = Normalize(spec.mean, spec.std)

    def student_input(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.normalize(self.degrade(hr, generator))

    def loss(self, net: nn.Module, hr, y, index, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) for a batch; ``net`` is the student, DDP-wrapped when distributed."""
        logits, _ = net(self.student_input(hr, generator))
        return F.cross_entropy(logits, y), logits


def _world() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC RGB -> float NCHW in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


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


def lr_at(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    warmup = min(int(recipe.warmup_epochs * steps_per_epoch), total // 10)
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    return recipe.lr * (0.1 ** (int(t >= 0.5) + int(t >= 0.75)))


@torch.no_grad()
def predict(model: Backbone, spec: InputSpec, images: np.ndarray, resolution: int | None = None,
            batch_size: int = 500) -> np.ndarray:
    """Logits for uint8 RGB images, first degraded to ``resolution`` px (the camera), then put
    through the model's own input pipeline (``ModelInput``), exactly as the exported graph will."""
    model.eval()
    pre = ModelInput(spec)
    camera = Degrade(resolution, down=spec.down, up=spec.up) if resolution else None
    out = []
    for i in range(0, len(images), batch_size):
        x = to_float(images[i:i + batch_size])
        if camera is not None:
            x = camera(x)
        out.append(model(pre(x)))
    return torch.cat(out).numpy()


def fraction_per_class(data: ImageSet, fraction: float) -> ImageSet:
    """The first ``fraction`` of every class (at least one image each), in the set's order."""
    keep = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        keep.append(idx[:max(1, round(fraction * len(idx)))])
    return data.subset(np.sort(np.concatenate(keep)))


def build_task(recipe: Recipe, train: ImageSet) -> Task:
    from . import crossres, dfd, hr, lr, mixed, sr, staged  # one file per method

    methods = {"lr": lr.make_task, "hr": hr.make_task, "dfd": dfd.make_task, "staged": staged.make_task,
               "mixed": mixed.make_task, "sr": sr.make_task, "crossres": crossres.make_task}
    if recipe.method not in methods:
        raise InputError(f"unknown method {recipe.method!r}; expected one of {', '.join(methods)}")
    backbone = build_model(recipe.arch, len(train.classes), recipe.spec.size, recipe.width)
    if recipe.init:
        init_from_run(backbone, recipe.init)
    return methods[recipe.method](recipe, backbone, train)


def init_from_run(backbone: Backbone, run_dir: str | os.PathLike) -> list[str]:
    """Copy every weight of ``run_dir`` whose name and shape fit ``backbone``; returns those left as
    initialised (e.g. the classifier head when the number of classes differs)."""
    tensors, meta = load_checkpoint(run_dir)
    source = {k[len("model.backbone."):]: v for k, v in tensors.items() if k.startswith("model.backbone.")}
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
    # Feature-level methods have their own short procedures on extracted features, not this loop.
    if recipe.method == "transfer":  # k-means + transfer net + SVM
        from . import transfer

        return transfer.fit(recipe, out_dir, resume, progress, data)
    if recipe.method == "fsrgan":  # feature super-resolution GAN
        from . import fsrgan

        return fsrgan.fit(recipe, out_dir, resume, progress, data, _stop_after)
    rank, world = _world()
    out_dir = Path(out_dir)
    torch.manual_seed(recipe.seed)
    train_set, test_set = data if data is not None else load_splits(recipe.data, recipe.image_size, recipe.limit_per_class, fit=recipe.fit)
    if recipe.train_fraction < 1.0:
        train_set = fraction_per_class(train_set, recipe.train_fraction)
    task = build_task(recipe, train_set)
    student = task.student.to(memory_format=torch.channels_last)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=True)
    start_epoch, history = 0, []
    if resume and (out_dir / "checkpoint.json").exists():
        tensors, meta = load_checkpoint(out_dir)
        if Recipe.from_dict(meta["recipe"]) != recipe:
            raise CheckpointError(f"{out_dir} was trained with a different recipe; resume needs the same one")
        student.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        for i, p in enumerate(params):
            opt.state[p]["momentum_buffer"] = tensors[f"optim.{i}.momentum_buffer"].clone()
        start_epoch, history = meta["epoch"], meta["history"]
    elif (out_dir / "checkpoint.json").exists():  # every rank raises: none is left waiting for the others
        raise CheckpointError(f"{out_dir} already holds a run; pass resume=True (--resume) or choose another --out")
    net = nn.parallel.DistributedDataParallel(student) if world > 1 else student

    n = len(train_set)
    batch = min(recipe.batch_size, n)
    if batch % world:
        raise InputError(f"batch size {batch} must be divisible by the number of processes {world}")
    steps = n // batch
    total = steps * recipe.epochs
    spec = recipe.spec
    info = {"params": count_params(student.backbone), "mflops": round(count_mflops(student.backbone, spec.size), 2)}
    if getattr(student.backbone, "spec_json", None):
        info["chain"] = student.backbone.spec_json
    for epoch in range(start_epoch, recipe.epochs):
        gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)
        task.train()  # methods may keep parts frozen (teacher, stage-1 layers) in eval mode
        t0, seen, correct, loss_sum = time.time(), 0, 0, 0.0
        bar = tqdm(range(steps), desc=f"{recipe.method} epoch {epoch + 1}/{recipe.epochs}", disable=not progress or rank != 0,
                   leave=False, dynamic_ncols=True)
        for step in bar:
            index = order[step * batch:(step + 1) * batch]
            x = to_float(train_set.images[index.numpy()])
            if recipe.augment:
                x = augment(x, gen)
            y = torch.from_numpy(train_set.labels[index.numpy()])
            # Every rank built the same global batch (same generator); each keeps its slice.
            x, y, index = x[rank::world], y[rank::world], index[rank::world]
            for g in opt.param_groups:
                g["lr"] = lr_at(recipe, epoch * steps + step, total, steps)
            loss, logits = task.loss(net, x, y, index, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        logits = predict(student.backbone, spec, test_set.images)
        top1 = float((logits.argmax(1) == test_set.labels).mean())
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                        "test_top1": top1, "seconds": time.time() - t0})
        if rank == 0:
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{recipe.epochs}: loss {loss_sum / seen:.3f} train {correct / seen:.3f} "
                           f"test@{spec.resolution}px {top1:.4f} ({time.time() - t0:.0f}s)")
            tensors = {f"model.{k}": v for k, v in student.state_dict().items()}
            tensors.update({f"optim.{i}.momentum_buffer": opt.state[p]["momentum_buffer"] for i, p in enumerate(params)})
            save_checkpoint(out_dir, tensors, {"recipe": asdict(recipe), "spec": spec.to_dict(),
                                               "classes": train_set.classes, "epoch": epoch + 1,
                                               "history": history, **info})
        if world > 1:
            dist.barrier()
        if _stop_after is not None and epoch + 1 >= _stop_after:
            break
    return load_checkpoint(out_dir)[1]
