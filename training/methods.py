"""The one table of training methods: the single place a method is named. Each entry is the
method's file (its `make_task` for the loop, or its own `fit` procedure on extracted features), the
help `lowres train` shows and the option group of the method's own settings, declared in its file.
Method files import nothing from the loop they plug into."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from lowres_sdk.errors import InputError

from . import baseline, crossres, dfd, fsrgan, highres, kd, mixed, sr, staged, transfer
from .options import NoOptions, OptionGroup


@dataclass(frozen=True)
class Method:
    module: ModuleType
    help: str
    options: type[OptionGroup] = NoOptions
    any_resolution: bool = False  # trains at the image size for queries of any resolution (resolution ignored)

    @property
    def own_procedure(self) -> bool:
        """True for methods with their own `fit` (feature-level work), not the epoch loop's `make_task`."""
        return hasattr(self.module, "fit")


METHODS: dict[str, Method] = {
    "baseline": Method(baseline, "train on degraded input, cross-entropy only (the low-resolution baseline)"),
    "highres": Method(highres, "the HR teacher: the same on undegraded input", any_resolution=True),
    "dfd": Method(dfd, "deep feature distillation from --teacher (paper 002)", dfd.DFDOptions),
    "kd": Method(kd, "logit distillation from --teacher (Hinton; --kd-alpha, --kd-tau)", kd.KDOptions),
    "staged": Method(staged, "fine-tune the HR run --teacher on LR input (paper 001)", staged.StagedOptions),
    "mixed": Method(mixed, "one net trained on HR and LR input at once (paper 001's baseline)", mixed.MixedOptions),
    "transfer": Method(transfer, "k-means + transfer net + SVM on the frozen --teacher's features (paper 000)",
                       transfer.TransferOptions),
    "sr": Method(sr, "an SR net in front of the frozen HR classifier --teacher", sr.SROptions),
    "crossres": Method(crossres, "cross-resolution fine-tuning for retrieval (paper 003; pass --init HR_RUN)",
                       crossres.CrossResOptions, any_resolution=True),
    "fsrgan": Method(fsrgan, "feature super-resolution GAN on the frozen --teacher's features (paper 004)",
                     fsrgan.FSRGANOptions, any_resolution=True),
}

# Old names, still accepted: `lr` read as the learning rate (`Recipe.lr`), and `hr` is its pair.
ALIASES = {"lr": "baseline", "hr": "highres"}


def canonical(name: str) -> str:
    """The table's name of method ``name`` (an alias is accepted); InputError for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; expected one of {', '.join(METHODS)} "
                         f"(or {', '.join(f'{a} for {m}' for a, m in ALIASES.items())})")
    return name
