import pytest
import torch

from lowres_sdk import CheckpointError, InputError
from lowres_sdk.training.data import read_image_folder
from lowres_sdk.training.dfd import DFDTask, distillation_loss, make_task
from lowres_sdk.training.loop import train

from conftest import tiny_recipe


def test_distillation_loss_matches_formula_on_hand_made_tensors():
    f_s = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    f_t = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    # sample 1: 1/2 (0 + 4 + 4) = 4; sample 2: 1/2 (1 + 1 + 1) = 1.5; mean = 2.75
    assert distillation_loss(f_s, f_t).item() == pytest.approx(2.75)


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return tiny_teacher  # the session's one HR teacher (conftest)


def test_dfd_total_loss_is_ce_plus_lambda_half_squared_distance(tiny_data, teacher):
    train_set = read_image_folder(tiny_data / "train", 16)
    recipe = tiny_recipe(tiny_data, method="dfd", teacher=str(teacher), dfd_lambda=3.0)
    task = make_task(recipe, __import__("lowres_sdk.training.backbones", fromlist=["x"]).build_model("resnet20", 3, 16, 0.5),
                     train_set)
    assert isinstance(task, DFDTask)
    # Initialised from the teacher, as the paper fine-tunes the pre-trained model.
    for (k, a), b in zip(task.student.backbone.state_dict().items(), task.teacher.state_dict().values()):
        assert torch.equal(a, b), k
    hr = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    task.eval()
    loss, logits = task.loss(task.student, hr, y, torch.arange(6), torch.Generator().manual_seed(1))
    logits2, f_s = task.student(task.student_input(hr, torch.Generator().manual_seed(1)))
    f_t = task.teacher.forward_features(task.teacher_input(hr))
    expected = torch.nn.functional.cross_entropy(logits2, y) + 3.0 * 0.5 * ((f_s - f_t) ** 2).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not any(p.requires_grad for p in task.teacher.parameters())


def test_projection_when_widths_differ(tiny_data, teacher):
    from lowres_sdk.training.backbones import build_model

    train_set = read_image_folder(tiny_data / "train", 16)
    task = make_task(tiny_recipe(tiny_data, method="dfd", teacher=str(teacher), arch="mobilenet", width=1.0),
                     build_model("mobilenet", 3, 16), train_set)
    assert isinstance(task.student.adapter, torch.nn.Linear)
    assert task.student.adapter.weight.shape == (task.teacher.num_features, 256)
    _, f = task.student(torch.randn(2, 3, 16, 16))
    assert f.shape == (2, task.teacher.num_features)


def test_cached_teacher_features_need_no_augmentation(tiny_data, teacher, tmp_path):
    with pytest.raises(InputError, match="augment"):
        train(tiny_recipe(tiny_data, method="dfd", teacher=str(teacher), cache_teacher=True), tmp_path / "a", progress=False)
    meta = train(tiny_recipe(tiny_data, method="dfd", teacher=str(teacher), cache_teacher=True, augment=False, epochs=1),
                 tmp_path / "b", progress=False)
    assert meta["epoch"] == 1


def test_wrong_teachers_are_refused(tiny_data, teacher, tmp_path):
    with pytest.raises(InputError, match="needs a teacher"):
        train(tiny_recipe(tiny_data, method="dfd"), tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match="teacher: run not found"):
        train(tiny_recipe(tiny_data, method="dfd", teacher=str(tmp_path / "nope")), tmp_path / "b", progress=False)
    lr_run = tmp_path / "lr"
    train(tiny_recipe(tiny_data, method="lr", epochs=1), lr_run, progress=False)
    with pytest.raises(CheckpointError, match="needs an HR teacher"):
        train(tiny_recipe(tiny_data, method="dfd", teacher=str(lr_run)), tmp_path / "c", progress=False)
