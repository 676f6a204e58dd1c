"""Masked autoencoder (He et al., 2021) and the classifier that reuses its encoder.

Both models are built from timm's ``PatchEmbed`` and ``Block`` and use the exact parameter names
of facebookresearch/mae and timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.{i}.attn.qkv``, ``norm``, ``fc_norm``, ``head``, ``decoder_*``). That keeps
checkpoint loading a matter of selecting keys, and lets the toolkit swap pruned, low-rank or
quantized ``nn.Linear`` replacements into the blocks without touching ``forward``.

Shapes: N batch, C channels, H x W image, p patch size, L = (H/p)(W/p) patches, D width,
K = L(1 - mask_ratio) visible patches.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from timm.layers import PatchEmbed

from mae.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD
from mae.tome import MergingBlock, merges_any, run_merging_blocks
from spaces.shape import BlockShape, ModelShape


@dataclass(frozen=True)
class ViTArch:
    """Architecture hyper-parameters of an encoder, optionally with an MAE decoder and a head."""

    img_size: int = 28
    patch_size: int = 4
    in_chans: int = 1
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_classes: int = 10
    global_pool: Literal["token", "avg"] = "avg"
    decoder_embed_dim: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    norm_pix_loss: bool = False
    layer_norm_eps: float = 1e-6
    # Input config (timm's ``pretrained_cfg``): per-channel normalisation and the evaluation crop. None:
    # the default for the input (see ``input_mean`` / ``input_std`` / ``input_crop_pct``).
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def _default_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Fashion-MNIST's statistics for one channel (the embedded models), ImageNet's for three
        (official MAE and timm weights), 0.5 otherwise."""
        if self.in_chans == 1:
            return (FASHION_MNIST_MEAN,), (FASHION_MNIST_STD,)
        if self.in_chans == 3:
            return IMAGENET_MEAN, IMAGENET_STD
        return (0.5,) * self.in_chans, (0.5,) * self.in_chans

    @property
    def input_mean(self) -> tuple[float, ...]:
        """Per-channel mean the weights expect (given, else ``_default_stats``)."""
        return tuple(self.mean) if self.mean else self._default_stats()[0]

    @property
    def input_std(self) -> tuple[float, ...]:
        return tuple(self.std) if self.std else self._default_stats()[1]

    @property
    def input_crop_pct(self) -> float:
        """Share of the resized image kept by the evaluation centre crop: given, else 1.0 for small
        inputs (<= 64 px: datasets of that size are stored at size) and 0.875 (224 / 256) above."""
        return float(self.crop_pct) if self.crop_pct else (1.0 if self.img_size <= 64 else 0.875)

    def data_kwargs(self) -> dict:
        """What :func:`mae.data.load_dataset` needs to feed this model: size, channels, statistics, crop."""
        return {"img_size": self.img_size, "in_chans": self.in_chans, "mean": self.input_mean,
                "std": self.input_std, "crop_pct": self.input_crop_pct}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ViTArch":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("mean", "std"):  # JSON gives lists; the dataclass is frozen and hashed
            if known.get(k) is not None:
                known[k] = tuple(float(v) for v in known[k])
        return cls(**known)

    def with_(self, **changes) -> "ViTArch":
        return replace(self, **changes)


