"""The optimizer's knobs: airbench94's triangular schedule and BatchNorm parameters at a scaled lr."""
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lowres_sdk import InputError
from lowres_sdk.training.backbones import build_model
from lowres_sdk.training.loop import lr_at, param_groups, train

from conftest import tiny_recipe


def test_triangle_rises_from_a_fifth_to_the_peak_at_20_percent_then_falls_to_zero(tiny_data):
    recipe = tiny_recipe(tiny_data, lr=0.5, schedule="triangle", warmup_epochs=3.0)  # triangle has no warm-up of its own
    total = 1000
    lrs = [lr_at(recipe, s, total, 10) for s in range(total)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[100] == pytest.approx(0.3)
    assert max(lrs) == pytest.approx(0.5) and lrs.index(max(lrs)) == 200
    assert lrs[600] == pytest.approx(0.25)
    assert 0 < lrs[-1] < 0.001
    assert all(a < b for a, b in zip(lrs[:200], lrs[1:201])) and all(a > b for a, b in zip(lrs[200:-1], lrs[201:]))


def test_batchnorm_parameters_get_their_own_scaled_group(tiny_data):
    net = build_model("airbench", 3, 16, 0.5)  # BatchNorm scales frozen: only the shifts learn
    groups = param_groups(net, tiny_recipe(tiny_data, arch="airbench", norm_lr_scale=64.0, weight_decay=0.0128))
    shifts = [m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    other, norm = groups
    assert {id(p) for p in norm["params"]} == {id(p) for p in shifts}
    assert (norm["lr_scale"], norm["weight_decay"]) == (64.0, pytest.approx(0.0002))
    assert (other["lr_scale"], other["weight_decay"]) == (1.0, 0.0128)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(other["params"]) + len(norm["params"]) == len(trainable)
    plain = param_groups(net, tiny_recipe(tiny_data, arch="airbench"))
    assert len(plain) == 1 and [id(p) for p in plain[0]["params"]] == [id(p) for p in trainable]


def test_a_scaled_run_moves_batchnorm_faster_and_resumes_exactly(tiny_data, tmp_path):
    def shift_change(run):
        w = load_file(run / "checkpoint.safetensors")
        return sum(w[k].abs().sum().item() for k in w if k.startswith("model.") and k.endswith("bn1.bias"))

    kw = dict(epochs=2, schedule="triangle", momentum=0.85)
    train(tiny_recipe(tiny_data, **kw), tmp_path / "plain", progress=False)
    scaled = tiny_recipe(tiny_data, norm_lr_scale=16.0, **kw)
    train(scaled, tmp_path / "full", progress=False)
    train(scaled, tmp_path / "part", progress=False, _stop_after=1)
    train(scaled, tmp_path / "part", progress=False, resume=True)
    a, b = load_file(tmp_path / "full" / "checkpoint.safetensors"), load_file(tmp_path / "part" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert shift_change(tmp_path / "full") > 3 * shift_change(tmp_path / "plain")  # the shifts start at 0


def test_a_non_positive_norm_lr_scale_is_refused(tiny_data):
    with pytest.raises(InputError, match="norm_lr_scale"):
        tiny_recipe(tiny_data, norm_lr_scale=0.0)
