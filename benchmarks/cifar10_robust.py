"""CIFAR-10 robustness ablation (the camera-degradation issue): one row per change, same seed,
same student budget (ResNet-20 fed 16x16 natively, --epochs each), every row measured through
its exported bundle on the full test split shrunk with the real OpenCV / Pillow kernels.

Rows: specialists trained with one fixed kernel at 8 and 16 px; the any-size student trained
through random cameras (6-32 px); + label smoothing and EMA; then, from the same HR teacher and
with the same camera/LS/EMA recipe: staged fine-tuning, DFD (feature loss) and KD (logit loss);
then airnet students (training/backbones.py): half width, crops of 10-32 px, the camera on a square
test set's geometry (with and without an HR airnet teacher's start), and the long airnet x1 runs;
the camera's blur / noise / JPEG probabilities halved and off (`camera_realism`); airnet x1 against
airbench94's net from scratch, and airbench's net staged from an HR teacher of it on the long budget
(`airbench16_staged`), then continued without optics / sensor / codec realism and with nearest neighbour
drawn twice as often (`airbench16_more`); the same student trained on exactly the test's crop
(`airbench16_area16`, the ceiling of that recipe at 16 px) and on the camera narrowed to 12-24 px
(`airbench16_route12`, the upper route of a routed pair with `airbench16_staged` below 12 px), and that recipe on
airbench's net at half width fed 32 px (`airbench32_half_route12`, 87 MFLOPs, from its own HR teacher), continued
for the rest of the 2 h (`airbench32_half_route12_more`); area16's recipe with the camera's every kernel
(`airbench16_kernels16`: what the kernel mix alone costs at 16 px), continued with KD from an ensemble of
two camera-robust nets (`airbench16_kernels16_kd`) and without (`airbench16_kernels16_more`, its control), and
trained with Cutout for the rest of the 2 h instead (`airbench16_kernels16_cutout`); its recipe on airbench's net
at width 0.7 from its own HR start (`airbench16_x07_kernels16`, 50 MFLOPs: room for flip averaging within 111);
kernels16's recipe distilled from precomputed logits of an ensemble of five of these 16 px nets
(`airbench16_kernels16_enskd`; make the logits first with cifar10_kd_targets.py), and the same on 6-11 px crops
(`airbench16_route8_enskd`, the route below 12 px of a routed pair with it), nearest drawn more often and trained
longer (`airbench16_route8_enskd_n4`), and continued on exact 16 px crops as the upper route of a pair trained
within one 2 h (`airbench16_route16_from8`).

Resumable (runs in benchmarks/runs/cifar10_robust/); writes benchmarks/results/cifar10_robust.json
(rows {"run", "method", "resolution", "input_mode", "degradation", "kernel", "arch", "params",
"mflops", "epochs", "train_seconds", "top1"}), a PNG and a table in docs/benchmarks.md.

    python benchmarks/cifar10_robust.py [--epochs 10] [--teacher-epochs 10] [--long-epochs 30]
        [--square-epochs 30] [--staged-epochs 90] [--airbench-teacher-epochs 6] [--airbench-epochs 90]
        [--airbench-more-epochs 45] [--ceiling-epochs 30] [--half-more-epochs 12] [--kd-more-epochs 12]
        [--cutout-epochs 37] [--x07-epochs 25] [--route8-epochs 25] [--route8-long-epochs 30]
        [--route16-epochs 25]
        [--only RUN,RUN]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from results_io import bundle_weights, finished, publish_report, restore, save_figure, train_and_commit

from lowres_sdk.training.checkpoint import load_checkpoint
from lowres_sdk.training.data import load_splits
from lowres_sdk.training.degrade import KERNELS as KERNELS_ALL
from lowres_sdk.training.recipe import Recipe

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_robust.json"
# airbench16_kernels16_enskd's teacher: 16 px nets' logits on the train split (cifar10_kd_targets.py; 2 MB, committed)
ENSEMBLE_TARGETS = HERE / "checkpoints" / "cifar10_robust" / "kd_targets16.safetensors"
KERNELS = ("area", "linear", "cubic", "nearest", "lanczos", "pil-bicubic")
RESOLUTIONS = (8, 12, 16, 24, 32)
# the recipe fields every row carries besides `rows_for`'s, for the table
SHOWN_FIELDS = ("width", "camera_min", "camera_max", "camera_aspect", "camera_box_jitter", "camera_realism",
                "camera_kernels", "batch_size", "lr", "momentum", "weight_decay", "schedule", "norm_lr_scale", "cutout")
# airbench94's optimizer (KellerJordan/cifar10-airbench) in our loop's terms at batch 256: its lr and weight decay are
# per 1024 examples on a summed loss, decoupled by 1024 (1 + 1 / (1 - momentum)); on a mean loss that is
# lr 11.5 x 256 / 7850 and a coupled weight decay of 0.0153 / 11.5
AIRBENCH94_OPT = dict(batch_size=256, lr=round(11.5 * 256 / (1024 * (1 + 1 / 0.15)), 4), momentum=0.85,
                      weight_decay=round(0.0153 / 11.5, 6), norm_lr_scale=64.0, schedule="triangle")


def plan(args) -> list[tuple[str, Recipe]]:
    base = dict(data=str(args.data), arch="resnet20", seed=0, batch_size=128, lr=0.1)
    native = dict(input_mode="native", epochs=args.epochs, **base)
    camera = dict(degradation="camera", camera_min=6, camera_max=32)
    robust = dict(camera, label_smoothing=0.1, ema_decay=0.999)
    # the camera on a square test set's geometry: square objects kept square (aspect within x/÷ 1.2),
    # boxes jittered by 10 % instead of 20 %, crops of 6-24 px (larger ones look alike at 16 px)
    square = dict(robust, camera_max=24, camera_aspect=1.2, camera_box_jitter=0.1)
    # airbench16_route12's camera (and of the rows compared with it): that, narrowed to 12-24 px, half its realism
    route12_camera = dict(square, camera_min=12, camera_realism=0.5)
    # exactly the test's crop: the whole image shrunk to 16x16, no size / aspect / box / optics / sensor / codec draw
    exact16_camera = dict(square, camera_min=16, camera_max=16, camera_aspect=1.0, camera_box_jitter=0.0, camera_realism=0.0)
    half_airbench = dict(arch="airbench", width=0.5)  # airbench32_half_route12's net and its teacher's
    teacher = str(args.runs / "hr32")
    airnet_teacher = str(args.runs / "airnet32_hr")  # the HR airnet x1 of the airnet16_staged* / kd rows
    airbench_teacher = str(args.runs / "airbench32_hr")  # the HR start of airbench16_staged / _area16 / _route12
    return [
        ("hr32", Recipe(method="hr", epochs=args.teacher_epochs, **base)),
        ("fixed8", Recipe(method="lr", resolution=8, **native)),
        ("fixed16", Recipe(method="lr", resolution=16, **native)),
        ("camera16", Recipe(method="lr", resolution=16, **native, **camera)),
        ("camera16_ls_ema", Recipe(method="lr", resolution=16, **native, **robust)),
        # staged (paper 001) with every layer trainable = fine-tuning the teacher's weights on LR input;
        # `--method staged` needs the teacher's own input size, so the native student starts via `init`.
        ("staged16", Recipe(method="lr", resolution=16, init=teacher, **native, **robust)),
        ("kd16", Recipe(method="kd", resolution=16, teacher=teacher, init=teacher, **native, **robust)),
        ("dfd16", Recipe(method="dfd", resolution=16, teacher=teacher, **native, **robust)),
        # the same camera/LS/EMA recipe on airbench-style nets (training/backbones.py AirNet)
        ("airnet16_half", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet", "width": 0.5}, **robust)),
        ("airnet16", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet"}, **robust)),
        # the same with crops of 10-32 px instead of 6-32 (fewer of the hardest, smallest samples)
        ("airnet16_half_min10", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet", "width": 0.5},
                                       **{**robust, "camera_min": 10})),
        # the camera's shape distortions: the same on the square geometry
        ("airnet16_half_square", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet", "width": 0.5}, **square)),
        # ... started from an HR teacher of the same net (staged fine-tuning, as staged16 for ResNet-20)
        ("airnet32_hr_half", Recipe(method="hr", epochs=args.teacher_epochs, **{**base, "arch": "airnet", "width": 0.5})),
        ("airnet16_half_square_staged", Recipe(method="lr", resolution=16, init=str(args.runs / "airnet32_hr_half"),
                                               **{**native, "arch": "airnet", "width": 0.5}, **square)),
        # ... the same start and camera, the net fed 32x32 (every crop upscaled to it): the pool-first airnet (25 MFLOPs,
        # airnet16_half's 17 at 16 px) and airnet itself (54); 6 epochs, as the committed airnet16_half_square_staged
        ("airnet32pp_half_square_staged", Recipe(method="lr", resolution=32, init=str(args.runs / "airnet32_hr_half"),
                                                 **{**native, "arch": "airnet-prepool", "width": 0.5, "epochs": 6},
                                                 **square)),
        ("airnet32_half_square_staged", Recipe(method="lr", resolution=32, init=str(args.runs / "airnet32_hr_half"),
                                               **{**native, "arch": "airnet", "width": 0.5, "epochs": 6}, **square)),
        # the HR teacher of airnet16_staged (no row of its own)
        ("airnet32_hr", Recipe(method="hr", epochs=args.teacher_epochs, **{**base, "arch": "airnet"})),
        # airnet x1 fed 16 px, started from that HR teacher, on the square geometry; train s counts the teacher
        ("airnet16_staged", Recipe(method="lr", resolution=16, init=airnet_teacher,
                                   **{**native, "arch": "airnet", "epochs": args.staged_epochs}, **square)),
        # staged vs KD from that stronger teacher at the ablation's budget (--epochs, like staged16 / kd16)
        ("airnet16_staged_short", Recipe(method="lr", resolution=16, init=airnet_teacher,
                                         **{**native, "arch": "airnet"}, **square)),
        ("airnet16_kd_short", Recipe(method="kd", resolution=16, teacher=airnet_teacher,
                                     init=airnet_teacher, **{**native, "arch": "airnet"}, **square)),
        # the same with less optics / sensor / codec realism (half, none): what noise, blur and JPEG cost on clean test crops
        ("airnet16_staged_short_mild", Recipe(method="lr", resolution=16, init=airnet_teacher,
                                              **{**native, "arch": "airnet"}, **square, camera_realism=0.5)),
        ("airnet16_staged_short_clean", Recipe(method="lr", resolution=16, init=airnet_teacher,
                                               **{**native, "arch": "airnet"}, **square, camera_realism=0.0)),
        # the net: airnet x1 vs airbench94's (widths 64/256/256, GELU, frozen BN scales, dirac init, logits / 9;
        # 100 vs 67 MFLOPs at 16 px), from scratch, at the ablation's budget on the half-realism square camera
        ("airnet16_scratch_short", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet"}, **square,
                                          camera_realism=0.5)),
        ("airbench16_scratch_short", Recipe(method="lr", resolution=16, **{**native, "arch": "airbench"}, **square,
                                            camera_realism=0.5)),
        # the long budget on airbench's net: an HR teacher of it (no row of its own), then staged on the half-realism
        # square camera; train s counts the teacher (issue 13's <= 2 h)
        ("airbench32_hr", Recipe(method="hr", epochs=args.airbench_teacher_epochs, **{**base, "arch": "airbench"})),
        ("airbench16_staged", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                     **{**native, "arch": "airbench", "epochs": args.airbench_epochs},
                                     **square, camera_realism=0.5)),
        # ... continued within the 2 h: a second cosine cycle from lr 0.05, no blur / noise / JPEG (the kernels, sizes,
        # aspects and boxes stay random) and OpenCV's nearest neighbour, the worst kernel at 8 px, drawn twice as often
        ("airbench16_more", Recipe(method="lr", resolution=16, init=str(args.runs / "airbench16_staged"),
                                   **{**native, "arch": "airbench", "epochs": args.airbench_more_epochs, "lr": 0.05},
                                   **square, camera_realism=0.0, camera_kernels=",".join((*KERNELS_ALL, "nearest")))),
        # the same student from a 3x longer teacher: 18 instead of 6 HR epochs in place of airbench16_more's 45
        ("airbench32_hr18", Recipe(method="hr", epochs=args.airbench_long_teacher_epochs, **{**base, "arch": "airbench"})),
        ("airbench16_staged18", Recipe(method="lr", resolution=16, init=str(args.runs / "airbench32_hr18"),
                                       **{**native, "arch": "airbench", "epochs": args.airbench_epochs},
                                       **square, camera_realism=0.5)),
        # the ceiling of that student recipe: the same start and net trained on exactly the test's crop (OpenCV area
        # to 16x16 of the whole image, no box / aspect / optics / sensor / codec randomness) -- what this net reaches
        # at 16 px when the camera's spread costs nothing; --ceiling-epochs (30: a third of airbench16_staged's 90,
        # what a session of this VM allows) makes it a lower bound of that ceiling
        ("airbench16_area16", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                     **{**native, "arch": "airbench", "epochs": args.ceiling_epochs},
                                     **exact16_camera, camera_kernels="area")),
        # ... the same with the camera's every kernel instead of area alone (nothing else changed): what the kernel
        # spread costs at 16 px, apart from the size range and realism route12's camera adds
        ("airbench16_kernels16", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                        **{**native, "arch": "airbench", "epochs": args.ceiling_epochs},
                                        **exact16_camera)),
        # ... and the route a routed pair would send crops of >= 12 px to: the same start and epochs on the square
        # half-realism camera of airbench16_staged narrowed to 12-24 px (every kernel, box, aspect, blur, noise, JPEG)
        ("airbench16_route12", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                      **{**native, "arch": "airbench", "epochs": args.ceiling_epochs}, **route12_camera)),
        # ... the same start, camera and epochs with airbench94's optimizer instead of our generic loop's: its per-1024-example
        # lr 11.5 and weight decay 0.0153 at batch 256 (lr 0.375 on the mean loss), Nesterov momentum 0.85, BatchNorm
        # shifts at 64x lr, label smoothing 0.2, the triangular schedule; the EMA's horizon kept at 256k samples
        ("airbench16_route12_ab94", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                           **{**native, "arch": "airbench", "epochs": args.ceiling_epochs, **AIRBENCH94_OPT},
                                           **{**route12_camera, "label_smoothing": 0.2, "ema_decay": 0.998})),
        # ... and route12's own optimizer with one of airbench94's changes: BatchNorm shifts at 64x lr (decay / 64)
        ("airbench16_route12_bn64", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                           **{**native, "arch": "airbench", "epochs": args.ceiling_epochs},
                                           **route12_camera, norm_lr_scale=64.0)),
        # ... route12's recipe on airbench's net at half width fed 32x32 (every crop upscaled to it, as the paper's
        # students are): 87 MFLOPs against airbench x1's 100 at 16 px; its own HR teacher (the same 6 epochs) first
        ("airbench32_hr_half", Recipe(method="hr", epochs=args.airbench_teacher_epochs,
                                      **{**base, **half_airbench})),
        ("airbench32_half_route12", Recipe(method="lr", resolution=32, init=str(args.runs / "airbench32_hr_half"),
                                           **{**native, **half_airbench, "epochs": args.ceiling_epochs}, **route12_camera)),
        # ... continued for the rest of issue 13's 2 h (teacher and first cycle took ~1.2 h): a second cosine cycle from
        # lr 0.05 on the same camera, as airbench16_more continued airbench16_staged
        ("airbench32_half_route12_more", Recipe(method="lr", resolution=32, init=str(args.runs / "airbench32_half_route12"),
                                                **{**native, **half_airbench, "lr": 0.05, "epochs": args.half_more_epochs},
                                                **route12_camera)),
        # airbench16_kernels16 continued with logit distillation from an ensemble of two camera-robust nets of other
        # recipes and layouts (route12 and the half-width 32 px net above; each sees the HR image through its own
        # input), a second cosine cycle from lr 0.05 on the same crops: whether an ensemble teacher pays where one HR
        # teacher did not (placed after its teachers, which a pass over the whole plan trains first)
        ("airbench16_kernels16_kd", Recipe(method="kd", resolution=16, init=str(args.runs / "airbench16_kernels16"),
                                           teacher=str(args.runs / "airbench16_route12"),
                                           kd_teachers=str(args.runs / "airbench32_half_route12"),
                                           **{**native, "arch": "airbench", "epochs": args.kd_more_epochs, "lr": 0.05},
                                           **exact16_camera)),
        # ... its control: the same continuation without the teachers (what the second cycle alone does)
        ("airbench16_kernels16_more", Recipe(method="lr", resolution=16, init=str(args.runs / "airbench16_kernels16"),
                                             **{**native, "arch": "airbench", "epochs": args.kd_more_epochs, "lr": 0.05},
                                             **exact16_camera)),
        # airbench16_kernels16's start, crops and net with Cutout 12 (airbench96's; on the 32 px image before the camera
        # shrinks it) against its overfitting (train 95 % vs test 85 % at its end), for the rest of issue 13's 2 h
        # (--cutout-epochs 37: the start's 2,680 s + 37 epochs of ~119 s)
        ("airbench16_kernels16_cutout", Recipe(method="lr", resolution=16, init=airbench_teacher,
                                               **{**native, "arch": "airbench", "epochs": args.cutout_epochs},
                                               **exact16_camera, cutout=12)),
        # kernels16's recipe on airbench's net at width 0.7 (50 MFLOPs at 16 px: with the mirrored crop averaged in, 101
        # <= issue 13's 111), from its own HR start (the same 6 epochs), --x07-epochs at 16 px (~50 min in all)
        ("airbench32_hr_x07", Recipe(method="hr", epochs=args.airbench_teacher_epochs,
                                     **{**base, "arch": "airbench", "width": 0.7})),
        ("airbench16_x07_kernels16", Recipe(method="lr", resolution=16, init=str(args.runs / "airbench32_hr_x07"),
                                            **{**native, "arch": "airbench", "width": 0.7, "epochs": args.x07_epochs},
                                            **exact16_camera)),
        # kernels16's start, crops, net and 2 h, distilled (Hinton KD, tau 4, alpha 0.9) from the logits of an ensemble
        # of five 16 px nets above (each averaged with its mirrored crop; benchmarks/cifar10_kd_targets.py, committed:
        # the teachers' cost is stated, not counted, as issue 13 allows) instead of Cutout's regularisation
        ("airbench16_kernels16_enskd", Recipe(method="kd", resolution=16, init=airbench_teacher,
                                              kd_targets=str(ENSEMBLE_TARGETS),
                                              **{**native, "arch": "airbench", "epochs": args.cutout_epochs},
                                              **exact16_camera)),
        # the route below 12 px of a routed pair with it: the same start, net and targets (the teachers' 16 px views:
        # cross-resolution KD), crops of 6-11 px on the square geometry, every kernel with nearest (the worst at 8 px)
        # drawn twice, no optics / sensor / codec draw; --route8-epochs
        ("airbench16_route8_enskd", Recipe(method="kd", resolution=16, init=airbench_teacher, kd_targets=str(ENSEMBLE_TARGETS),
                                           **{**native, "arch": "airbench", "epochs": args.route8_epochs},
                                           **{**square, "camera_min": 6, "camera_max": 11, "camera_realism": 0.0,
                                              "camera_kernels": ",".join((*KERNELS_ALL, "nearest"))})),
        # ... its nearest neighbour (still 3 points under area at 8 px) drawn four times in eleven instead of twice in
        # nine, for the rest of issue 13's 2 h (--route8-long-epochs 30: on session 22's VM the start's 2,680 s + 30 epochs of ~130 s)
        ("airbench16_route8_enskd_n4", Recipe(method="kd", resolution=16, init=airbench_teacher,
                                              kd_targets=str(ENSEMBLE_TARGETS),
                                              **{**native, "arch": "airbench", "epochs": args.route8_long_epochs},
                                              **{**square, "camera_min": 6, "camera_max": 11, "camera_realism": 0.0,
                                                 "camera_kernels": ",".join((*KERNELS_ALL, *["nearest"] * 3))})),
        # the route from 12 px up of a routed pair with it within one 2 h: route8_enskd_n4's weights continued on
        # kernels16_enskd's exact 16 px crops and targets, a second cosine cycle from lr 0.05 (--route16-epochs 25: the
        # start's and route8_enskd_n4's 4,514 s on session 23's VM + 25 epochs of ~90 s); train s counts all three
        ("airbench16_route16_from8", Recipe(method="kd", resolution=16, init=str(args.runs / "airbench16_route8_enskd_n4"),
                                            kd_targets=str(ENSEMBLE_TARGETS),
                                            **{**native, "arch": "airbench", "epochs": args.route16_epochs, "lr": 0.05},
                                            **exact16_camera)),
        # the long run: the same recipe and net for --long-epochs (issue 13's <= 2 h budget)
        ("airnet16_long", Recipe(method="lr", resolution=16, **{**native, "arch": "airnet", "epochs": args.long_epochs}, **robust)),
        # airnet16_long continued on the square geometry, a second cosine cycle from lr 0.05; train s counts both runs
        ("airnet16_square", Recipe(method="lr", resolution=16, init=str(args.runs / "airnet16_long"),
                                   **{**native, "arch": "airnet", "epochs": args.square_epochs, "lr": 0.05}, **square)),
    ]


def init_chain(run: Path) -> list[Path]:
    """``run`` and the runs it started from (``init``), recursively."""
    init = load_checkpoint(run)[1]["recipe"].get("init")
    return [run, *(init_chain(Path(init)) if init else [])]


def train_seconds(*runs: Path) -> float:
    """Seconds of the training of ``runs`` and of the runs each started from (``init``), recursively; a
    run that several of them started from (a shared start) counted once."""
    unique = {p.resolve(): p for r in runs for p in init_chain(r)}
    return sum(h["seconds"] for p in unique.values() for h in load_checkpoint(p)[1]["history"])


def bundle_of(name: str, run: Path, meta: dict, test, bundles: Path) -> Path:
    """The run's exported FP32 bundle, ``bundles / name``; (re-)exported when missing or of other weights
    than the run's (``meta``: its checkpoint metadata)."""
    from lowres_sdk.export.exporter import export_run

    bundle = bundles / name
    if bundle_weights(bundle) != meta["weights_sha256"]:
        export_run(run, bundle, test_set=test.subset(np.arange(0, len(test), 10)), log=lambda *a: None, overwrite=True)
    return bundle


