"""A Triton Inference Server model repository for a bundle: an onnxruntime-backend model (the ONNX
as is, dynamic batching) and a python-backend model that runs the bundle like `Classifier`, so
encoded images and crops of any size batch together. Needs no torch: bundle + onnxruntime only.

    repo/lowres_<task>_onnx/config.pbtxt, 1/model.onnx, labels.txt
    repo/lowres_<task>/config.pbtxt, 1/model.py, 1/bundle/..., labels.txt
    repo/README.md
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lowres_sdk.bundle import Bundle, load_bundle
from lowres_sdk.errors import ExportError

README_TITLE = "# Triton model repository for"  # marks a folder this module may replace
KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}

# The python backend's model: kept here as text so the repository is self-contained, and run by
# tests against a real tritonserver. It imports lowres_sdk, which must be installed in Triton's Python.
PYTHON_MODEL = '''"""Triton python-backend model written by `lowres export --triton`: runs the lowres_sdk bundle in
./bundle like `Classifier` / `Embedder` do (same pre-processing graph, same numbers).

Input IMAGES (TYPE_STRING, dims [1]): each batch element is one JPEG or PNG, or one raw uint8 crop
(HxWx3 BGR, HxW gray or HxWx4 BGRA) serialised with numpy.save; any size. Crops of all requests in
a dynamic batch run in one call (grouped by size inside the runtime).
Outputs: classify -> PROBS (FP32 [C]) and LABEL (BYTES [1]); embed -> EMBEDDINGS (FP32 [D]).
"""
import io
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

NPY_MAGIC = b"\\x93NUMPY"


def _decode(blob: bytes, limits, where: str):
    from lowres_sdk.crops import as_crops
    from lowres_sdk.errors import InputError
    from lowres_sdk.serve.input import check_size, decode_image

    if not blob.startswith(NPY_MAGIC):
        return decode_image(blob, limits, where)
    f = io.BytesIO(blob)
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except ValueError as e:
        raise InputError(f"{where} is not a valid .npy array ({e})") from None
    if dtype != np.uint8 or len(shape) not in (2, 3) or min(shape, default=0) < 1:
        raise InputError(f"{where}: expected a uint8 HxW or HxWxC array, got {dtype} {shape}")
    check_size(shape[0], shape[1], limits, where)  # before numpy allocates what the header claims
    try:
        crop = np.load(io.BytesIO(blob), allow_pickle=False)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    return as_crops(crop)[0]


class TritonPythonModel:
    def initialize(self, args):
        from lowres_sdk import Classifier, Embedder, load_bundle
        from lowres_sdk.serve.input import Limits

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        bundle = load_bundle(Path(__file__).resolve().parent / "bundle")
        self.task = bundle.task
        self.limits = Limits(max_pixels=int(params.get("max_pixels", 1 << 20)),
                             max_side=int(params.get("max_side", 1024)))
        self.model = (Classifier if self.task == "classify" else Embedder)(
            bundle, batch_size=max(1, int(config.get("max_batch_size", 64))))

    def execute(self, requests):
        from lowres_sdk.errors import LowresError

        crops, spans = [], []
        for r in requests:
            try:
                blobs = pb_utils.get_input_tensor_by_name(r, "IMAGES").as_numpy().reshape(-1)
                decoded = [_decode(bytes(b), self.limits, f"IMAGES[{i}]") for i, b in enumerate(blobs)]
            except LowresError as e:
                spans.append(str(e))
                continue
            spans.append((len(crops), len(crops) + len(decoded)))
            crops += decoded
        out = self.model(crops) if crops else None
        responses = []
        for span in spans:
            if isinstance(span, str):
                code = getattr(pb_utils.TritonError, "INVALID_ARG", None)  # a 400, not a 500 (python backend >= 23.10)
                error = pb_utils.TritonError(span) if code is None else pb_utils.TritonError(span, code)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            a, b = span
            if self.task == "classify":
                tensors = [pb_utils.Tensor("PROBS", out.probs[a:b].astype(np.float32)),
                           pb_utils.Tensor("LABEL", np.array([[s.encode()] for s in out.labels[a:b]],
                                                             dtype=np.object_))]
            else:
                tensors = [pb_utils.Tensor("EMBEDDINGS", out[a:b].astype(np.float32))]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
'''


def onnx_io(bundle: Bundle) -> tuple[str, str, int]:
    """(input name, output name, output width) read from the ONNX itself, not assumed."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle.file("model.onnx")), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    width = out.shape[-1]
    if not isinstance(width, int):
        raise ExportError(f"{bundle.path}/model.onnx: output {out.name} has no fixed width ({out.shape})")
    return inp.name, out.name, width


def onnx_config(name: str, bundle: Bundle, *, max_batch: int, delay_us: int, instances: int, kind: str) -> str:
    inp, out, width = onnx_io(bundle)
    label = '\n    label_filename: "labels.txt"' if bundle.task == "classify" else ""
    return f'''# onnxruntime backend: the bundle's ONNX as is (uint8 BGR NHWC in, pre-processing inside the graph).
# Dynamic batching only merges requests whose crops have the same height and width (one tensor per
# batch); send crops of one size here, or use the python-backend model beside it for mixed sizes.
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
  {{
    name: "{inp}"
    data_type: TYPE_UINT8
    dims: [ -1, -1, 3 ]
  }}
]
output [
  {{
    name: "{out}"
    data_type: TYPE_FP32
    dims: [ {width} ]{label}
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {delay_us}
}}
instance_group [
  {{
    count: {instances}
    kind: {KINDS[kind]}
  }}
]
'''


