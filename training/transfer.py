"""`transfer` (paper 000, unsupervised deep feature transfer). No network filter is fine-tuned:

1. a frozen HR model (``--teacher``) extracts features of the training images at HR and at LR;
2. scikit-learn k-means on the HR features; each LR feature gets the label of its nearest HR
   centroid (a pseudo-label: no ground truth is used here). ``labels="paired"`` (our
   variant, still without class labels) gives it instead the cluster of its own HR image;
3. a 2-layer FC transfer network (feature dim -> ``hidden`` -> ``clusters``) learns the
   pseudo-labels from LR features with cross-entropy; its k outputs are the transferred features;
4. a linear SVM (scikit-learn, on standardised features) is trained on the transferred LR features.

The result is one chained model: LR pre-processing -> frozen backbone -> transfer net -> SVM as a
linear head (the standardisation folded into its weights). Exported as a classifier, its output is
softmax(SVM decision scores): the argmax is the SVM's prediction, the values are not calibrated
probabilities. The paper's widths (2048 -> 4096 -> 100 for 20 classes) scale here to 64 -> 256 -> 50.
"""
from __future__ import annotations

import time
from typing import ClassVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from lowres_sdk.errors import CheckpointError, InputError

from .backbones import count_mflops, count_params
from .chain import chain_around, stage
from .checkpoint import existing_run, load_checkpoint, load_teacher, save_checkpoint
from .data import ImageSet
from .degrade import Degrade, ModelInput
from .data import to_float
from .options import OptionGroup, option


@dataclass
class TransferOptions(OptionGroup):
    prefix: ClassVar[str] = "transfer"
    clusters: int = option(50, "k-means clusters = pseudo-classes = transferred feature dim.", flat="clusters")
    hidden: int = option(256, "hidden width of the 2-layer transfer net.")
    labels: str = option("nearest", "an LR feature's pseudo-label: its nearest HR centroid (paper 000), or the "
                                    "cluster of its own HR image (paired).", ("nearest", "paired"))


@torch.no_grad()
def features(model, spec, images: np.ndarray, resolution: int | None, batch_size: int = 500,
             progress: bool = False, desc: str = "features") -> np.ndarray:
    """Pooled features of uint8 RGB images, degraded to ``resolution`` px first (None: as they are)."""
    model.eval()
    pre = ModelInput(spec)
    camera = Degrade(resolution, down=spec.down, up=spec.up) if resolution else None
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        x = to_float(images[i:i + batch_size])
        out.append(model.forward_features(pre(camera(x) if camera else x)))
    return torch.cat(out).numpy()


def pseudo_labels(hr_features: np.ndarray, lr_features: np.ndarray, k: int, seed: int):
    """k-means on HR features; each LR feature is labelled by its nearest HR centroid."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(hr_features)
    return kmeans.predict(lr_features.astype(kmeans.cluster_centers_.dtype)), kmeans


def train_transfer_net(lr_features: np.ndarray, labels: np.ndarray, k: int, hidden: int, epochs: int,
                       batch_size: int, lr: float, weight_decay: float, momentum: float, seed: int,
                       progress: bool = False):
    """The 2-layer FC net learning pseudo-labels from LR features (SGD, LR x0.1 at 50 % and 75 %)."""
    torch.manual_seed(seed)
    net, spec_json = stage("mlp", dims=[lr_features.shape[1], hidden, k])
    for m in net.modules():  # the paper's MSRA initialisation
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    x, y = torch.from_numpy(lr_features), torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2, 3 * epochs // 4], 0.1)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in tqdm(range(epochs), desc="transfer net", disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=gen)
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            logits = net(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum().item()
        sched.step()
        history.append({"epoch": epoch + 1, "train_loss": total / len(x), "pseudo_label_acc": correct / len(x)})
    return net.eval(), spec_json, history


def linear_svm(train_x: np.ndarray, train_y: np.ndarray, seed: int):
    """Standardise + LinearSVC; returns (W, b) of the equivalent linear map on raw features."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    svc = LinearSVC(C=1.0, dual="auto", max_iter=5000, random_state=seed)
    pipe = make_pipeline(StandardScaler(), svc).fit(train_x, train_y)
    scaler, svm = pipe[0], pipe[1]
    w = svm.coef_ / scaler.scale_
    b = svm.intercept_ - w @ scaler.mean_
    return w.astype(np.float32), b.astype(np.float32), pipe


