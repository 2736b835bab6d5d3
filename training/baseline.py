"""`baseline`: the low-resolution baseline -- train on degraded inputs with cross-entropy only."""
from .task import Student, Task


def make_task(recipe, backbone, train_set) -> Task:
    return Task(recipe, Student(backbone))
