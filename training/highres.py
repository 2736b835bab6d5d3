"""`highres`: the high-resolution teacher -- the same loss on undegraded inputs (resolution = image
size, which `Recipe` enforces for this method)."""
from lowres_sdk.errors import InputError

from .task import Student, Task


def make_task(recipe, backbone, train_set) -> Task:
    if recipe.resolution != recipe.image_size:  # Recipe sets it so for highres; a hand-made recipe may not
        raise InputError(f"highres trains at the image size: resolution {recipe.resolution} != image_size "
                         f"{recipe.image_size}")
    return Task(recipe, Student(backbone))
