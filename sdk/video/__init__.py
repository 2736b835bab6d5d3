"""Video: frames in, tracked and named objects out.

``frames`` reads a file, camera or stream; a region provider (``parse_crops("street")``, or one from
``regions``, ``coco``, ``detector``, ``combined``) says where the objects are; ``tracking`` follows
them; ``pipeline.run`` / ``pipeline.process`` classify and write outputs; ``many.process_many`` runs
many streams at once (``sources``).
"""
from .frames import STREAM_PREFIXES, Frame, FrameReader, SourceStats, frames
from .outputs import AnnotatedVideo, JsonlSink, annotate
from .pipeline import IGNORED_LABELS, UNKNOWN, Detection, FrameResult, VideoRun, process, run
from .regions import parse_crops
from .many import ManyOptions, process_many
from .sources import StreamSpec, read_sources

__all__ = ["STREAM_PREFIXES", "IGNORED_LABELS", "UNKNOWN", "Frame", "FrameReader", "SourceStats", "frames",
           "AnnotatedVideo", "JsonlSink", "annotate", "Detection", "FrameResult", "VideoRun", "process", "run",
           "ManyOptions", "process_many", "StreamSpec", "read_sources", "parse_crops"]
