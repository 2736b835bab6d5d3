"""A Python-based Triton backend named ``onnxruntime`` that tests install beside the python backend of
nvidia-pytriton's tritonserver, which ships no onnxruntime backend. It runs the model folder's
model.onnx with onnxruntime and refuses to load when the config's inputs and outputs (names, types)
are not the graph's, as the real backend does; so the repository's ONNX model is served with its
config.pbtxt unchanged. It stands in for NVIDIA's backend: it does not test that backend itself."""
import json
import os

import onnxruntime as ort
import triton_python_backend_utils as pb_utils

ONNX_TYPES = {"TYPE_UINT8": "tensor(uint8)", "TYPE_FP32": "tensor(float)"}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(os.path.join(folder, config.get("default_model_filename") or "model.onnx"),
                                            providers=["CPUExecutionProvider"])
        for side, graph in (("input", self.session.get_inputs()), ("output", self.session.get_outputs())):
            declared = [(t["name"], ONNX_TYPES.get(t["data_type"])) for t in config[side]]
            actual = [(t.name, t.type) for t in graph]
            if declared != actual:
                raise pb_utils.TritonModelException(f"config {side}s {declared} are not the graph's {actual}")
        self.inputs, self.outputs = [t["name"] for t in config["input"]], [t["name"] for t in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            values = self.session.run(self.outputs, feed)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values)]))
        return responses