# Registry of presets, timm-style: create_model(name) builds one.
MODEL_PRESETS: dict[str, ViTArch] = {
    # The embedded default: ViT-Tiny width on 28x28 grayscale, patch 4 -> 49 tokens.
    "mae_vit_tiny_p4_28": ViTArch(),
    # A tiny variant used by the tests (fast on 2 cores).
    "mae_vit_test_p7_28": ViTArch(
        patch_size=7, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
        decoder_num_heads=2,
    ),
    # facebookresearch/mae's models_mae.py / models_vit.py (224 px RGB, ImageNet statistics, crop 0.875):
    # load their checkpoints with --model PATH; these names give the architectures (random weights).
    "mae_vit_base_patch16": ViTArch(
        img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12, num_classes=1000,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
    "mae_vit_large_patch16": ViTArch(
        img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16, num_classes=1000,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
}


def _layer_norm(arch: ViTArch):
    """LayerNorm constructor with the arch's epsilon (timm passes device/dtype keywords)."""
    return functools.partial(nn.LayerNorm, eps=arch.layer_norm_eps)


def _blocks(dim: int, depth: int, heads: int, arch: ViTArch, drop_path: float = 0.0) -> nn.ModuleList:
    rates = np.linspace(0.0, drop_path, depth) if depth else []
    return nn.ModuleList(
        MergingBlock(dim, heads, mlp_ratio=arch.mlp_ratio, qkv_bias=arch.qkv_bias,
              norm_layer=_layer_norm(arch), drop_path=float(r))
        for r in rates
    )


def sincos_pos_embed(embed_dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding as in MAE. Returns ``[1, (1 +) grid^2, D]``."""
    assert embed_dim % 4 == 0, "sin-cos position embedding needs a width divisible by 4"
    gh, gw = np.meshgrid(np.arange(grid_size, dtype=np.float64), np.arange(grid_size, dtype=np.float64))
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4.0))

    def one_axis(pos: np.ndarray) -> np.ndarray:  # [M] -> [M, D/2]
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    # MAE's helper uses w first; the (h, w) order below reproduces its values exactly.
    emb = np.concatenate([one_axis(gh), one_axis(gw)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, embed_dim)), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """``imgs: [N, C, H, W]`` -> ``[N, L, p*p*C]`` (row-major patches, pixel order p, p, C as in MAE)."""
    n, c, h, w = imgs.shape
    assert h == w and h % p == 0, f"image {h}x{w} is not divisible into {p}x{p} patches"
    g = h // p
    x = imgs.reshape(n, c, g, p, g, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, g * g, p * p * c)


def unpatchify(x: torch.Tensor, p: int, c: int) -> torch.Tensor:
    """``x: [N, L, p*p*C]`` -> ``imgs: [N, C, H, W]`` (inverse of :func:`patchify`)."""
    n, length, _ = x.shape
    g = int(round(length ** 0.5))
    assert g * g == length, f"{length} patches do not form a square grid"
    x = x.reshape(n, g, g, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, c, g * p, g * p)


def random_masking(
    x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of tokens per sample.

    ``x: [N, L, D]`` -> ``(x_visible [N, K, D], mask [N, L] with 1 = removed, ids_restore [N, L])``
    where ``K = int(L * (1 - mask_ratio))``. ``torch.gather(full, 1, ids_restore)`` puts a sequence
    ordered (visible, masked) back into the original patch order.
    """
    n, length, d = x.shape
    len_keep = int(length * (1 - mask_ratio))
    noise = torch.rand(n, length, device=x.device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    mask = torch.ones(n, length, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked patches only. ``pred, target: [N, L, P]``, ``mask: [N, L]``."""
    per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


class ViTEncoder(nn.Module):
    """Patch embedding, class token, fixed position embedding and transformer blocks."""

    def __init__(self, arch: ViTArch, drop_path: float = 0.0):
        super().__init__()
        self.arch = arch
        self.patch_embed = PatchEmbed(arch.img_size, arch.patch_size, arch.in_chans, arch.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim))
        # Fixed sin-cos table, stored as a frozen parameter as in MAE so checkpoints carry it.
        self.pos_embed = nn.Parameter(
            sincos_pos_embed(arch.embed_dim, arch.img_size // arch.patch_size), requires_grad=False
        )
        self.blocks = _blocks(arch.embed_dim, arch.depth, arch.num_heads, arch, drop_path)

    def init_weights(self) -> None:
        """MAE initialisation: xavier for Linear and the patch projection, normal(0.02) for tokens."""
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        if hasattr(self, "mask_token"):
            nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def embed_patches(self, imgs: torch.Tensor) -> torch.Tensor:
        """``imgs: [N, C, H, W]`` -> patch tokens with position embedding ``[N, L, D]``."""
        return self.patch_embed(imgs) + self.pos_embed[:, 1:, :]

    def prepend_cls(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, K, D]`` -> ``[N, 1 + K, D]``."""
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, T, D]`` -> ``[N, T, D]``. Blocks that merge tokens (``merge_r``, set by the toolkit)
        run through :func:`mae.tome.run_merging_blocks`, which unmerges at the end: same shape out."""
        if merges_any(self.blocks):
            return run_merging_blocks(self.blocks, x)
        for blk in self.blocks:
            x = blk(x)
        return x


class MAEClassifier(ViTEncoder):
    """ViT classifier that reuses the MAE encoder (MAE's fine-tuning model, timm's VisionTransformer).

    ``global_pool='avg'`` averages patch tokens and applies ``fc_norm`` (MAE fine-tuning default);
    ``'token'`` takes the class token after ``norm`` (timm default). Exactly one of the two norms
    is a LayerNorm, the other an Identity, as in timm.
    """

    def __init__(self, arch: ViTArch, drop_path: float = 0.0):
        super().__init__(arch, drop_path)
        use_fc_norm = arch.global_pool == "avg"
        ln = _layer_norm(arch)
        self.norm = nn.Identity() if use_fc_norm else ln(arch.embed_dim)
        self.fc_norm = ln(arch.embed_dim) if use_fc_norm else nn.Identity()
        self.head = nn.Linear(arch.embed_dim, arch.num_classes) if arch.num_classes else nn.Identity()
        self.init_weights()
        if isinstance(self.head, nn.Linear):  # small head init as in MAE fine-tuning
            nn.init.trunc_normal_(self.head.weight, std=2e-5)

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """``imgs: [N, C, H, W]`` -> tokens ``[N, 1 + L, D]`` after the blocks and ``norm``."""
        return self.norm(self.run_blocks(self.prepend_cls(self.embed_patches(imgs))))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens: [N, 1 + L, D]`` -> ``[N, D]``."""
        pooled = tokens[:, 1:].mean(dim=1) if self.arch.global_pool == "avg" else tokens[:, 0]
        return self.fc_norm(pooled)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """``imgs: [N, C, H, W]`` -> logits ``[N, num_classes]``."""
        return self.head(self.pool(self.forward_features(imgs)))


class MaskedAutoencoder(ViTEncoder):
    """MAE: encoder on visible patches only, light decoder on all tokens, loss on masked patches."""

    def __init__(self, arch: ViTArch):
        super().__init__(arch)
        ln = _layer_norm(arch)
        dd = arch.decoder_embed_dim
        self.norm = ln(arch.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_embed = nn.Linear(arch.embed_dim, dd)
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed(dd, arch.img_size // arch.patch_size), requires_grad=False
        )
        self.decoder_blocks = _blocks(dd, arch.decoder_depth, arch.decoder_num_heads, arch)
        self.decoder_norm = ln(dd)
        self.decoder_pred = nn.Linear(dd, arch.patch_size ** 2 * arch.in_chans)
        self.init_weights()

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``imgs: [N, C, H, W]`` -> ``(latent [N, 1 + K, D], mask [N, L], ids_restore [N, L])``."""
        x, mask, ids_restore = random_masking(self.embed_patches(imgs), mask_ratio, generator)
        latent = self.norm(self.run_blocks(self.prepend_cls(x)))
        return latent, mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """``latent: [N, 1 + K, D]``, ``ids_restore: [N, L]`` -> pixel predictions ``[N, L, p*p*C]``."""
        x = self.decoder_embed(latent)
        n, length = ids_restore.shape
        mask_tokens = self.mask_token.to(x.dtype).expand(n, length + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Reconstruction target ``[N, L, p*p*C]``: pixels, or per-patch normalised pixels."""
        t = patchify(imgs, self.arch.patch_size)
        if self.arch.norm_pix_loss:
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6) ** 0.5
        return t

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.75, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``imgs: [N, C, H, W]`` -> ``(loss [], pred [N, L, p*p*C], mask [N, L])``."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return masked_patch_loss(pred, self.target(imgs), mask), pred, mask

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Encoder weights only (what fine-tuning starts from), under the classifier's key names."""
        skip = ("mask_token", "decoder_", "norm.")
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}


def describe(model: ViTEncoder, name: str = "") -> ModelShape:
    """The uncompressed shape of ``model`` (read from its modules, so loaded models work too)."""
    def shapes(blocks: nn.ModuleList) -> tuple[BlockShape, ...]:
        return tuple(BlockShape(dim=b.attn.qkv.in_features, heads=b.attn.num_heads, head_dim=b.attn.head_dim,
                                mlp_hidden=b.mlp.fc1.out_features) for b in blocks)

    arch = model.arch
    is_mae = isinstance(model, MaskedAutoencoder)
    return ModelShape(
        name=name or type(model).__name__, img_size=arch.img_size, patch_size=arch.patch_size,
        in_chans=arch.in_chans, embed_dim=arch.embed_dim, num_classes=0 if is_mae else arch.num_classes,
        blocks=shapes(model.blocks), decoder_dim=arch.decoder_embed_dim if is_mae else 0,
        decoder_blocks=shapes(model.decoder_blocks) if is_mae else (),
    )


def create_model(name: str, kind: Literal["classifier", "mae"] = "classifier", **overrides) -> nn.Module:
    """Build a preset by name (see ``MODEL_PRESETS``); ``overrides`` change ``ViTArch`` fields. With
    weights from a checkpoint: :func:`mae.registry.create_model`."""
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(sorted(MODEL_PRESETS))}")
    drop_path = overrides.pop("drop_path", 0.0)
    arch = MODEL_PRESETS[name].with_(**overrides)
    return MaskedAutoencoder(arch) if kind == "mae" else MAEClassifier(arch, drop_path=drop_path)
