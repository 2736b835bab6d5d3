"""`hr`: the high-resolution teacher -- the same loss on undegraded inputs (resolution = image size,
which `Recipe` enforces for this method)."""
from .loop import Student, Task


def make_task(recipe, backbone, train_set) -> Task:
    assert recipe.resolution == recipe.image_size
    return Task(recipe, Student(backbone))
