"""Issue 7's training methods: crossres (paper 003) sampling and input, FSR-GAN (paper 004) losses,
its resumable run, and the chained export backbone -> G -> L2 as one graph."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from lowres_sdk import CheckpointError, InputError
from lowres_sdk.training.chain import Chained, FSRGenerator
from lowres_sdk.training.checkpoint import load_checkpoint, load_model
from lowres_sdk.training.crossres import CrossResTask, sample_resolutions
from lowres_sdk.training.degrade import ModelInput, resize
from lowres_sdk.training.fsrgan import FSRCritic, critic_loss, generator_loss
from lowres_sdk.training.task import Student
from lowres_sdk.training.loop import train
from lowres_sdk.training.backbones import build_model

from conftest import tiny_recipe


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_crossres_sampler_respects_p_and_the_range(p):
    res = sample_resolutions(200_000, p, 8, 12, torch.Generator().manual_seed(0))
    degraded = res[res > 0]
    assert abs(len(degraded) / len(res) - p) < 0.005
    if p:
        assert set(degraded.unique().tolist()) == {8, 9, 10, 11, 12}  # both ends included, nothing outside
        counts = torch.bincount(degraded)[8:].float() / len(degraded)
        assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.01)  # uniform


def test_crossres_input_is_the_deployed_pipeline_on_the_sampled_resolution(tiny_data):
    recipe = tiny_recipe(tiny_data, method="crossres", crossres_p=0.5, query_min=4, query_max=6)
    assert recipe.resolution == recipe.image_size == 16  # one model for every query resolution
    task = CrossResTask(recipe, Student(build_model("resnet20", 3, 16, 0.5)))
    hr = torch.rand(64, 3, 16, 16)
    x = task.student_input(hr, torch.Generator().manual_seed(5))
    res = sample_resolutions(64, 0.5, 4, 6, torch.Generator().manual_seed(5))
    pre = ModelInput(recipe.spec)
    for i, r in enumerate(res.tolist()):
        expected = pre(hr[i:i + 1] if r == 0 else resize(hr[i:i + 1], r))
        assert torch.allclose(x[i:i + 1], expected, atol=1e-6), (i, r)
    assert 0 < (res == 0).sum() < 64


def test_crossres_fine_tunes_from_init_and_refuses_bad_ranges(tiny_data, tiny_run, tmp_path):
    meta = train(tiny_recipe(tiny_data, method="crossres", query_min=4, query_max=12, epochs=1, init=str(tiny_run)),
                 tmp_path / "cr", progress=False)
    assert meta["spec"]["resolution"] == meta["spec"]["size"] == 16
    with pytest.raises(InputError, match="query_min <= query_max"):
        train(tiny_recipe(tiny_data, method="crossres", query_min=12, query_max=4), tmp_path / "bad", progress=False)


def test_fsr_losses_equal_the_formulas_on_hand_made_tensors():
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, -2.0]]))
        critic.bias.fill_(0.5)
    fake = torch.tensor([[1.0, 2.0], [3.0, 0.0]])   # D = -2.5, 3.5 -> mean 0.5
    real = torch.tensor([[0.0, 0.0], [1.0, 1.0]])   # D = 0.5, -0.5 -> mean 0.0
    # ||fake - real||^2 = 1 + 4 = 5 and 4 + 1 = 5 -> mean 5
    assert generator_loss(critic, fake, real).item() == pytest.approx(-0.5 + 5.0)
    assert critic_loss(critic, fake, real).item() == pytest.approx(0.5 - 0.0)


def test_fsr_generator_and_critic_fit_the_feature_size():
    for dim in (64, 32, 10):
        g, d = FSRGenerator(dim), FSRCritic(FSRGenerator(dim).side, dim)
        f = torch.randn(5, dim)
        assert torch.equal(g.eval()(f), f)  # zero-initialised last layer: starts as the identity
        assert d(f).shape == (5,)
    assert FSRGenerator(64).side == 8  # ResNet-20's 64-d feature as an 8 x 8 map


@pytest.fixture(scope="module")
def hr_run(tiny_teacher):
    return tiny_teacher  # the session's one HR teacher (conftest)


def fsr_recipe(tiny_data, hr_run, **kw):
    return tiny_recipe(tiny_data, method="fsrgan", teacher=str(hr_run), query_min=4, query_max=8, epochs=3,
                       batch_size=32, fsr_views=2, **kw)


@pytest.fixture(scope="module")
def fsr_run(tiny_data, hr_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("fsr") / "fsr"
    train(fsr_recipe(tiny_data, hr_run), path, progress=False)
    return path


def test_fsrgan_run_learns_towards_hr_features_and_keeps_the_extractor_frozen(fsr_run, hr_run):
    model, spec, meta = load_model(fsr_run)
    assert isinstance(model, Chained) and isinstance(model.neck, FSRGenerator)
    assert meta["chain"]["neck"] == {"kind": "fsr", "args": {"dim": 32}} and meta["epoch"] == 3
    h = meta["history"][-1]
    assert h["test_mse"] < h["test_mse_raw"]  # G moved 4 px features closer to the HR ones
    teacher, teacher_spec, _ = load_model(hr_run)
    assert spec == teacher_spec
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert any(k.startswith("critic.") for k in load_file(fsr_run / "checkpoint.safetensors"))


def test_fsrgan_resume_ends_with_the_same_weights(tiny_data, hr_run, fsr_run, tmp_path):
    part = tmp_path / "part"
    train(fsr_recipe(tiny_data, hr_run), part, progress=False, _stop_after=1)
    assert load_checkpoint(part)[1]["epoch"] == 1
    train(fsr_recipe(tiny_data, hr_run), part, progress=False, resume=True)
    a, b = load_file(fsr_run / "checkpoint.safetensors"), load_file(part / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(fsr_recipe(tiny_data, hr_run), part, progress=False)
    with pytest.raises(InputError, match="--teacher"):
        train(tiny_recipe(tiny_data, method="fsrgan", query_min=4, query_max=8), tmp_path / "none", progress=False)


def test_chained_export_is_one_graph_backbone_generator_l2(fsr_run, hr_run, tmp_path):
    from lowres_sdk.export.exporter import export_run

    bundle = export_run(fsr_run, tmp_path / "bundle", task="embed", eval_per_class=4, log=lambda *a: None)
    assert bundle.meta["parity"]["max_abs_diff"] <= 1e-4 and bundle.meta["embedding_dim"] == 32
    model, spec, _ = load_model(fsr_run)
    teacher, _, _ = load_model(hr_run)
    crops = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)  # 8 px BGR queries
    got = ort.InferenceSession(str(bundle.path / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": crops})[0]
    x = ModelInput(spec)(torch.from_numpy(crops[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        f = teacher.forward_features(x)
        chained = F.normalize(model.neck(f), dim=1).numpy()
        raw = F.normalize(f, dim=1).numpy()
    assert np.abs(got - chained).max() <= 1e-4
    assert np.abs(got - raw).max() > 1e-3  # G is in the graph, not just the backbone


def test_fsr_queries_search_a_gallery_indexed_by_the_hr_extractor(fsr_run, hr_run, tiny_data, tiny_run, tmp_path):
    from lowres_sdk import BundleError, Embedder, Gallery
    from lowres_sdk.export.exporter import export_run

    quiet = dict(task="embed", eval_per_class=4, log=lambda *a: None)
    hr_bundle = export_run(hr_run, tmp_path / "hr", **quiet)
    fsr_bundle = export_run(fsr_run, tmp_path / "fsr", **quiet)
    other = export_run(tiny_run, tmp_path / "other", **quiet)
    assert fsr_bundle.embedding_space == hr_bundle.embedding_space != other.embedding_space
    assert fsr_bundle.fingerprint != hr_bundle.fingerprint  # different graphs, same feature space
    gallery_crops = list(np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    gallery = Gallery.for_embedder(Embedder(hr_bundle.path))
    gallery.add(Embedder(hr_bundle.path)(gallery_crops), [f"g{i}" for i in range(5)])
    gallery.save(tmp_path / "gallery")
    loaded = Gallery.load(tmp_path / "gallery", embedder=Embedder(fsr_bundle.path))  # accepted
    assert len(loaded.search(Embedder(fsr_bundle.path)(gallery_crops[:2]), top_k=3).ids[0]) == 3
    with pytest.raises(BundleError, match="re-index"):
        Gallery.load(tmp_path / "gallery", embedder=Embedder(other.path))
