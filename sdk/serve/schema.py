"""The server's answers as OpenAPI response models. A classify result is sdk/results.py's record (a
test checks these fields against `record`), so /docs shows exactly what `to_dict` produces."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ScoredClass(BaseModel):
    label: str
    score: float = Field(description="probability")


class ClassifyRecord(BaseModel):
    label: str = Field(description='the answer: a class name, or "unknown" below the class\'s calibrated threshold')
    known: bool = Field(description='false when label is "unknown"')
    best: str = Field(description="the model's most probable class, also when label is \"unknown\"")
    index: int = Field(description="best's position in classes")
    score: float = Field(description="best's probability")
    top_k: list[ScoredClass] = Field(description="the k most probable classes, best first (?top_k=)")
    probs: list[float] = Field(description="every class's probability, in classes' order")


class ClassifyResponse(BaseModel):
    classes: list[str]
    results: list[ClassifyRecord] = Field(description="one per image or crop, in request order")


class EmbedResponse(BaseModel):
    dim: int
    embeddings: list[list[float]] = Field(description="unit vectors, one per image or crop (cosine = dot product)")


class ErrorDetail(BaseModel):
    type: str = Field(description="malformed, invalid_input, limit_exceeded, overloaded, timeout, wrong_task, ...")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 413, 415, 422, 503, 504)}