def rows_for(name: str, run: Path, test, bundles: Path) -> list[dict]:
    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import accuracy_by_kernel

    meta = load_checkpoint(run)[1]
    r = meta["recipe"]
    bundle = bundle_of(name, run, meta, test, bundles)
    rep = accuracy_by_kernel(Classifier(str(bundle)), list(test.images), test.labels, KERNELS, RESOLUTIONS, progress=False)
    common = {"run": name, "method": r["method"], "resolution": r["resolution"], "input_mode": r["input_mode"],
              "degradation": r.get("degradation", "fixed"), "label_smoothing": r.get("label_smoothing", 0.0),
              "ema_decay": r.get("ema_decay", 0.0), "arch": r["arch"], "params": meta["params"], "mflops": meta["mflops"],
              "epochs": r["epochs"], "train_seconds": round(train_seconds(run))}
    return [{**common, "kernel": k, "test_resolution": int(res), "top1": rep["top1"][k][res]}
            for k in rep["kernels"] for res in rep["top1"][k]]


def summary(rows: list[dict]) -> list[str]:
    lines = ["Full CIFAR-10 test split (10k), shrunk (square) with the real OpenCV / Pillow kernel, through each "
             "run's exported bundle (which resizes every crop to its net's input); seed 0. `net`: architecture, width, "
             "the input size it is fed natively, MFLOPs per crop; `area` = OpenCV INTER_AREA; `min` = the worst of the "
             "six kernels (area, linear, cubic, nearest, lanczos, pil-bicubic); `train s` adds the seconds of the run "
             "each started from (`init`), not those of a teacher it only distilled from; epoch times differ between "
             "sessions' VMs.", "",
             "| run | net | method | training degradation | optimizer | LS / EMA | epochs | train s | 8 px area | 8 px min | "
             "12 px area | 16 px area | 16 px min | 32 px area | 32 px min |", "|---" * 15 + "|"]
    for name in dict.fromkeys(r["run"] for r in rows):
        rr = [r for r in rows if r["run"] == name]
        get = lambda res, k=None: (next(r["top1"] for r in rr if r["test_resolution"] == res and r["kernel"] == k) if k
                                   else min(r["top1"] for r in rr if r["test_resolution"] == res))
        r0 = rr[0]
        deg = (f"camera {r0['camera_min']}-{r0['camera_max']} px" if r0["degradation"] == "camera"
               else f"fixed ({r0['resolution']} px)")
        if r0["degradation"] == "camera" and r0.get("camera_aspect", 2.5) != 2.5:
            deg += f", aspect x/÷ {r0['camera_aspect']:g}, box jitter {r0['camera_box_jitter']:g}"
        if r0["degradation"] == "camera" and r0.get("camera_realism", 1.0) != 1.0:
            deg += f", realism {r0['camera_realism']:g}"
        drawn = [k for k in r0.get("camera_kernels", "").split(",") if k]
        if r0["degradation"] == "camera" and drawn:
            deg += ", kernels " + " ".join(k if drawn.count(k) == 1 else f"{k} x{drawn.count(k)}" for k in dict.fromkeys(drawn))
        if r0.get("cutout"):
            deg += f", Cutout {r0['cutout']} px"
        opt = (f"batch {r0['batch_size']}, lr {r0['lr']:g} {r0['schedule']}, momentum {r0['momentum']:g}, wd {r0['weight_decay']:g}"
               + (f", BN x{r0['norm_lr_scale']:g}" if r0["norm_lr_scale"] != 1.0 else "")) \
            if all(k in r0 for k in SHOWN_FIELDS) else ""  # a row written before these fields, not yet re-read
        net = (f"{r0['arch']}" + (f" x{r0['width']:g}" if r0.get("width", 1.0) != 1.0 else "")
               + f", {r0['resolution']} px, {r0['mflops']:.0f} MFLOPs")
        lines.append(f"| {name} | {net} | {r0['method']} | {deg} | {opt} | {r0['label_smoothing']:g} / {r0['ema_decay']:g} | "
                     f"{r0['epochs']} | "
                     f"{r0['train_seconds']} | {get(8, 'area'):.1f} | {get(8):.1f} | {get(12, 'area'):.1f} | {get(16, 'area'):.1f} | "
                     f"{get(16):.1f} | {get(32, 'area'):.1f} | {get(32):.1f} |")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for name in dict.fromkeys(r["run"] for r in rows):
        rr = [r for r in rows if r["run"] == name]
        res = sorted({r["test_resolution"] for r in rr})
        axes[0].plot(res, [next(r["top1"] for r in rr if r["test_resolution"] == x and r["kernel"] == "area") for x in res],
                     marker="o", label=name)
        axes[1].plot(res, [min(r["top1"] for r in rr if r["test_resolution"] == x) for x in res], marker="o", label=name)
    axes[0].set_title("OpenCV INTER_AREA", fontsize=9)
    axes[1].set_title("worst of 6 kernels", fontsize=9)
    for ax in axes:
        ax.set_xlabel("test crop size (px)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 % (CIFAR-10 test)")
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def nets_arguments(p: argparse.ArgumentParser, nets: tuple[str, ...] | None) -> None:
    """--data, --runs-dir and (unless ``nets`` is None) --nets: the options of a script that measures nets
    this script trained."""
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "cifar10_robust",
                   help="where cifar10_robust.py trained the nets (their bundles are under bundles/)")
    if nets is not None:
        p.add_argument("--nets", default=",".join(nets), help="comma-separated runs of cifar10_robust.py (default: %(default)s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "cifar10_robust")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--long-epochs", type=int, default=30, help="epochs of the long airnet16_long row")
    p.add_argument("--square-epochs", type=int, default=30, help="epochs of airnet16_square (continues airnet16_long)")
    p.add_argument("--staged-epochs", type=int, default=90,
                   help="epochs of airnet16_staged (starts from the airnet32_hr teacher)")
    p.add_argument("--airbench-teacher-epochs", type=int, default=6, help="epochs of the airbench32_hr teacher")
    p.add_argument("--airbench-epochs", type=int, default=90,
                   help="epochs of airbench16_staged (from airbench32_hr; teacher + student <= 2 h)")
    p.add_argument("--airbench-more-epochs", type=int, default=45,
                   help="epochs of airbench16_more (continues airbench16_staged; all three <= 2 h)")
    p.add_argument("--airbench-long-teacher-epochs", type=int, default=18,
                   help="epochs of the airbench32_hr18 teacher (with airbench16_staged18 <= 2 h)")
    p.add_argument("--ceiling-epochs", type=int, default=30,
                   help="epochs of airbench16_area16 (from airbench32_hr, trained on exactly the test's 16 px crop) and of "
                        "airbench16_route12 (the same start, the camera narrowed to 12-24 px) and airbench32_half_route12 "
                        "(route12's recipe on airbench x0.5 fed 32 px)")
    p.add_argument("--half-more-epochs", type=int, default=12,
                   help="epochs of airbench32_half_route12_more (continues airbench32_half_route12; all three <= 2 h)")
    p.add_argument("--kd-more-epochs", type=int, default=12,
                   help="epochs of airbench16_kernels16_kd and _more (continue airbench16_kernels16, with and "
                        "without distillation from an ensemble)")
    p.add_argument("--cutout-epochs", type=int, default=37,
                   help="epochs of airbench16_kernels16_cutout (from airbench32_hr; the two <= 2 h)")
    p.add_argument("--x07-epochs", type=int, default=25,
                   help="epochs of airbench16_x07_kernels16 (from airbench32_hr_x07; the two ~50 min)")
    p.add_argument("--route8-epochs", type=int, default=25,
                   help="epochs of airbench16_route8_enskd (from airbench32_hr; ~50 min)")
    p.add_argument("--route8-long-epochs", type=int, default=30,
                   help="epochs of airbench16_route8_enskd_n4 (from airbench32_hr; the two <= 2 h)")
    p.add_argument("--route16-epochs", type=int, default=25,
                   help="epochs of airbench16_route16_from8 (continues airbench16_route8_enskd_n4; the three <= 2 h)")
    p.add_argument("--only", default=None, help="Comma-separated run names to train (default: all)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_splits(args.data, 32)
    checkpoints = HERE / "checkpoints" / "cifar10_robust"
    rows = []
    done = json.loads(RESULTS.read_text()) if RESULTS.exists() else []  # rows of earlier runs of this script
    for name, recipe in plan(args):
        run = args.runs / name
        restore(run, checkpoints / name)
        shown = {k: getattr(recipe, k) for k in SHOWN_FIELDS}  # also on rows cached before these fields
        if args.only and name not in args.only.split(",") and not finished(run, recipe.epochs):
            rows += [{**r, **shown} for r in done if r["run"] == name]  # not trained here: its earlier rows stay
            continue
        meta = train_and_commit(recipe, run, checkpoints / name, data, log=lambda line: print(line, flush=True))
        if recipe.method == "hr":  # a teacher: its rows would be HR accuracy
            continue
        sha = meta["weights_sha256"]
        cached = [r for r in done if r["run"] == name and r.get("weights_sha256") == sha]
        rows += [{**r, **shown} for r in cached] or [{**r, **shown, "weights_sha256": sha}
                                                     for r in rows_for(name, run, data[1], args.runs / "bundles")]
        publish(rows, done)  # after every run, so an interrupted pass keeps what it measured
        print(json.dumps(summary(rows)[-1]), flush=True)
    publish(rows)  # again: the earlier rows of runs skipped after the last measured one


def publish(rows: list[dict], earlier: list[dict] = ()) -> None:
    """Write ``rows`` and, after them, the ``earlier`` rows of runs this pass has not reached yet (so the
    results stay whole while a pass is under way)."""
    have = {r["run"] for r in rows}
    rows = rows + [r for r in earlier if r["run"] not in have]
    publish_report("cifar10_robust", RESULTS, rows, plot, summary)


if __name__ == "__main__":
    main()
