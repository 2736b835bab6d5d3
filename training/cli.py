"""`lowres train` and `lowres eval` (attached to the `lowres` group lazily, so `lowres --help` and
the runtime commands never import torch)."""
from __future__ import annotations

import json
import os

import click

ARCH_NAMES = ["resnet20", "resnet32", "resnet56", "resnet18", "mobilenet"]


def _resolutions(ctx, param, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 8,16,32, got {value!r}")
    if not out:
        raise click.BadParameter("give at least one resolution")
    return out


@click.command("train")
@click.option("--method", type=click.Choice(["lr", "hr", "dfd", "staged", "mixed", "transfer", "sr", "crossres", "fsrgan"]),
              required=True,
              help="lr: train on degraded input; hr: HR teacher; dfd: deep feature distillation from --teacher; "
                   "staged: fine-tune the HR run --teacher on LR input; mixed: one net on HR and LR input at once; "
                   "transfer: k-means + transfer net + SVM on the frozen --teacher's features (no filter trained); "
                   "sr: an SR net in front of the frozen HR classifier --teacher; "
                   "crossres: cross-resolution fine-tuning for retrieval (paper 003; pass --init HR_RUN); "
                   "fsrgan: feature super-resolution GAN on the frozen --teacher's features (paper 004).")
@click.option("--data", required=True, help="Dataset folder with train/<class>/ and test/<class>/, or a .tar.gz of one.")
@click.option("--resolution", type=int, default=8, show_default=True, help="Detail in px the model is trained for (ignored by hr).")
@click.option("--input-mode", type=click.Choice(["upsampled", "native"]), default="upsampled", show_default=True,
              help="upsampled: LR image resized back to --image-size (paper setting); native: the net takes the LR size directly.")
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="resnet20", show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier.")
@click.option("--image-size", type=int, default=32, show_default=True, help="HR size the images are read at.")
@click.option("--fit", type=click.Choice(["stretch", "letterbox"]), default="stretch", show_default=True,
              help="Non-square images: stretch to a square, or letterbox (pad with gray, aspect kept); the "
                   "exported graph does the same to every crop.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=0.1, show_default=True, help="Peak SGD learning rate.")
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-augment", is_flag=True, help="Disable random crop + flip.")
@click.option("--limit-per-class", type=int, default=None, help="Use at most N images per class (quick runs).")
@click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Train on the first fraction of each class (limited-data studies); the test split stays whole.")
@click.option("--blur", "blur_sigma", type=float, default=0.0, show_default=True, help="Gaussian blur sigma before downsampling.")
@click.option("--noise", "noise_std", type=float, default=0.0, show_default=True, help="Gaussian noise std at LR (0-1 scale).")
@click.option("--jpeg", "jpeg_quality", type=click.IntRange(1, 100), default=None, help="JPEG quality at LR.")
@click.option("--teacher", default=None, help="A --method hr run: dfd's teacher, staged's stage 1, the frozen "
                                               "feature extractor of transfer and fsrgan, the classifier sr feeds.")
@click.option("--dfd-lambda", type=float, default=2.0, show_default=True, help="dfd: weight of the feature loss (paper: 2).")
@click.option("--no-init-from-teacher", is_flag=True, help="dfd: train the student from scratch instead of the teacher's weights.")
@click.option("--cache-teacher", is_flag=True, help="dfd: precompute teacher features once (needs --no-augment).")
@click.option("--trainable", default="all", show_default=True,
              help="staged: what stage 2 fine-tunes: 'all', or parameter-name prefixes like 'fc' or 'layers.8,fc'.")
@click.option("--mixed-ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="mixed: probability that a training image is degraded to --resolution (else kept HR).")
@click.option("--clusters", type=click.IntRange(2), default=50, show_default=True,
              help="transfer: k-means clusters = pseudo-classes = transferred feature dim. --epochs, --batch-size "
                   "and --lr then train the transfer net (paper 000: 1000, 1000, 0.01).")
@click.option("--transfer-hidden", type=click.IntRange(1), default=256, show_default=True,
              help="transfer: hidden width of the 2-layer transfer net.")
@click.option("--transfer-labels", type=click.Choice(["nearest", "paired"]), default="nearest", show_default=True,
              help="transfer: an LR feature's pseudo-label: its nearest HR centroid (paper 000), or the cluster of "
                   "its own HR image (paired; no class labels either).")
@click.option("--sr-width", type=click.IntRange(4), default=64, show_default=True, help="sr: channels of the ESPCN SR net.")
@click.option("--crossres-p", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="crossres: probability that a training image is downsampled (paper 003 tries 0.1, 0.3, 0.5, 0.7, 1.0).")
@click.option("--query-min", type=click.IntRange(min=1), default=8, show_default=True,
              help="crossres/fsrgan: smallest random LR resolution (px) a training image is shrunk to.")
@click.option("--query-max", type=click.IntRange(min=1), default=24, show_default=True,
              help="crossres/fsrgan: largest random LR resolution (px).")
@click.option("--fsr-lr", type=float, default=8e-4, show_default=True, help="fsrgan: Adam learning rate of G and D (paper 004).")
@click.option("--fsr-critic-steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="fsrgan: WGAN critic updates per generator update.")
@click.option("--fsr-clip", type=float, default=0.01, show_default=True,
              help="fsrgan: the critic's weights are clipped to [-c, c] (WGAN's Lipschitz constraint).")
@click.option("--fsr-views", type=click.IntRange(min=1), default=4, show_default=True,
              help="fsrgan: LR views (random resolutions in --query-min..--query-max) per training image.")
@click.option("--init", "init_run", default=None, type=click.Path(),
              help="Start from this run's weights (fine-tuning; a new head when the classes differ).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoint written every epoch).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def train_command(method, data, resolution, input_mode, arch, width, image_size, fit, epochs, batch_size, learning_rate,
                  schedule, weight_decay, seed, no_augment, limit_per_class, train_fraction, blur_sigma, noise_std, jpeg_quality,
                  teacher, dfd_lambda, no_init_from_teacher, cache_teacher, trainable, mixed_ratio, clusters, transfer_hidden,
                  transfer_labels, sr_width, crossres_p, query_min, query_max, fsr_lr, fsr_critic_steps, fsr_clip, fsr_views, init_run, out,
                  resume):
    """Train a low-resolution model (or its HR teacher). Works unchanged under
    `torchrun --nproc_per_node N -m lowres_sdk.cli train ...`."""
    from .loop import Recipe, train

    recipe = Recipe(method=method, data=data, arch=arch, width=width, resolution=resolution, input_mode=input_mode,
                    image_size=image_size, fit=fit, epochs=epochs, batch_size=batch_size, lr=learning_rate, schedule=schedule,
                    weight_decay=weight_decay, seed=seed, augment=not no_augment, limit_per_class=limit_per_class, train_fraction=train_fraction,
                    blur_sigma=blur_sigma, noise_std=noise_std, jpeg_quality=jpeg_quality, teacher=teacher,
                    dfd_lambda=dfd_lambda, init_from_teacher=not no_init_from_teacher, cache_teacher=cache_teacher,
                    trainable=trainable, mixed_ratio=mixed_ratio, clusters=clusters, transfer_hidden=transfer_hidden,
                    transfer_labels=transfer_labels, sr_width=sr_width, crossres_p=crossres_p, query_min=query_min, query_max=query_max, fsr_lr=fsr_lr,
                    fsr_critic_steps=fsr_critic_steps, fsr_clip=fsr_clip, fsr_views=fsr_views, init=init_run)
    meta = train(recipe, out, resume=resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    last = meta["history"][-1]
    click.echo(f"{out}: {meta['epoch']} epochs, test top-1 {100 * last['test_top1']:.2f} % at "
               f"{last.get('test_resolution', recipe.resolution)} px "
               f"({meta['params']:,} params, {meta['mflops']} MFLOPs)")


@click.command("eval")
@click.argument("run", type=click.Path())
@click.option("--resolutions", callback=_resolutions, default="8,12,16,24,32", show_default=True,
              help="Input resolutions (px) to test at: each test image is downsampled to it first.")
@click.option("--data", default=None, help="Dataset to test on (default: the run's own).")
@click.option("--limit-per-class", type=int, default=None, help="Use at most N test images per class.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_command(run, resolutions, data, limit_per_class, as_json):
    """Top-1, per-class accuracy and confusion matrix of RUN at each resolution; writes RUN/eval.json
    and RUN/eval_resolution.png."""
    from .evaluate import evaluate

    report = evaluate(run, resolutions, data, limit_per_class)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{run} ({report['method']}, {report['arch']}, trained @{report['trained_resolution']} px, "
               f"{report['test_images']} test images)")
    for r, rep in report["resolutions"].items():
        click.echo(f"  {r:>3} px  top-1 {100 * rep['top1']:6.2f} %")
    click.echo(f"wrote {run}/eval.json and {run}/eval_resolution.png")


@click.group("viz")
def viz_group():
    """Pictures of what a run learned, as PNG: t-SNE of features, occlusion heat maps, accuracy by
    input resolution."""


@viz_group.command("tsne")
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG to write (default RUN/tsne.png).")
@click.option("--resolution", type=int, default=None, help="LR input resolution (default: the run's own).")
@click.option("--per-class", type=click.IntRange(2), default=100, show_default=True, help="Test images per class.")
@click.option("--data", default=None, help="Dataset to draw from (default: the run's own).")
def viz_tsne(run, out, resolution, per_class, data):
    """t-SNE (scikit-learn) of the test images' pooled features, coloured by class: the HR model on
    HR and on LR input, then RUN itself on LR input (paper 000's figure; for a transfer or DFD run
    the last panel shows the transferred / distilled features)."""
    from .viz import tsne_figure

    path = tsne_figure(run, out or os.path.join(run, "tsne.png"), data, per_class, resolution)
    click.echo(f"wrote {path}")


@viz_group.command("occlusion")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--images", type=click.IntRange(1, 32), default=4, show_default=True, help="Test images (rows).")
@click.option("--resolution", type=int, default=None,
              help="Input resolution for every run (default: each run's own, e.g. HR for an hr run).")
@click.option("--patch", type=click.FloatRange(0, 1, min_open=True), default=0.25, show_default=True,
              help="Gray patch side as a fraction of the model's input side.")
@click.option("--data", default=None, help="Dataset to draw from (default: the first run's own).")
def viz_occlusion(runs, out, images, resolution, patch, data):
    """Occlusion heat maps (paper 001): a gray (128) patch slides over the input image I and each
    pixel gets ||Psi(I) - Psi(I')||^2 (Psi = logits); RUNS side by side, e.g. an HR and an LR model."""
    from .viz import occlusion_figure

    click.echo(f"wrote {occlusion_figure(list(runs), out, data, images, resolution, patch)}")


@viz_group.command("resolution")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--resolutions", callback=_resolutions, default="8,12,16,24,32", show_default=True)
@click.option("--data", default=None, help="Dataset to test on (default: each run's own).")
@click.option("--limit-per-class", type=int, default=None, help="Use at most N test images per class.")
def viz_resolution(runs, out, resolutions, data, limit_per_class):
    """Top-1 accuracy vs input resolution, one curve per run (each also gets RUN/eval.json)."""
    from .viz import resolution_figure

    click.echo(f"wrote {resolution_figure(list(runs), out, resolutions, data, limit_per_class)}")


def _numbers(kind):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            return [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"expected comma-separated numbers like 8,12,16, got {value!r}")
    return parse


@click.command("eval-retrieval")
@click.argument("run", type=click.Path())
@click.option("--dataset", type=click.Choice(["reid", "orl", "classes"]), default="classes", show_default=True,
              help="reid: person-reid-48x128 (camera 01 queries vs camera 02 gallery, the last 31 of 62 ids); "
                   "orl: ORL faces (the last 15 of 30 ids, images 1-5 queries vs 6-10 gallery); classes: any "
                   "train/+test/ ImageFolder set such as CIFAR-10 (test split halves, same class = relevant).")
@click.option("--data", default=None, help="Dataset folder or .tar.gz (default: the run's own).")
@click.option("--resolutions", callback=_numbers(int), default=None,
              help="Query resolutions in px (shortest side, aspect kept) [default: 8,12,16,24,32 below the "
                   "native size]. The native (HR) query is always added.")
@click.option("--factors", callback=_numbers(float), default=None,
              help="Downscale factors instead (paper 004's protocol), e.g. 2,4,8: query side = native side / factor.")
@click.option("--k", "ks", callback=_numbers(int), default="1,5,10", show_default=True, help="Cut-offs for precision@k and recall@k.")
@click.option("--per-class", type=click.IntRange(min=1), default=100, show_default=True,
              help="classes: at most N queries and N gallery images per class.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Where retrieval.json/.png go (default: RUN).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_retrieval_command(run, dataset, data, resolutions, factors, ks, per_class, out, as_json):
    """Cross-resolution retrieval of RUN: low-res queries against a full-resolution gallery, mAP,
    precision@k and recall@k per query resolution (papers 003/004). Embedding = the pooled features;
    for an fsrgan run, queries with (fsr) and without (raw) the generator. Writes retrieval.json + .png."""
    from .retrieval_eval import evaluate_retrieval

    report = evaluate_retrieval(run, dataset, data, resolutions, factors, tuple(ks), per_class, out)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    k = max(ks)
    click.echo(f"{run} ({report['method']}) on {report['dataset']}: {report['queries']} queries vs "
               f"{report['gallery']} gallery images")
    for r in report["rows"]:
        click.echo(f"  {r['variant']:>5} {r['query_resolution']:>3} px (/{r['downscale_factor']:g})  mAP {r['map']:.4f}  "
                   f"P@{k} {r[f'p_at_{k}']:.4f}  R@{k} {r[f'r_at_{k}']:.4f}")
    click.echo(f"wrote {out or run}/retrieval.json and retrieval.png")
