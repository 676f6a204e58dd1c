"""``LatencyPredictor``: predicted on-device latency of a (compressed) ViT or MAE, in milliseconds.

    predictor = LatencyPredictor("rpi4-a72-ort-1t")            # or a DeviceProfile, or None: default
    predictor.predict_ms(shape, config)                         # shape: spaces.shape.ModelShape
    predictor.breakdown_ms(shape, config)                       # per operator, for ``maec inspect``

No model is built; a prediction of the embedded default model costs well under a millisecond
(``benchmarks/latency_predict_time.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Literal

from evaluators.latency.errors import ProfileError
from evaluators.latency.predict.cost import (
    at_least_as_precise,
    bits_of,
    cost_at_ms,
    dtype_of,
    footprint_ms,
    op_cost_ms,
    weight_bytes,
)
from evaluators.latency.predict.ops import Op, Task, decompose
from evaluators.latency.predict.profile import DeviceProfile, load_profile
from spaces.config import CompressionConfig
from spaces.shape import ModelShape


@dataclass(frozen=True)
class OpCost:
    """One row of a breakdown: the op, the kernel dtype asked for and the one priced, and its time."""

    name: str
    kind: str
    dtype: str
    kernel: str
    macs: float
    params: float
    ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def _key(op: Op) -> tuple:
    """The op without its name: blocks repeat shapes, so prices are cached per shape and bits."""
    return op[1:]


class LatencyPredictor:
    """Prices operator lists with one :class:`DeviceProfile`."""

    def __init__(self, profile: DeviceProfile | str | None = None):
        self.device: DeviceProfile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
        self._core = self.device.core
        self._op_us = self.device.overhead["op_us"]
        self._call_ms = float(self.device.overhead["call_us"]) * 1e-3
        self._footprint = self.device.overhead.get("footprint")
        # Ops repeat across blocks (same shape, same bits): price each distinct one once.
        self._price = lru_cache(maxsize=4096)(self._price_uncached)
        self._price_at = lru_cache(maxsize=4096)(
            lambda key, dtype: cost_at_ms(Op("", *key), self._core, self._op_us, dtype))

    def _price_uncached(self, key: tuple) -> tuple[float, str]:
        try:
            return op_cost_ms(Op("", *key), self._core, self._op_us)
        except KeyError as e:
            raise ProfileError(f"profile {self.device.name} has no cost for {e.args[0]} "
                               "(recalibrate with rows of that operator)") from None

    def op_ms(self, op: Op) -> float:
        """Cost of one op on its own (no low-rank pairing)."""
        return self._price(_key(op))[0]

    def predict_ops_ms(self, ops: list[Op]) -> float:
        """Latency of one inference running ``ops``: per-call overhead plus each op's cost (plus the weight
        footprint beyond the cache, where the profile has one)."""
        return self._call_ms + self._ops_total_ms(self._priced(ops))

    def _ops_total_ms(self, priced: list[tuple[Op, float, str]]) -> float:
        """The priced ops' costs plus the weight footprint beyond the cache (0 without one); no call overhead."""
        return sum(ms for _, ms, _ in priced) + self._footprint_ms(priced)

    def _footprint_ms(self, priced: list[tuple[Op, float, str]]) -> float:
        """``cost.footprint_ms`` of the weight bytes the priced kernels read per call (a low-rank pair
        priced as its dense Linear reads the dense matrix: on ``.first``, with ``.second``'s outputs)."""
        if not self._footprint:
            return 0.0
        total = 0.0
        for i, (op, _, kernel) in enumerate(priced):
            if not kernel.startswith("dense-"):
                total += weight_bytes(op, kernel)
            elif op.name.endswith(".first"):
                total += weight_bytes(op._replace(n=priced[i + 1][0].n), kernel.removeprefix("dense-"))
        return footprint_ms(total, self._footprint)

    def _priced(self, ops: list[Op]) -> list[tuple[Op, float, str]]:
        """``(op, ms, kernel)`` per op. A low-rank pair (``x.first``, ``x.second``) that would cost more
        than the dense Linear it replaces is priced as that Linear (kernel ``dense``) on ``.first`` and
        0 on ``.second``: like a bit-width that does not pay, a rank that does not pay on this device is
        not worth deploying, and this keeps "lower rank never predicts slower" true (a rank just below
        the MAC break-even still pays a second operator's overhead)."""
        out: list[tuple[Op, float, str]] = []
        i = 0
        while i < len(ops):
            op = ops[i]
            ms, kernel = self._price(_key(op))
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if (op.kind == "linear" and op.name.endswith(".first") and nxt is not None
                    and nxt.name == op.name[: -len("first")] + "second"):
                # the two factors carry one bit-width (toolkit.lowrank): one kernel for both
                pair = [(self._price_at(_key(op), d), self._price_at(_key(nxt), d), d)
                        for d in at_least_as_precise(dtype_of(op))]
                ms1, ms2, kernel = min((p for p in pair if p[0] is not None and p[1] is not None),
                                       key=lambda p: p[0] + p[1])
                dense = Op("", "linear", m=op.m, k=op.k, n=nxt.n, bits=op.bits, act_bits=op.act_bits)
                ms_d, kernel_d = self._price(_key(dense))
                if ms_d < ms1 + ms2:
                    out += [(op, ms_d, f"dense-{kernel_d}"), (nxt, 0.0, f"dense-{kernel_d}")]
                else:
                    out += [(op, ms1, kernel), (nxt, ms2, kernel)]
                i += 2
                continue
            out.append((op, ms, kernel))
            i += 1
        return out

    def _choose(self, shape: ModelShape, config: CompressionConfig | None, kw: dict) -> list[tuple[Op, float, str]]:
        """Priced ops of ``config``, or of the same config with float activations when int8 activations
        would not pay on this device (``act_bits`` is one setting for the whole model, so this choice is
        made per config; it keeps "fewer activation bits never predict slower" true)."""
        priced = self._priced(decompose(shape, config, **kw))
        if config is not None and config.act_bits == 8:
            alt = self._priced(decompose(shape, replace(config, act_bits=32), **kw))
            if self._ops_total_ms(alt) < self._ops_total_ms(priced):
                return alt
        return priced

    def predict_ms(self, shape: ModelShape, config: CompressionConfig | None = None, *, task: Task | None = None,
                   mask_ratio: float = 0.75, batch: int = 1, global_pool: Literal["avg", "token"] = "avg") -> float:
        """Predicted latency in ms of ``shape`` compressed by ``config`` (see :func:`decompose`)."""
        kw = {"task": task, "mask_ratio": mask_ratio, "batch": batch, "global_pool": global_pool}
        return self._call_ms + self._ops_total_ms(self._choose(shape, config, kw))

    def breakdown_ms(self, shape: ModelShape, config: CompressionConfig | None = None, **kw) -> list[OpCost]:
        """Per-operator costs in execution order; their sum plus ``call_ms`` is :meth:`predict_ms`.
        ``dtype`` is what the config asks for, ``kernel`` what was priced (they differ where the
        envelope chose a more precise kernel; ``dense-*`` for a low-rank pair priced as one Linear). A
        profile with a weight footprint adds a last row ``weights_beyond_cache`` (kind ``footprint``)."""
        asked = {op.name: dtype_of(op) for op in decompose(shape, config, **kw)}
        priced = self._choose(shape, config, kw)
        rows = [OpCost(op.name, op.kind, asked.get(op.name, dtype_of(op)), kernel, op.macs, op.params, ms)
                for op, ms, kernel in priced]
        extra = self._footprint_ms(priced)
        if extra > 0:
            rows.append(OpCost("weights_beyond_cache", "footprint", "fp32", "fp32", 0.0, 0.0, extra))
        return rows

    def deployable_config(self, shape: ModelShape, config: CompressionConfig, **kw) -> CompressionConfig:
        """The config whose kernels are the ones :meth:`predict_ms` priced: weight bits raised and
        low-rank pairs made dense where the asked-for kernel would be slower on this device, float
        activations where int8 ones would be. At least as precise as ``config``, predicted exactly as
        fast; export this one so that the deployed model is the one that was priced."""
        rows = self.breakdown_ms(shape, config, **kw)
        act = 32 if config.act_bits == 8 and not any(r.kernel.endswith("a8") for r in rows) and any(
            r.dtype.endswith("a8") for r in rows) else config.act_bits
        groups = {"blocks": [dict(b.to_dict()) for b in config.blocks],
                  "decoder_blocks": [dict(b.to_dict()) for b in config.decoder_blocks]}
        for r in rows:
            parts = r.name.split(".")
            if r.kind != "linear" or parts[0] not in groups or len(parts) < 4 or not groups[parts[0]]:
                continue
            block = groups[parts[0]][int(parts[1])]
            key = parts[3]
            if r.kernel.startswith("dense-"):
                block["ranks"] = {**block["ranks"], key: None}
            kernel = r.kernel.removeprefix("dense-")
            if kernel != r.dtype:
                block["weight_bits"] = {**block["weight_bits"], key: bits_of(kernel)}
        return CompressionConfig.from_dict({**config.to_dict(), "act_bits": act,
                                            "blocks": groups["blocks"], **({"decoder_blocks": groups["decoder_blocks"]}
                                                                            if config.decoder_blocks else {})})

    @property
    def call_ms(self) -> float:
        """Fixed cost of one inference call in the runtime (input binding, scheduling)."""
        return self._call_ms
