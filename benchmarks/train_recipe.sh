#!/usr/bin/env bash
# The whole recipe behind the shipped checkpoints (about 3 hours on 2 cores, bf16 autocast).
# Each command resumes from its own last.pt when run again; --stop-after N splits a run across sessions.
# The two fine-tunes may run side by side with --threads 1 each (that is how the shipped ones were made).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m mae.train pretrain --out runs/pretrain --epochs 15 --threads 1 --augment-pretrain
$PY -m mae.train finetune --out runs/finetune --init runs/pretrain/model.safetensors --epochs 16 --drop-path 0.05 --layer-decay 0.85
$PY -m mae.train finetune --out runs/baseline --init random --epochs 16 --threads 1 --drop-path 0.05
cp runs/pretrain/model.safetensors mae/checkpoints/mae_vit_tiny_p4_28_pretrain.safetensors
cp runs/finetune/model.safetensors mae/checkpoints/mae_vit_tiny_p4_28_finetuned.safetensors
$PY benchmarks/mae_recipe.py
