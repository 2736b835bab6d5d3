"""Every data source by name: the one table `lowres sources` and the scorecard read."""
from __future__ import annotations

from .highway_webcam import HIGHWAY_WEBCAM
from .mot_people import ADL_RUNDLE_6_PEOPLE, MOT17_MINI_PEOPLE
from .penn_fudan import PENN_FUDAN
from .sequences import GRAM, NGSIM, PETS09, TUD_CAMPUS
from .shared_archives import CIFAR10, PEDESTRIANS_MIT, PERSON_REID, STREET_BACKGROUND

SOURCES = {s.name: s for s in (CIFAR10, PERSON_REID, PEDESTRIANS_MIT, STREET_BACKGROUND,
                               PETS09, TUD_CAMPUS, NGSIM, GRAM, PENN_FUDAN, HIGHWAY_WEBCAM,
                               MOT17_MINI_PEOPLE, ADL_RUNDLE_6_PEOPLE)}
