"""The other seed methods: staged, mixed, transfer and sr -- each procedure on hand-made tensors,
a short training on tiny data, and the chained export of the ones that add stages."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from lowres_sdk import CheckpointError, InputError
from lowres_sdk.training.backbones import build_model
from lowres_sdk.training.chain import ESPCN, Chained
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.data import read_image_folder
from lowres_sdk.training.data import fraction_per_class
from lowres_sdk.training.loop import train
from lowres_sdk.training.mixed import MixedTask, make_task as make_mixed
from lowres_sdk.training.staged import freeze
from lowres_sdk.training.transfer import linear_svm, pseudo_labels

from conftest import tiny_recipe


@pytest.fixture(scope="module")
def hr_run(tiny_teacher):
    return tiny_teacher  # the session's one HR teacher (conftest)


# --- staged --------------------------------------------------------------------------------------

def test_staged_starts_from_stage_1_and_frozen_layers_stay_frozen(tiny_data, hr_run, tmp_path):
    run = tmp_path / "staged"
    train(tiny_recipe(tiny_data, method="staged", teacher=str(hr_run), trainable="layers.8,fc", epochs=2), run,
          progress=False)
    before, after = load_file(hr_run / "checkpoint.safetensors"), load_file(run / "checkpoint.safetensors")
    frozen = [k for k in after if k.startswith("model.backbone.") and not k.startswith(("model.backbone.layers.8.",
                                                                                          "model.backbone.fc."))]
    assert any("running_mean" in k for k in frozen)  # BN statistics are part of what must not move
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    for k in ("model.backbone.layers.8.conv1.weight", "model.backbone.layers.8.bn1.running_mean", "model.backbone.fc.weight"):
        assert not torch.equal(before[k], after[k]), k


def test_staged_all_trainable_fine_tunes_every_layer(tiny_data, hr_run, tmp_path):
    run = tmp_path / "staged"
    train(tiny_recipe(tiny_data, method="staged", teacher=str(hr_run), epochs=1), run, progress=False)
    before, after = load_file(hr_run / "checkpoint.safetensors"), load_file(run / "checkpoint.safetensors")
    assert not torch.equal(before["model.backbone.stem.0.weight"], after["model.backbone.stem.0.weight"])


def test_freeze_names_the_parameters_it_keeps_and_refuses_unknown_prefixes():
    model = build_model("resnet20", 3, 16, 0.5)
    assert freeze(model, "fc") == ["fc.weight", "fc.bias"]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    with pytest.raises(InputError, match="no parameters under"):
        freeze(model, "layer3")  # a torchvision name: ours are layers.N


def test_staged_refuses_a_missing_or_mismatched_stage_1(tiny_data, hr_run, tmp_path):
    with pytest.raises(InputError, match="stage-1 HR run"):
        train(tiny_recipe(tiny_data, method="staged"), tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match="fine-tunes the stage-1 network itself"):
        train(tiny_recipe(tiny_data, method="staged", teacher=str(hr_run), arch="resnet32"), tmp_path / "b", progress=False)


# --- mixed ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_mixed_degrades_the_requested_share_of_samples(tiny_data, ratio):
    recipe = tiny_recipe(tiny_data, method="mixed", mixed_ratio=ratio)
    task = make_mixed(recipe, build_model("resnet20", 3, 16, 0.5), read_image_folder(tiny_data / "train", 16))
    assert isinstance(task, MixedTask)
    hr = torch.rand(4000, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x = task.student_input(hr, torch.Generator().manual_seed(1))
    kept_hr = torch.isclose(x, task.normalize(hr), atol=1e-6).flatten(1).all(1)
    assert abs((~kept_hr).float().mean().item() - ratio) < 0.03
    lr = task.normalize(task.degrade(hr))  # the degraded ones are exactly the LR version
    assert torch.allclose(x[~kept_hr], lr[~kept_hr], atol=1e-6)


def test_mixed_needs_one_input_size_for_both_resolutions(tiny_data):
    with pytest.raises(InputError, match="upsampled"):
        make_mixed(tiny_recipe(tiny_data, method="mixed", input_mode="native"), build_model("resnet20", 3, 8, 0.5),
                   read_image_folder(tiny_data / "train", 16))


def test_train_fraction_keeps_the_first_share_of_every_class(tiny_data):
    data = read_image_folder(tiny_data / "train", 16)
    small = fraction_per_class(data, 0.25)
    assert np.bincount(small.labels).tolist() == [8, 8, 8]
    assert np.array_equal(small.images[:8], data.images[data.labels == 0][:8])


# --- transfer ------------------------------------------------------------------------------------

def test_pseudo_labels_are_the_nearest_hr_centroid():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    hr = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in centres]).astype(np.float32)
    lr = np.array([[1.0, 1.0], [8.0, 1.0], [2.0, 7.0], [6.0, 6.5]], dtype=np.float32)
    labels, kmeans = pseudo_labels(hr, lr, 3, seed=0)
    assert type(kmeans).__module__.startswith("sklearn.cluster")
    dist = ((lr[:, None] - kmeans.cluster_centers_[None]) ** 2).sum(-1)
    assert labels.tolist() == dist.argmin(1).tolist()
    # by hand: the cluster around (0,0), around (10,0), around (0,10), and (6, 6.5) is nearer (0, 10)
    near = [int(np.argmin(((kmeans.cluster_centers_ - c) ** 2).sum(1))) for c in centres]
    assert labels.tolist() == [near[0], near[1], near[2], near[2]]


def test_svm_head_with_folded_standardisation_equals_the_scikit_learn_pipeline():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, [1.0, 5.0, 0.2], (300, 3))
    y = (x[:, 0] + 0.2 * x[:, 1] > 4).astype(int) + (x[:, 2] > 3.1)
    w, b, pipe = linear_svm(x, y, seed=0)
    assert type(pipe[-1]).__name__ == "LinearSVC"
    np.testing.assert_allclose(x @ w.T + b, pipe.decision_function(x), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def transfer_run(tiny_data, hr_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("transfer") / "run"
    train(tiny_recipe(tiny_data, method="transfer", teacher=str(hr_run), clusters=6, transfer_hidden=32, epochs=40,
                      batch_size=32, lr=0.01), run, progress=False)
    return run


def test_transfer_builds_backbone_transfer_net_and_svm_as_one_model(tiny_data, transfer_run):
    model, spec, meta = load_model(transfer_run)
    assert isinstance(model, Chained) and model.num_features == 6
    assert meta["chain"]["neck"] == {"kind": "mlp", "args": {"dims": [32, 32, 6]}}
    m = meta["metrics"]
    assert {"svm_transfer_top1", "svm_lr_features_top1", "svm_hr_features_top1"} <= set(m)
    # the model's own prediction is the SVM's: its test accuracy is the one reported
    from lowres_sdk.training.evaluate import predict
    test = read_image_folder(tiny_data / "test", 16)
    top1 = 100 * (predict(model, spec, test.images).argmax(1) == test.labels).mean()
    assert top1 == pytest.approx(m["svm_transfer_top1"], abs=0.01)


def test_transfer_resume_returns_the_finished_run_and_overwrite_is_refused(tiny_data, hr_run, transfer_run):
    recipe = tiny_recipe(tiny_data, method="transfer", teacher=str(hr_run), clusters=6, transfer_hidden=32, epochs=40,
                         batch_size=32, lr=0.01)
    assert train(recipe, transfer_run, resume=True, progress=False)["metrics"]
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(recipe, transfer_run, progress=False)


def test_transfer_needs_an_extractor_and_sensible_k(tiny_data, hr_run, tmp_path):
    with pytest.raises(InputError, match="--teacher"):
        train(tiny_recipe(tiny_data, method="transfer"), tmp_path / "a", progress=False)
    with pytest.raises(InputError, match="clusters"):
        train(tiny_recipe(tiny_data, method="transfer", teacher=str(hr_run), clusters=10_000), tmp_path / "b", progress=False)


# --- sr ------------------------------------------------------------------------------------------

def test_espcn_starts_as_bicubic_and_upscales_by_its_factor():
    sr = ESPCN(scale=4)
    x = torch.rand(2, 3, 8, 8)
    y = sr(x)
    assert y.shape == (2, 3, 32, 32)
    assert torch.allclose(y, F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False))


def test_sr_trains_only_the_sr_net_and_lowers_its_loss(tiny_data, hr_run, tmp_path):
    run = tmp_path / "sr"
    meta = train(tiny_recipe(tiny_data, method="sr", teacher=str(hr_run), input_mode="native", epochs=3, lr=0.05),
                 run, progress=False)
    assert meta["chain"]["pre"] == {"kind": "espcn", "args": {"scale": 2, "width": 64}}
    assert meta["history"][-1]["train_loss"] < meta["history"][0]["train_loss"]
    before, after = load_file(hr_run / "checkpoint.safetensors"), load_file(run / "checkpoint.safetensors")
    for k, v in before.items():
        if k.startswith("model.backbone."):
            assert torch.equal(v, after["model.backbone.backbone." + k[len("model.backbone."):]]), k
    assert not torch.equal(after["model.backbone.pre.body.4.weight"], torch.zeros_like(after["model.backbone.pre.body.4.weight"]))
    model, spec, _ = load_model(run)
    assert (spec.size, spec.resolution) == (8, 8) and model(torch.rand(1, 3, 8, 8)).shape == (1, 3)


# --- export of chained models --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["transfer", "sr"])
def test_chained_models_export_as_one_graph_with_parity(tiny_data, hr_run, transfer_run, tmp_path, method):
    pytest.importorskip("onnxscript")
    from lowres_sdk import Classifier
    from lowres_sdk.export.exporter import export_run

    run = transfer_run
    if method == "sr":
        run = tmp_path / "sr"
        train(tiny_recipe(tiny_data, method="sr", teacher=str(hr_run), input_mode="native", epochs=1), run, progress=False)
    bundle = export_run(run, tmp_path / "bundle", eval_per_class=12, log=lambda *a: None)
    assert bundle.meta["parity"]["max_abs_diff"] <= 1e-4
    model, spec, _ = load_model(run)
    crops = np.random.default_rng(0).integers(0, 256, (5, 20, 12, 3), dtype=np.uint8)
    from lowres_sdk.export.graph import FusedModel
    expected = FusedModel(model, spec)(torch.from_numpy(crops)).detach().numpy()
    np.testing.assert_allclose(Classifier(tmp_path / "bundle")(list(crops)).probs, expected, atol=1e-4)


@pytest.mark.parametrize("method,extra", [
    ("sr", ["--input-mode", "native", "--epochs", "2"]),
    ("transfer", ["--clusters", "6", "--transfer-hidden", "16", "--epochs", "20", "--lr", "0.01"]),
])
def test_methods_run_under_torchrun(tiny_data, hr_run, tmp_path, method, extra):
    import os
    import subprocess
    import sys

    args = ["train", "--method", method, "--data", str(tiny_data), "--width", "0.5", "--image-size", "16",
            "--resolution", "8", "--batch-size", "32", "--teacher", str(hr_run), "--out", str(tmp_path / "run"), *extra]
    # --standalone: the rendezvous takes a free port (a fixed one fails when another run holds it)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "lowres_sdk.cli", *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("epochs, test top-1") == 1  # rank 0 reports, rank 1 waited for it
    model, _, meta = load_model(tmp_path / "run")
    assert isinstance(model, Chained)
    if method == "sr":  # gradients reached the SR net through DDP: it fits its HR targets better than at init
        trained, fresh = _sr_error(tmp_path / "run", tiny_data, hr_run)
        assert trained < fresh, (trained, fresh)
    else:  # the SVM on the DDP-trained transfer net's outputs: well above chance (3 classes)
        assert meta["metrics"]["svm_transfer_top1"] > 60


def _sr_error(run, data, hr_run) -> tuple[float, float]:
    """The pixel MSE (what the sr loss measures) on the test images of ``run``'s SR stage and of the
    same stage as initialised (plain bicubic: its last layer starts at zero)."""
    from lowres_sdk.training.chain import stage
    from lowres_sdk.training.data import to_float
    from lowres_sdk.training.degrade import ModelInput

    model, spec, meta = load_model(run)
    fresh = stage(meta["chain"]["pre"]["kind"], **meta["chain"]["pre"]["args"])[0].eval()
    assert any(not torch.equal(a, b) for a, b in zip(model.pre.state_dict().values(), fresh.state_dict().values()))
    images = to_float(read_image_folder(data / "test", 16).images)
    with torch.no_grad():
        lr, target = ModelInput(spec)(images), ModelInput(load_model(hr_run)[1])(images)
        return F.mse_loss(model.pre.eval()(lr), target).item(), F.mse_loss(fresh(lr), target).item()


def test_paired_transfer_labels_are_each_lr_image_s_own_hr_cluster(tiny_data, hr_run, tmp_path, monkeypatch):
    from lowres_sdk.training import transfer

    seen = {}
    real = transfer.train_transfer_net

    def spy(lr_features, labels, *args, **kw):
        seen["labels"], seen["lr_features"] = labels, lr_features
        return real(lr_features, labels, *args, **kw)

    monkeypatch.setattr(transfer, "train_transfer_net", spy)
    recipe = tiny_recipe(tiny_data, method="transfer", teacher=str(hr_run), clusters=5, transfer_hidden=16, epochs=2,
                         batch_size=32, lr=0.01, transfer_labels="paired")
    train(recipe, tmp_path / "paired", progress=False)
    model, spec, _ = load_model(hr_run)
    train_set = read_image_folder(tiny_data / "train", 16)
    _, kmeans = pseudo_labels(transfer.features(model, spec, train_set.images, None),
                              transfer.features(model, recipe.spec, train_set.images, 8), 5, recipe.seed)
    assert seen["labels"].tolist() == kmeans.predict(transfer.features(model, spec, train_set.images, None)).tolist()
    # LR features come through the run's own pre-processing (down to 8 px, bicubic back up), as deployed
    deployed = transfer.features(model, recipe.spec, train_set.images, 8)
    assert np.allclose(seen["lr_features"], deployed, atol=1e-5)
    assert not np.allclose(deployed, transfer.features(model, spec, train_set.images, 8), atol=1e-3)
    with pytest.raises(InputError, match="transfer_labels"):
        train(tiny_recipe(tiny_data, method="transfer", teacher=str(hr_run), transfer_labels="oracle"), tmp_path / "x",
              progress=False)


def _teacher_inputs(task, hr) -> list:
    seen = []
    task.teacher.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    task.loss(task.student, hr, torch.zeros(len(hr), dtype=torch.long), torch.arange(len(hr)), torch.Generator().manual_seed(0))
    return seen


def test_kd_same_view_gives_the_teacher_the_students_crop(tiny_data, hr_run):
    from lowres_sdk.training.loop import build_task

    train_set = read_image_folder(tiny_data / "train", 16)
    hr = torch.rand(4, 3, 16, 16)
    fixed = torch.randn(4, 3, 16, 16)
    for same in (True, False):
        task = build_task(tiny_recipe(tiny_data, method="kd", teacher=str(hr_run), kd_same_view=same), train_set)
        task.student_input = lambda hr, generator, index=None: fixed  # the student's (degraded) crop
        (seen,) = _teacher_inputs(task, hr)
        assert torch.equal(seen, fixed) == same
        if not same:
            assert torch.allclose(seen, task.teacher_input(hr))  # the HR image through the teacher's own input
    with pytest.raises(InputError, match="kd_same_view"):  # an 8 px native student cannot share the 16 px teacher's crop
        build_task(tiny_recipe(tiny_data, method="kd", teacher=str(hr_run), kd_same_view=True, input_mode="native"), train_set)


def test_kd_teachers_each_see_their_view_and_are_frozen(tiny_data, hr_run):
    from lowres_sdk.training.loop import build_task

    train_set = read_image_folder(tiny_data / "train", 16)
    hr = torch.rand(4, 3, 16, 16)
    fixed = torch.randn(4, 3, 16, 16)
    for same in (True, False):
        task = build_task(tiny_recipe(tiny_data, method="kd", teacher=str(hr_run), kd_teachers=f"{hr_run},{hr_run}",
                                      kd_same_view=same), train_set)
        assert len(task.extra) == 2 and not any(p.requires_grad for p in task.extra.parameters())
        task.train()
        assert not any(m.training for m in task.extra.modules())
        task.student_input = lambda hr, generator, index=None: fixed
        seen = [[] for _ in task.extra]
        for teacher, log in zip(task.extra, seen):
            teacher.register_forward_pre_hook(lambda m, args, log=log: log.append(args[0]))
        _teacher_inputs(task, hr)
        for (x,), view in zip(seen, task.extra_inputs):
            assert torch.allclose(x, fixed if same else view(hr))
    with pytest.raises(CheckpointError, match="kd_teachers"):
        build_task(tiny_recipe(tiny_data, method="kd", teacher=str(hr_run), kd_teachers=str(tiny_data)), train_set)


def test_kd_targets_round_trip_and_refuse_other_data(tmp_path):
    from lowres_sdk.training.kd_targets import load_targets, save_targets

    labels, classes = np.array([0, 0, 1, 1]), ["a", "b"]
    logits = np.arange(8, dtype=np.float32).reshape(4, 2)
    path = tmp_path / "t.safetensors"
    save_targets(path, logits, labels, classes, {"teachers": ["x"]})
    assert torch.equal(load_targets(path, labels, classes), torch.from_numpy(logits))
    with pytest.raises(CheckpointError, match="another training split"):
        load_targets(path, labels[::-1], classes)  # another order
    with pytest.raises(CheckpointError, match="another training split"):
        load_targets(path, labels[:3], classes)  # a subset
    with pytest.raises(CheckpointError, match="classes"):
        load_targets(path, labels, ["a", "c"])
    with pytest.raises(CheckpointError, match="no file"):
        load_targets(tmp_path / "none.safetensors", labels, classes)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a targets file"):
        load_targets(tmp_path / "junk.safetensors", labels, classes)
    with pytest.raises(InputError, match="shape"):
        save_targets(tmp_path / "bad.safetensors", logits[:, :1], labels, classes, {})
    assert not (tmp_path / "bad.safetensors").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "junk.safetensors", "t.safetensors"]


def test_kd_from_targets_is_its_formula_on_each_samples_row(tiny_data, hr_run, tmp_path):
    from lowres_sdk.training.kd import kd_loss
    from lowres_sdk.training.kd_targets import save_targets
    from lowres_sdk.training.loop import build_task

    train_set = read_image_folder(tiny_data / "train", 16)
    logits = np.random.default_rng(0).normal(size=(len(train_set), len(train_set.classes))).astype(np.float32)
    path = tmp_path / "targets.safetensors"
    save_targets(path, logits, train_set.labels, train_set.classes, {})
    task = build_task(tiny_recipe(tiny_data, method="kd", kd_targets=str(path), kd_alpha=0.7, kd_tau=3.0,
                                  label_smoothing=0.1), train_set)
    index = torch.tensor([5, 0, 17, 3])
    fixed = torch.randn(4, 3, 8, 8)
    task.student_input = lambda hr, generator, index=None: fixed
    y = torch.from_numpy(train_set.labels[index.numpy()])
    loss, z = task.loss(task.student, torch.rand(4, 3, 16, 16), y, index, torch.Generator().manual_seed(0))
    expected = 0.3 * F.cross_entropy(z, y, label_smoothing=0.1) + 0.7 * kd_loss(z, torch.from_numpy(logits[index.numpy()]), 3.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert kd_loss(z, torch.from_numpy(logits[index.numpy()]), 3.0).item() != pytest.approx(
        kd_loss(z, torch.from_numpy(logits[:4]), 3.0).item(), rel=1e-3)  # the rows are the samples', not the first ones
    with pytest.raises(InputError, match="instead of --teacher"):
        build_task(tiny_recipe(tiny_data, method="kd", kd_targets=str(path), teacher=str(hr_run)), train_set)
    with pytest.raises(InputError, match="kd_targets is for --method kd"):
        tiny_recipe(tiny_data, method="lr", kd_targets=str(path))
    with pytest.raises(CheckpointError, match="another training split"):
        build_task(tiny_recipe(tiny_data, method="kd", kd_targets=str(path)), train_set.subset(np.arange(10)))


def test_lowres_kd_targets_writes_the_flip_averaged_logits_a_kd_run_trains_on(tiny_data, hr_run, tmp_path):
    from click.testing import CliRunner

    from lowres_sdk.cli import cli
    from lowres_sdk.training.degrade import ModelInput, camera_resize
    from lowres_sdk.training.kd_targets import load_targets

    out = tmp_path / "targets.safetensors"
    args = ["kd-targets", str(hr_run), str(hr_run), "--out", str(out), "--data", str(tiny_data), "--size", "8", "--kernels", "nearest"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "2 teacher(s) at 8 px, nearest + mirror" in r.output
    train_set = read_image_folder(tiny_data / "train", 16)
    logits = load_targets(out, train_set.labels, train_set.classes)
    net, spec, _ = load_model(hr_run)
    x = ModelInput(spec)(torch.from_numpy(np.stack([camera_resize(im, (8, 8), "nearest") for im in train_set.images[:5]]))
                         .permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        expected = (net(x) + net(x.flip(-1))) / 2  # the mean of two identical teachers is one's
    assert torch.allclose(logits[:5], expected, atol=1e-5)
    before = out.read_bytes()
    r = CliRunner().invoke(cli, args)  # nothing replaced unasked
    assert isinstance(r.exception, InputError) and "--overwrite" in str(r.exception) and out.read_bytes() == before
    r = CliRunner().invoke(cli, [*args[:-1], "bogus", "--overwrite"])
    assert isinstance(r.exception, InputError) and "bogus" in str(r.exception) and out.read_bytes() == before
    r = CliRunner().invoke(cli, [*args, "--test-top1", "--overwrite"])  # the teacher's accuracy on the test split too
    assert r.exit_code == 0, r.output
    test_set = read_image_folder(tiny_data / "test", 16)
    x = ModelInput(spec)(torch.from_numpy(np.stack([camera_resize(im, (8, 8), "nearest") for im in test_set.images]))
                         .permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        top1 = 100 * float(((net(x) + net(x.flip(-1))).argmax(1).numpy() == test_set.labels).mean())
    assert f"on the test split {top1:.2f} %" in r.output
    meta = train(tiny_recipe(tiny_data, method="kd", kd_targets=str(out), epochs=1), tmp_path / "student", progress=False)
    assert meta["epoch"] == 1 and meta["recipe"]["kd"]["targets"] == str(out)
