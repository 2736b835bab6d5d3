"""TensorRT in one place: ``runner`` (the runtime backend behind `Classifier`), ``graph`` (the
TensorRT-ready ONNX rewrite) and ``engine`` (building and caching engines). Nothing here imports
tensorrt, cuda-python or onnx until a submodule that needs them is imported."""
