"""Loaders for the models users already have: official MAE checkpoints, timm ViTs, our own files.

Every loader ends in one of our two modules (``MaskedAutoencoder`` with a decoder, ``MAEClassifier``
without), so the toolkit and the search see a single model family whatever the source. The
architecture is inferred from tensor shapes; the only hyper-parameters that shapes cannot tell
(attention heads, LayerNorm epsilon, ``norm_pix_loss``) follow the published models and can be
overridden by keyword.

Nothing from a file is executed: safetensors, or ``torch.load(weights_only=True)``. Every failure
is a :class:`~mae.checkpoints.CheckpointError` with one sentence naming the file and the problem.
"""
from __future__ import annotations

import argparse
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open

from mae.checkpoints import CHECKPOINT_DIR, CheckpointError, load_own, load_weights_strict, read_safetensors
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch

DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "mae_vit_tiny_p4_28_finetuned.safetensors"
DEFAULT_MAE_CHECKPOINT = CHECKPOINT_DIR / "mae_vit_tiny_p4_28_pretrain.safetensors"


def shipped_checkpoints() -> dict[str, Path]:
    """``{spec: path}`` of the shipped models (read at call time, so tests can point them elsewhere)."""
    return {"default": DEFAULT_CHECKPOINT, "default-mae": DEFAULT_MAE_CHECKPOINT}
StateDict = dict[str, torch.Tensor]

# Widths whose published models do not use 64-wide heads (ViT-H/14, ViT-g/14, ViT-G/14: 16 heads).
_HEADS_BY_WIDTH = {1280: 16, 1408: 16, 1664: 16}

# Keys that reveal a ViT variant our blocks cannot express; refused by name, not by a generic
# "unexpected key", so the user learns which feature is the obstacle.
_UNSUPPORTED_KEYS: list[tuple[str, str]] = [
    (r"\.ls[12]\.gamma$|\.gamma_[12]$", "layer scale (ls1.gamma, init_values)"),
    (r"\.attn\.[qk]_norm\.", "qk_norm"),
    (r"\.attn\.norm\.|\.mlp\.norm\.", "scale_attn_norm / scale_mlp_norm"),
    (r"\.attn\.gate\.", "gated attention"),
    (r"\.attn\.(q_bias|v_bias|relative_position)", "BEiT-style attention biases"),
    (r"\.mlp\.(fc1_g|fc1_x|w12)\.", "a gated MLP (SwiGLU)"),
    (r"^reg_token$", "register tokens (reg_tokens)"),
    (r"^dist_token$|^head_dist\.", "a distillation token (DeiT)"),
    (r"^norm_pre\.", "a norm before the blocks (pre_norm=True)"),
    (r"^patch_embed\.norm\.", "a norm inside the patch embedding"),
    (r"^attn_pool\.", "attention pooling (global_pool='map')"),
    (r"^head\.\d+\.", "a multi-layer head (such as MAE's linear-probe BatchNorm head)"),
]


# ----------------------------------------------------------------------------------------------
# Reading files


def _short(e: BaseException) -> str:
    """First sentence of an exception message, for one-sentence errors."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text.split(". ")[0].rstrip(".")[:160]


def _is_safetensors(path: Path) -> bool:
    """Suffix, or the format's header: 8-byte little-endian length followed by a JSON object."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` with errors turned into one sentence.

    ``argparse.Namespace`` is allowed because MAE's ``misc.save_model`` stores its ``args`` that
    way; the restricted unpickler still only rebuilds plain data inside it.
    """
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
            warnings.simplefilter("ignore")  # protocol warnings for foreign pickles: we report below
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - RuntimeError, UnpicklingError, EOFError, ... by case
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"{path} holds pickled Python objects ({found.group(1)}), not only tensors, and was "
                "refused because loading it could run code (save a state_dict instead)"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(Check the documentation|$)", str(e), re.DOTALL)
        detail = _short(Exception(reason.group(1))) if reason else _short(e)
        raise CheckpointError(f"cannot read {path}: it is truncated or not a checkpoint ({detail})") from None


def _unwrap(obj: object, source: str) -> StateDict:
    """The tensors of a checkpoint: ``obj["model"]`` or ``obj["state_dict"]`` (MAE and timm
    training scripts), else ``obj`` itself, with a DistributedDataParallel ``module.`` prefix removed."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a safetensors or PyTorch checkpoint at ``path``, unwrapped (see :func:`_unwrap`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    try:
        is_st = _is_safetensors(path)
    except OSError as e:
        raise CheckpointError(f"cannot read {path} ({_short(e)})") from None
    if is_st:
        return read_safetensors(path)[0]
    return _unwrap(_torch_load(path), str(path))


