"""The row format of the measurement harness: a benchmark is an ONNX file plus a ``spec`` saying
which of our operators it runs, so that ``maec calibrate`` can turn its time into a sample without
knowing how it was built.

* operator rows: ``{"ops": [[op, R]], "io": extra inputs/outputs}``. A row runs R copies of one
  operator with distinct weights (R parallel Linears on one input each, R chained LayerNorms / GELUs /
  adds, R attention cores on R inputs) so that weights stream from memory as in a whole model, and
  no copy can be merged away by ORT's common-subexpression elimination;
* model rows: ``{"shape", "config", "task", "mask_ratio", "global_pool"}``, a compressed model from
  the project's own search space built by ``toolkit``, decomposed again at calibration time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluators.latency.predict.ops import Op, decompose
from spaces.config import CompressionConfig
from spaces.shape import ModelShape

Builder = Callable[[Path], list[dict]]  # writes the ONNX file at the path, returns its inputs


@dataclass(frozen=True)
class BenchItem:
    """One benchmark: a name, ``row_kind`` ("op" or "model"), the ``spec`` JSON and its ONNX builder."""

    bench: str
    row_kind: str
    spec: dict
    build: Builder


def onnx_inputs(names: list[str], shapes: list[tuple[int, ...]]) -> list[dict]:
    return [{"name": n, "shape": list(s)} for n, s in zip(names, shapes)]


def spec_ops(spec: dict) -> Iterator[tuple[Op, float]]:
    """The (op, count) pairs a row's spec stands for (model rows decomposed from shape + config)."""
    if "ops" in spec:
        for d, count in spec["ops"]:
            yield Op.from_dict(d), float(count)
        return
    shape = ModelShape.from_dict(spec["shape"])
    config = CompressionConfig.from_dict(spec["config"])
    for op in decompose(shape, config, task=spec.get("task"), mask_ratio=spec.get("mask_ratio", 0.75),
                        global_pool=spec.get("global_pool", "avg")):
        yield op, 1.0
