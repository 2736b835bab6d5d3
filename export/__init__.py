"""Export: compile a trained run into a bundle -- an ONNX graph taking raw uint8 BGR crops, with the
model's pre-processing fused in -- plus its parity check and optional INT8 variant (needs torch + onnx)."""