def _source_and_dict(path_or_state_dict: str | Path | Mapping) -> tuple[str, StateDict]:
    if isinstance(path_or_state_dict, Mapping):
        return "the given state dict", _unwrap(path_or_state_dict, "the given state dict")
    return str(path_or_state_dict), read_state_dict(path_or_state_dict)


# ----------------------------------------------------------------------------------------------
# Architecture from shapes


def default_num_heads(width: int) -> int | None:
    """Heads of the published ViT of this width: 64-wide heads (Ti 192->3, S 384->6, B 768->12,
    L 1024->16), except the 16-head H/g/G models. None when no rule applies."""
    if width in _HEADS_BY_WIDTH:
        return _HEADS_BY_WIDTH[width]
    return width // 64 if width % 64 == 0 else None


def _depth(sd: StateDict, prefix: str, source: str) -> int:
    """Number of blocks ``{prefix}.{i}.*``; the indices must run 0..depth-1."""
    found = {int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    if found != set(range(len(found))):
        raise CheckpointError(f"{source} has {prefix} numbered {sorted(found)}, not 0..{len(found) - 1}")
    return len(found)


def _mlp_ratio(hidden: int, width: int) -> float:
    """A ratio with ``int(width * ratio) == hidden`` (timm's ``Block`` truncates, so round up if needed)."""
    ratio = hidden / width
    return ratio if int(width * ratio) == hidden else math.nextafter(ratio, math.inf)


def _heads(width: int, given: int | None, what: str, source: str) -> int:
    """``given``, or the default for ``width``; it must divide the width."""
    heads = given if given is not None else default_num_heads(width)
    arg = "num_heads" if what == "attention" else "decoder_num_heads"
    if heads is None:
        raise CheckpointError(f"{source}: the number of {what} heads for width {width} cannot be "
                              f"inferred; pass it as {arg}=")
    if heads <= 0 or width % heads:
        raise CheckpointError(f"{source}: {heads} {what} heads do not divide width {width}; pass {arg}=")
    return heads


def _refuse_unsupported(sd: StateDict, source: str) -> None:
    """Raise CheckpointError for ViT variants our modules do not implement, naming the feature."""
    if "patch_embed.proj.weight" not in sd or "blocks.0.attn.qkv.weight" not in sd:
        hint = " (a Hugging Face transformers checkpoint, which is not supported)" if any(
            k.startswith(("vit.", "embeddings.", "encoder.layer.")) for k in sd) else ""
        first = ", ".join(list(sd)[:3]) or "no tensors at all"
        raise CheckpointError(
            f"{source} is not a ViT checkpoint of a known layout{hint}: expected patch_embed.proj.weight "
            f"and blocks.0.attn.qkv.weight, found {first}"
        )
    for pattern, feature in _UNSUPPORTED_KEYS:
        if any(re.search(pattern, k) for k in sd):
            raise CheckpointError(f"{source} uses {feature}, which this project does not support")
    absent = [
        ("cls_token", "no class token (class_token=False)"),
        ("pos_embed", "no learned or fixed position embedding"),
        ("patch_embed.proj.bias", "a patch embedding without bias"),
        ("blocks.0.attn.proj.bias", "projections without bias (proj_bias=False)"),
    ]
    for key, feature in absent:
        if key not in sd:
            raise CheckpointError(f"{source} has {feature}, which this project does not support")
    if ("norm.weight" in sd) == ("fc_norm.weight" in sd):
        which = "both norm and fc_norm" if "norm.weight" in sd else "no final norm (final_norm=False)"
        raise CheckpointError(f"{source} has {which}, which this project does not support")
    w = sd["patch_embed.proj.weight"]
    if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise CheckpointError(f"{source} has a patch embedding of shape {tuple(w.shape)}, not square conv patches")


def infer_arch(
    sd: StateDict,
    *,
    source: str = "the state dict",
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    layer_norm_eps: float = 1e-6,
    norm_pix_loss: bool = False,
) -> ViTArch:
    """The ``ViTArch`` of an MAE/timm-layout state dict, from its tensor shapes.

    ``patch_embed.proj.weight: [D, C, p, p]`` gives width, channels and patch size;
    ``pos_embed: [1, (1 +) g*g, D]`` the grid and so ``img_size = g * p``; ``blocks.0.mlp.fc1.weight:
    [hidden, D]`` the MLP ratio; ``fc_norm`` the pooling ('avg', MAE fine-tuning) against 'token';
    ``head.weight: [classes, D]`` the classes (0 without a head); ``decoder_*`` the MAE decoder.
    Heads cannot be read from shapes: see :func:`default_num_heads`, or pass them.
    """
    _refuse_unsupported(sd, source)
    width, in_chans, patch, _ = sd["patch_embed.proj.weight"].shape
    positions = sd["pos_embed"].shape[1]
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:  # no row for the class token (no_embed_class): see _fix_pos_embed
        grid = math.isqrt(positions)
        if grid * grid != positions:
            raise CheckpointError(f"{source} has a pos_embed of {positions} positions, which is no square grid")
    fields: dict = {
        "img_size": grid * patch, "patch_size": patch, "in_chans": in_chans, "embed_dim": width,
        "depth": _depth(sd, "blocks", source), "num_heads": _heads(width, num_heads, "attention", source),
        "mlp_ratio": _mlp_ratio(sd["blocks.0.mlp.fc1.weight"].shape[0], width),
        "qkv_bias": "blocks.0.attn.qkv.bias" in sd, "layer_norm_eps": layer_norm_eps,
        "global_pool": "avg" if "fc_norm.weight" in sd else "token",
        "num_classes": sd["head.weight"].shape[0] if "head.weight" in sd else 0,
        "norm_pix_loss": norm_pix_loss,
    }
    if "decoder_embed.weight" in sd:
        dec_width = sd["decoder_embed.weight"].shape[0]
        dec_ratio = _mlp_ratio(sd["decoder_blocks.0.mlp.fc1.weight"].shape[0], dec_width) \
            if "decoder_blocks.0.mlp.fc1.weight" in sd else fields["mlp_ratio"]
        if dec_ratio != fields["mlp_ratio"]:  # ViTArch has one ratio for encoder and decoder, as MAE
            raise CheckpointError(f"{source} has decoder MLP ratio {dec_ratio:g} != encoder {fields['mlp_ratio']:g}")
        # MAE's decoders use 32-wide heads (512 -> 16), as does our 128-wide preset (4 heads).
        dec_heads = decoder_num_heads if decoder_num_heads is not None else (
            dec_width // 32 if dec_width % 32 == 0 else None)
        fields.update(
            decoder_embed_dim=dec_width, decoder_depth=_depth(sd, "decoder_blocks", source),
            decoder_num_heads=_heads(dec_width, dec_heads, "decoder", source),
            num_classes=0, global_pool="avg",  # unused by the MAE; 'avg' is the fine-tuning default
        )
    return ViTArch(**fields)


def _fix_pos_embed(sd: StateDict, arch: ViTArch) -> StateDict:
    """timm's ``no_embed_class`` stores no position row for the class token; adding a zero row
    gives our layout with identical outputs (``cls + 0 == cls`` exactly)."""
    pos = sd["pos_embed"]
    if pos.shape[1] == arch.num_patches:
        sd = {**sd, "pos_embed": torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)}
    return sd


def _load_weights(model: nn.Module, sd: StateDict, source: str) -> nn.Module:
    load_weights_strict(model, sd, f"{source} does not fit the inferred architecture")
    return model.eval()


def _build(sd: StateDict, source: str, **arch_kwargs) -> nn.Module:
    arch = infer_arch(sd, source=source, **arch_kwargs)
    model = MaskedAutoencoder(arch) if "decoder_embed.weight" in sd else MAEClassifier(arch)
    return _load_weights(model, _fix_pos_embed(sd, arch), source)


# ----------------------------------------------------------------------------------------------
# Public loaders


def load_official_mae(
    path_or_state_dict: str | Path | Mapping,
    *,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
    norm_pix_loss: bool = False,
    layer_norm_eps: float = 1e-6,
) -> nn.Module:
    """A facebookresearch/mae checkpoint (``.pth`` or safetensors, ``{"model": state_dict}`` or bare).

    With ``decoder_*`` keys (pretraining with decoder) -> ``MaskedAutoencoder``; without ->
    ``MAEClassifier``: global_pool 'avg' when ``fc_norm`` is present (``models_vit.py`` fine-tuning),
    else 'token'; ``num_classes`` from ``head``, 0 without one (the encoder-only pretrain release).
    ``norm_pix_loss`` only changes the reconstruction target; MAE's released pretrain weights used
    True, its visualisation weights False. Returned in eval mode.
    """
    source, sd = _source_and_dict(path_or_state_dict)
    return _build(sd, source, num_heads=num_heads, decoder_num_heads=decoder_num_heads,
                  norm_pix_loss=norm_pix_loss, layer_norm_eps=layer_norm_eps)


def load_timm_state_dict(
    path_or_state_dict: str | Path | Mapping, *, num_heads: int | None = None, layer_norm_eps: float = 1e-6
) -> MAEClassifier:
    """A state dict of timm's ``VisionTransformer`` (``.pth``, ``.bin`` or safetensors) as our classifier.

    Pooling follows the weights: ``fc_norm`` present -> 'avg', else 'token' (timm's default, and that
    of the ``*.mae`` variants, which also have ``num_classes=0`` and so no ``head``). A timm model
    built with ``global_pool='avg', fc_norm=False`` cannot be told from a token-pooling one by its
    weights; use :func:`from_timm` on the module instead. ``no_embed_class`` is converted; layer
    scale, qk_norm, register tokens, no class token and other variants raise CheckpointError.
    """
    source, sd = _source_and_dict(path_or_state_dict)
    if "decoder_embed.weight" in sd:
        raise CheckpointError(f"{source} is an MAE pretraining checkpoint with a decoder, not a timm model; "
                              "load it with load_official_mae")
    return _build(sd, source, num_heads=num_heads, layer_norm_eps=layer_norm_eps)


def from_timm(model: nn.Module, *, source: str | None = None) -> MAEClassifier:
    """Convert a timm ``VisionTransformer`` module into our ``MAEClassifier`` with identical outputs.

    Unlike a bare state dict, the module tells heads, epsilon and pooling, and every piece is checked
    to be the plain variant our blocks implement (GELU MLP, standard attention, LayerNorm).
    """
    from timm.layers import Attention, Mlp, PatchEmbed
    from timm.models.vision_transformer import Block, VisionTransformer

    source = source or f"timm model {type(model).__name__}"
    if type(model) is not VisionTransformer:
        raise CheckpointError(f"{source} is a {type(model).__name__}, not timm's VisionTransformer")
    def refuse_if(bad: bool, feature: str) -> None:
        if bad:
            raise CheckpointError(f"{source} uses {feature}, which this project does not support")

    # Checked in order, so that each test may rely on the ones before it.
    refuse_if(model.global_pool not in ("token", "avg"), f"global_pool={model.global_pool!r}")
    refuse_if((model.global_pool == "avg") != isinstance(model.fc_norm, nn.LayerNorm),
              "a final norm placed against its pooling (fc_norm set explicitly)")
    refuse_if(model.dynamic_img_size or model.pool_include_prefix, "dynamic image size or prefix pooling")
    refuse_if(type(model.patch_embed) is not PatchEmbed or model.patch_embed.dynamic_img_pad,
              "a custom patch embedding")
    refuse_if(len(model.blocks) == 0 or any(
        type(b) is not Block or type(b.attn) is not Attention or type(b.mlp) is not Mlp for b in model.blocks
    ), "blocks other than timm's plain Block/Attention/Mlp")
    blk = model.blocks[0]
    refuse_if(any(type(b.mlp.act) is not nn.GELU or b.mlp.act.approximate != "none" for b in model.blocks),
              "an activation other than exact GELU")
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    refuse_if(len({m.eps for m in norms}) > 1 or any(not m.elementwise_affine for m in norms),
              "LayerNorms of mixed epsilon or without affine weights")
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    arch = infer_arch(sd, source=source, num_heads=blk.attn.num_heads, layer_norm_eps=norms[0].eps)
    cfg = getattr(model, "pretrained_cfg", None) or {}  # timm's input config travels with the model
    if cfg.get("mean") and cfg.get("std") and len(cfg["mean"]) == arch.in_chans:
        arch = arch.with_(mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]),
                          crop_pct=float(cfg["crop_pct"]) if cfg.get("crop_pct") else None)
    if model.global_pool == "avg" and "fc_norm.weight" not in sd:  # avg pooling, final_norm=False
        raise CheckpointError(f"{source} has no final norm, which this project does not support")
    return _load_weights(MAEClassifier(arch), _fix_pos_embed(sd, arch), source)