def fit(recipe, out_dir, resume: bool = False, progress: bool = True,
        data: tuple[ImageSet, ImageSet] | None = None, _stop_after: int | None = None) -> dict:
    """The whole procedure; writes a checkpoint of the chained model to ``out_dir``."""
    from .distributed import world as process_world

    out_dir = Path(out_dir)
    rank, world = process_world()
    meta = existing_run(out_dir, recipe, resume)
    if meta is not None:
        return meta  # one step: a finished run is complete
    if rank != 0:  # feature-level work is small: rank 0 does it, the others wait and read the result
        dist.barrier()
        return load_checkpoint(out_dir)[1]
    backbone, teacher_spec, tmeta, train_set, test_set = _inputs(recipe, data)
    o, spec = recipe.options, recipe.spec
    t0 = time.time()
    r = recipe.resolution
    f_hr = features(backbone, teacher_spec, train_set.images, None, progress=progress, desc="HR features")
    # LR features through this run's own pre-processing (to r px, bicubic back up): what the exported graph computes.
    f_lr = features(backbone, spec, train_set.images, r, progress=progress, desc=f"{r} px features")
    test_hr = features(backbone, teacher_spec, test_set.images, None)
    test_lr = features(backbone, spec, test_set.images, r)
    labels, kmeans = pseudo_labels(f_hr, f_lr, o.clusters, recipe.seed)
    hr_clusters = kmeans.predict(f_hr)
    if o.labels == "paired":  # our variant: the cluster of the LR image's own HR version
        labels = hr_clusters
    net, net_json, history = train_transfer_net(
        f_lr, labels, o.clusters, o.hidden, recipe.epochs, recipe.batch_size, recipe.lr,
        recipe.weight_decay, recipe.momentum, recipe.seed, progress)
    with torch.no_grad():
        t_train = net(torch.from_numpy(f_lr)).numpy()
        t_test = net(torch.from_numpy(test_lr)).numpy()
    w, b, svm = linear_svm(t_train, train_set.labels, recipe.seed)

    def svm_top1(train_x, test_x):
        svm = linear_svm(train_x, train_set.labels, recipe.seed)[2]
        return round(100 * float(svm.score(test_x, test_set.labels)), 2)

    metrics = {
        "svm_transfer_top1": round(100 * float(svm.score(t_test, test_set.labels)), 2),
        "svm_lr_features_top1": svm_top1(f_lr, test_lr),      # the paper's Baseline-LR
        "svm_hr_features_top1": svm_top1(f_hr, test_hr),      # the paper's Baseline-HR (upper bound)
        # How often the paper's pseudo-label (nearest HR centroid) is the LR image's own HR cluster.
        "pseudo_label_agreement": round(float((kmeans.predict(f_lr) == hr_clusters).mean()), 4),
    }
    head, head_json = stage("linear", in_features=o.clusters, out_features=len(train_set.classes))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
        head.bias.copy_(torch.from_numpy(b))
    model = chain_around(backbone, tmeta["recipe"]["arch"], tmeta["recipe"]["width"],
                         neck=(net, net_json), head=(head, head_json)).eval()
    history[-1].update({"test_top1": metrics["svm_transfer_top1"] / 100, "seconds": time.time() - t0})
    meta = {"recipe": recipe.to_dict(), "spec": spec.to_dict(), "classes": train_set.classes, "epoch": recipe.epochs,
            "history": history, "params": count_params(model), "mflops": round(count_mflops(model, spec.size), 2),
            "chain": model.spec_json, "metrics": metrics}
    save_checkpoint(out_dir, {f"model.backbone.{k}": v for k, v in model.state_dict().items()}, meta)
    if world > 1:
        dist.barrier()
    if progress:
        print(f"transfer: SVM top-1 at {r} px {metrics['svm_transfer_top1']} % with transfer, "
              f"{metrics['svm_lr_features_top1']} % on raw LR features, "
              f"{metrics['svm_hr_features_top1']} % HR upper bound")
    return load_checkpoint(out_dir)[1]


def _inputs(recipe, data):
    """The frozen teacher (backbone, spec, metadata) and the (train, test) images, checked to fit each other."""
    from .data import fraction_per_class, load_splits

    if recipe.input_mode != "upsampled":
        raise InputError("transfer reuses the HR network on LR images: use --input-mode upsampled")
    backbone, teacher_spec, tmeta = load_teacher(recipe, "a frozen HR feature extractor")
    train_set, test_set = data if data is not None else load_splits(recipe.data, recipe.image_size,
                                                                    recipe.limit_per_class, fit=recipe.fit)
    if recipe.train_fraction < 1.0:
        train_set = fraction_per_class(train_set, recipe.train_fraction)
    if tmeta["classes"] != train_set.classes:
        raise CheckpointError(f"teacher {recipe.teacher} has classes {tmeta['classes']}, the data has "
                              f"{train_set.classes}")
    clusters = recipe.options.clusters
    if clusters < 2 or clusters > len(train_set):
        raise InputError(f"clusters must be between 2 and the number of training images ({len(train_set)}), "
                         f"got {clusters}")
    spec = recipe.spec
    if teacher_spec.size != spec.size or (teacher_spec.mean, teacher_spec.std) != (spec.mean, spec.std):
        raise CheckpointError(f"teacher {recipe.teacher} takes {teacher_spec.size} px input; this recipe "
                              f"{spec.size} px")
    return backbone, teacher_spec, tmeta, train_set, test_set
