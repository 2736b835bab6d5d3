"""Train an HR teacher and a DFD student at 8 px on an ImageFolder dataset, then export the student.

    python examples/train_and_export.py DATA OUT [--epochs N] [--image-size 32]
"""
import argparse
from pathlib import Path

from lowres_sdk import Classifier
from lowres_sdk.export.exporter import export_run
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.loop import train

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("data", help="folder with train/<class>/ and test/<class>/, or a .tar.gz of one")
parser.add_argument("out", type=Path)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--image-size", type=int, default=32)
args = parser.parse_args()

common = dict(data=args.data, arch="resnet20", image_size=args.image_size, epochs=args.epochs)
train(Recipe(method="hr", **common), args.out / "teacher")
train(Recipe(method="dfd", resolution=8, teacher=str(args.out / "teacher"), **common), args.out / "student")
bundle = export_run(args.out / "student", args.out / "bundle")
print("exported", bundle.path, "labels:", Classifier(bundle.path).labels, "metrics:", bundle.meta["metrics"])
