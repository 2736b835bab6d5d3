"""The one table of training methods: the single place a method is named. Each entry is the
method's file (its `make_task` for the loop, or its own `fit` procedure on extracted features)
and the help `lowres train` shows. Method files import nothing from the loop they plug into."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from . import crossres, dfd, fsrgan, hr, kd, lr, mixed, sr, staged, transfer


@dataclass(frozen=True)
class Method:
    module: ModuleType
    help: str
    any_resolution: bool = False  # trains at the image size for queries of any resolution (resolution ignored)

    @property
    def own_procedure(self) -> bool:
        """True for methods with their own `fit` (feature-level work), not the epoch loop's `make_task`."""
        return hasattr(self.module, "fit")


METHODS: dict[str, Method] = {
    "lr": Method(lr, "train on degraded input, cross-entropy only (the low-resolution baseline)"),
    "hr": Method(hr, "the HR teacher: the same on undegraded input", any_resolution=True),
    "dfd": Method(dfd, "deep feature distillation from --teacher (paper 002)"),
    "kd": Method(kd, "logit distillation from --teacher (Hinton; --kd-alpha, --kd-tau)"),
    "staged": Method(staged, "fine-tune the HR run --teacher on LR input (paper 001)"),
    "mixed": Method(mixed, "one net trained on HR and LR input at once (paper 001's baseline)"),
    "transfer": Method(transfer, "k-means + transfer net + SVM on the frozen --teacher's features (paper 000)"),
    "sr": Method(sr, "an SR net in front of the frozen HR classifier --teacher"),
    "crossres": Method(crossres, "cross-resolution fine-tuning for retrieval (paper 003; pass --init HR_RUN)",
                       any_resolution=True),
    "fsrgan": Method(fsrgan, "feature super-resolution GAN on the frozen --teacher's features (paper 004)",
                     any_resolution=True),
}