def python_config(name: str, bundle: Bundle, *, max_batch: int, delay_us: int, instances: int, width: int) -> str:
    if bundle.task == "classify":
        outputs = f'''  {{
    name: "PROBS"
    data_type: TYPE_FP32
    dims: [ {width} ]
    label_filename: "labels.txt"
  }},
  {{
    name: "LABEL"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}'''
    else:
        outputs = f'''  {{
    name: "EMBEDDINGS"
    data_type: TYPE_FP32
    dims: [ {width} ]
  }}'''
    return f'''# python backend: runs the bundle in 1/bundle like lowres_sdk's Classifier/Embedder. Each batch
# element of IMAGES is one JPEG/PNG or one numpy.save'd uint8 crop, of any size, so requests of all
# sizes batch together. Needs `pip install lowres_sdk` in the Python that Triton's python backend uses.
name: "{name}"
backend: "python"
max_batch_size: {max_batch}
input [
  {{
    name: "IMAGES"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}
]
output [
{outputs}
]
dynamic_batching {{
  max_queue_delay_microseconds: {delay_us}
}}
instance_group [
  {{
    count: {instances}
    kind: KIND_CPU
  }}
]
parameters {{
  key: "max_pixels"
  value: {{ string_value: "{1 << 20}" }}
}}
parameters {{
  key: "max_side"
  value: {{ string_value: "1024" }}
}}
'''


def readme(bundle: Bundle, onnx_name: str, py_name: str) -> str:
    outputs = ("`PROBS` (class probabilities, columns in the order of `labels.txt`) and `LABEL`"
               if bundle.task == "classify" else "`EMBEDDINGS` (unit vectors)")
    return f"""{README_TITLE} {bundle.path.name} ({bundle.task})

Written by `lowres export {bundle.path} --triton <this folder>`. Two models of the same bundle:

- `{onnx_name}` (onnxruntime backend): input `images`, uint8 [N, H, W, 3] BGR crops; batches together
  only requests of equal H x W. For GPU servers (`kind: KIND_AUTO` picks the GPU) whose clients send
  crops resized to one size: highest throughput, no Python in the serving path.
- `{py_name}` (python backend): input `IMAGES`, BYTES [N, 1], each a JPEG/PNG or a `numpy.save`d uint8
  crop of any size; batches everything together. For clients that send camera crops as they come (any
  size, encoded): it runs the bundle exactly like `lowres_sdk.Classifier`.

Start Triton on this folder (`tritonserver --model-repository=<this folder>`); load only the model you
deploy with `--model-control-mode=explicit --load-model=<name>`. The python model needs
`pip install lowres_sdk` (numpy, onnxruntime or onnxruntime-gpu, OpenCV) in the Python environment of
Triton's python backend; the onnxruntime model needs nothing but Triton's onnxruntime backend.
Outputs: {outputs}.
The bundle's own metadata (pre-processing, provenance, metrics) is in `{py_name}/1/bundle/bundle.json`.
See docs/serving.md in lowres_sdk for which server to use where, with measured figures.
"""


def write_triton_repo(bundle: str | os.PathLike | Bundle, repo: str | os.PathLike, *, max_batch: int = 64,
                      delay_us: int = 500, instances: int = 1, kind: str = "auto") -> Path:
    """Write the model repository for ``bundle`` to ``repo`` (replaced as a whole, atomically)."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if kind not in KINDS:
        raise ExportError(f"instance kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if max_batch < 1 or instances < 1 or delay_us < 0:
        raise ExportError(f"need max_batch >= 1, instances >= 1, delay_us >= 0; got {max_batch}, {instances}, "
                          f"{delay_us}")
    repo = Path(repo)
    ours = (repo / "README.md").is_file() and (repo / "README.md").read_text(errors="replace").startswith(README_TITLE)
    if repo.exists() and (not repo.is_dir() or (any(repo.iterdir()) and not ours)):
        raise ExportError(f"{repo} exists and is not a Triton repository written by lowres; choose an empty or "
                          f"new folder")
    onnx_name, py_name = f"lowres_{bundle.task}_onnx", f"lowres_{bundle.task}"
    _, _, width = onnx_io(bundle)
    labels = "".join(f"{label}\n" for label in bundle.labels)
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", dir=repo.parent))
    os.chmod(tmp, 0o755)
    try:
        (tmp / onnx_name / "1").mkdir(parents=True)
        shutil.copyfile(bundle.file("model.onnx"), tmp / onnx_name / "1" / "model.onnx")
        config = onnx_config(onnx_name, bundle, max_batch=max_batch, delay_us=delay_us, instances=instances, kind=kind)
        (tmp / onnx_name / "config.pbtxt").write_text(config)
        (tmp / py_name / "1" / "bundle").mkdir(parents=True)
        for name in ["bundle.json", *bundle.meta["files"]]:
            shutil.copyfile(bundle.path / name, tmp / py_name / "1" / "bundle" / name)
        (tmp / py_name / "1" / "model.py").write_text(PYTHON_MODEL)
        config = python_config(py_name, bundle, max_batch=max_batch, delay_us=delay_us, instances=instances,
                               width=width)
        (tmp / py_name / "config.pbtxt").write_text(config)
        if bundle.task == "classify":
            for model in (onnx_name, py_name):
                (tmp / model / "labels.txt").write_text(labels)
        (tmp / "README.md").write_text(readme(bundle, onnx_name, py_name))
        if repo.exists():
            old = repo.with_name(f".{repo.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(repo, old)
            os.replace(tmp, repo)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, repo)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return repo
