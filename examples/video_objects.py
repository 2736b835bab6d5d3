"""Print the objects found in a video, frame by frame, with the Python API.

    python examples/video_objects.py VIDEO [--bundle BUNDLE] [--max-frames N]
"""
import argparse
from collections import Counter

from lowres_sdk import Classifier
from lowres_sdk.video.regions import MotionCrops
from lowres_sdk.video import run

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("video")
parser.add_argument("--bundle", default=None)
parser.add_argument("--max-frames", type=int, default=None)
args = parser.parse_args()

labels = Counter()
for result in run(args.video, Classifier(args.bundle), crops=MotionCrops(), max_frames=args.max_frames):
    labels.update(d.label for d in result.objects)
    if result.objects:
        print(result.index, [(d.track, d.label, round(d.score, 2), d.box) for d in result.objects])
print("labels over all frames:", dict(labels))
