"""Everything a search needs before its first trial, built from ``SearchSettings``: the teacher, the
data, the space, the latency predictor and the evaluator. Shared by the Optuna and Ray backends."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn

from core.files import file_sha256
from evaluators.accuracy import TaskEvaluator
from evaluators.latency.predict.predictor import LatencyPredictor
from mae.checkpoints import CheckpointError
from mae.data import ImageSplit, describe_splits, load_dataset
from mae.model import MaskedAutoencoder, describe
from search.settings import SearchSettings, SettingsError
from spaces.config import BlockConfig, CompressionConfig
from spaces.shape import LINEARS, ModelShape
from spaces.space import (
    MERGE_FRACTIONS,
    RANK_FRACTIONS,
    WEIGHT_BIT_CHOICES,
    JointSpace,
    SearchSpace,
    UniformSpace,
    merge_schedule,
    rank_for,
)
from toolkit.model_spec import resolve_model


@dataclass
class SearchSetup:
    teacher: nn.Module
    shape: ModelShape
    splits: dict[str, ImageSplit]
    predictor: LatencyPredictor
    space: SearchSpace
    evaluator: TaskEvaluator
    model_sha256: str | None

    @property
    def task(self) -> str:
        return "reconstruct" if self.shape.is_mae else "classify"

    def predict_ms(self, config: CompressionConfig | None) -> float:
        return self.predictor.predict_ms(self.shape, config, task=self.task)

    def deployable(self, config: CompressionConfig) -> CompressionConfig:
        """``config`` with the kernels the predictor priced (see LatencyPredictor.deployable_config)."""
        return self.predictor.deployable_config(self.shape, config, task=self.task)

    def smallest_config(self) -> CompressionConfig:
        """The cheapest config the techniques allow (the predictor never predicts fewer heads, units,
        ranks or bits slower, so this is the latency floor): everything pruned away when pruning,
        else the lowest bits and the smallest rank fraction on every Linear."""
        t = self.space.techniques
        bits = min(WEIGHT_BIT_CHOICES) if "quant" in t else 32
        frac = min(f for f in RANK_FRACTIONS if f > 0) if "lowrank" in t else 0.0

        def block(s) -> BlockConfig:
            heads, units = (0, 0) if "prune" in t else (s.heads, s.mlp_hidden)
            dims = s.linear_dims(heads, units)
            return BlockConfig(heads=heads, mlp_hidden=units, ranks={k: rank_for(frac, *dims[k]) for k in LINEARS},
                               weight_bits={k: bits for k in LINEARS})

        smallest = CompressionConfig(blocks=tuple(block(s) for s in self.shape.blocks), act_bits=8 if "quant" in t else 32,
                                     decoder_blocks=tuple(block(s) for s in self.shape.decoder_blocks))
        if "tokens" not in t:
            return smallest
        # merging costs its matching, so the most merging is not always the fastest: take the faster
        tokens = self.shape.encoder_tokens(self.task)
        merged = replace(smallest, blocks=merge_schedule(smallest.blocks, max(MERGE_FRACTIONS), tokens))
        return min((smallest, merged), key=self.predict_ms)


def model_spec_for(settings: SearchSettings) -> str:
    """``default`` means the shipped classifier, or the shipped MAE for ``--task reconstruct``."""
    if settings.model == "default" and settings.task == "reconstruct":
        return "default-mae"
    return settings.model


def searched_distill_steps(settings: SearchSettings) -> int:
    """The recovery steps a sampled config carries: ``recover_steps`` when every trial is recovered (the
    distillation knobs are then searched too), else 0: at the cheap fidelity no trial is recovered, so a
    sampled temperature would be a knob the sampler can never see the effect of (the top trials are
    recovered after the search with the default distillation settings, :mod:`search.winner`)."""
    return settings.recover_steps if settings.fidelity == "recovered" else 0


def build_space(settings: SearchSettings, teacher: nn.Module, shape: ModelShape, splits: dict[str, ImageSplit],
                predictor: LatencyPredictor) -> SearchSpace:
    """The space of ``--strategy``; ``allocate`` measures (or loads from the cache) the teacher's
    sensitivity table on a seeded calibration batch of the training split first."""
    techniques = frozenset(settings.techniques)
    steps = searched_distill_steps(settings)
    # tokens entering the encoder: an MAE reconstructing sees only its visible patches (token merging)
    tokens = shape.encoder_tokens(settings.task)
    if settings.space == "uniform":
        return UniformSpace(shape=shape, techniques=techniques, distill_steps=steps, tokens=tokens)
    if settings.space == "joint":
        return JointSpace(shape=shape, techniques=techniques, distill_steps=steps, tokens=tokens)
    from evaluators.sensitivity import build_table
    from search.allocation_space import AllocationSpace

    table = build_table(teacher, splits["train"], images=settings.sensitivity_images, seed=settings.seed,
                        data_name=settings.data, progress=settings.progress, tokens="tokens" in techniques)
    return AllocationSpace(shape=shape, table=table, predictor=predictor, budget_ms=settings.budget_ms,
                           techniques=techniques, task="reconstruct" if settings.task == "reconstruct" else "classify",
                           distill_steps=steps, tokens=tokens)


# a classifier this close to chance on the validation images was not trained for them
CHANCE_FACTOR = 1.5


def check_teacher(teacher: nn.Module, evaluator: TaskEvaluator, val: ImageSplit, settings: SearchSettings) -> float:
    """The teacher's validation score on the cheap subset, printed; a classifier at chance level there
    (at most ``CHANCE_FACTOR`` / classes) is refused with one sentence: compressing it is meaningless."""
    score = evaluator.score(teacher, "val", settings.cheap_val_images)
    n = min(settings.cheap_val_images, len(val))
    if settings.progress:
        print(f"teacher: validation {evaluator.metric_name} {score:.4f} on {n} images")
    if evaluator.metric_name == "accuracy" and score <= CHANCE_FACTOR / len(val.classes):
        raise SettingsError(
            f"the model scores {score:.3f} top-1 on {n} validation images of {settings.data}, about chance for "
            f"{len(val.classes)} classes: it was not trained for this data; fine-tune it on these images first "
            f"(maec finetune --init MAE_CHECKPOINT --data {settings.data} --out runs/ft) and pass "
            "runs/ft/model.safetensors with --model (or --no-teacher-check to search it anyway)")
    return score


def build_setup(settings: SearchSettings) -> SearchSetup:
    torch.manual_seed(settings.seed)
    spec = model_spec_for(settings)
    resolved = resolve_model(spec)
    teacher = resolved.model.eval()
    is_mae = isinstance(teacher, MaskedAutoencoder)
    if is_mae != (settings.task == "reconstruct"):
        want = "a full MAE (encoder + decoder)" if settings.task == "reconstruct" else "a classifier"
        raise CheckpointError(f"--task {settings.task} needs {want}, but {spec} is "
                              f"{'a full MAE' if is_mae else 'a classifier'}")
    arch = teacher.arch
    # --limit-train/--limit-val cut before resizing (less work); the test split stays whole
    splits = load_dataset(settings.data, data_dir=settings.data_dir, **arch.data_kwargs(),
                          limits={"train": settings.limit_train, "val": settings.limit_val})
    if not is_mae and len(splits["train"].classes) != arch.num_classes:
        raise SettingsError(f"the data has {len(splits['train'].classes)} classes, the model's head has "
                            f"{arch.num_classes}: fine-tune an MAE on this data first (maec finetune --init MAE_CHECKPOINT "
                            f"--data {settings.data} --out runs/ft) and pass runs/ft/model.safetensors with --model")
    if settings.progress:
        print(f"data {settings.data}: {describe_splits(splits)}")
        print(f"recovery and scoring on {settings.accelerator}{' in bf16' if settings.bf16 else ' in fp32'}")
    shape = describe(teacher, name=spec)
    predictor = LatencyPredictor(settings.device)
    sha = file_sha256(resolved.path) if resolved.path is not None and resolved.path.is_file() else None
    evaluator = TaskEvaluator(teacher, splits, bf16=settings.bf16, seed=settings.seed, device=settings.accelerator,
                              batch_size=settings.recover_batch_size)
    if settings.check_teacher and not settings.join:  # before the space: allocate measures a table first
        check_teacher(teacher, evaluator, splits["val"], settings)
    return SearchSetup(teacher=teacher, shape=shape, splits=splits, predictor=predictor,
                       space=build_space(settings, teacher, shape, splits, predictor), evaluator=evaluator,
                       model_sha256=sha)
