"""The largest |onnxruntime - torch| differences an export accepts: light (no onnx / torch import),
so the CLI's help can name them."""

PARITY_TOLERANCE = 1e-4  # a graph against the torch module it was exported from (also DeepStream's rewrite)
# model.onnx with FP16-stored weights (export --fp16-weights): each weight rounded once (2^-11 relative)
FP16_WEIGHTS_TOLERANCE = 5e-3
