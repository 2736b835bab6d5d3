"""Classify image files (or, with no arguments, the demo crops) with a bundle.

    python examples/classify_crops.py [--bundle BUNDLE] [IMAGE ...]
"""
import argparse

import cv2

from lowres_sdk import Classifier
from lowres_sdk.demo import demo_crops

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("images", nargs="*")
parser.add_argument("--bundle", default=None, help="default: the model shipped in the package")
args = parser.parse_args()

clf = Classifier(args.bundle)
if args.images:
    names, crops = args.images, [cv2.imread(p) for p in args.images]
else:
    demo = demo_crops()
    names, crops = [c.name for c in demo], [c.image for c in demo]
pred = clf(crops)  # uint8 BGR crops of any size, in one call
for name, label, score in zip(names, pred.labels, pred.scores):
    print(f"{name}: {label} ({score:.2f})")