def _is_own_file(path: Path) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`mae.checkpoints.save_model`."""
    try:
        if not (path.is_file() and _is_safetensors(path)):
            return False
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format") == "mae-compress-search"
    except Exception:  # noqa: BLE001 - unreadable: read_state_dict reports it in one sentence
        return False


def load_timm(name: str) -> MAEClassifier:
    """timm's architecture ``name`` with random weights (nothing is downloaded), converted to our classifier."""
    import timm

    try:
        model = timm.create_model(name, pretrained=False)
    except RuntimeError as e:  # timm: "Unknown model (...)"
        raise CheckpointError(f"timm:{name} names no timm model ({_short(e)})") from None
    return from_timm(model, source=f"timm:{name}")


def load_checkpoint(path: str | Path, *, num_heads: int | None = None,
                    decoder_num_heads: int | None = None) -> nn.Module:
    """A checkpoint file as one of our modules, in eval mode: our own safetensors, an official MAE
    checkpoint (with or without decoder) or a timm state dict; the layout is told by metadata and
    keys, not by the file name. Model *names* (``default``, presets, ``timm:NAME``, ``maec apply``
    folders) are resolved by :func:`toolkit.model_spec.resolve_model`."""
    path = Path(path)
    if _is_own_file(path):
        return load_own(path)[0]
    sd = read_state_dict(path)
    return _build(sd, str(path), num_heads=num_heads, decoder_num_heads=decoder_num_heads)
