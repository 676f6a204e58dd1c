import torch

from mae.model import create_model, describe
from spaces.config import BlockConfig, CompressionConfig, DistillConfig
from spaces.config_presets import preset_config
from toolkit.compress import apply, compress
from toolkit.lowrank import LowRankLinear
from toolkit.quant import FakeQuantLinear


def _x():
    return torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_identity_config_gives_the_same_outputs():
    model = create_model("mae_vit_test_p7_28").eval()
    out = apply(model, CompressionConfig.identity(describe(model)))
    assert torch.allclose(out(_x()), model(_x()))


def test_half_preset_shrinks_the_model_and_leaves_the_input_alone(fashion_mnist):
    model = create_model("mae_vit_tiny_p4_28").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = preset_config(describe(model), "half")
    student, report = compress(model, cfg, calib=fashion_mnist["val"], recover_steps=0)
    assert report.params_after < 0.6 * report.params_before
    assert student.blocks[0].attn.num_heads == 2 and student.blocks[0].mlp.fc1.out_features == 384
    assert student(_x()).shape == (4, 10)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # int8 weights: every row is an integer multiple of its own scale
    w = student.blocks[0].mlp.fc1.weight
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    assert torch.allclose(w / scale, (w / scale).round(), atol=1e-3)


def test_low_rank_and_int8_activations_compose(fashion_mnist):
    model = create_model("mae_vit_test_p7_28").eval()
    shape = describe(model)
    ranks = {"qkv": None, "proj": None, "fc1": 4, "fc2": None}
    bits = {"qkv": 8, "proj": 8, "fc1": 4, "fc2": 16}
    cfg = CompressionConfig(blocks=tuple(BlockConfig(heads=1, mlp_hidden=64, ranks=ranks, weight_bits=bits)
                                         for _ in shape.blocks), act_bits=8,
                            importance="taylor")
    student, report = compress(model, cfg, calib=fashion_mnist["val"])
    fc1 = student.blocks[0].mlp.fc1
    assert isinstance(fc1, LowRankLinear) and isinstance(fc1.first, FakeQuantLinear) and fc1.rank == 4
    assert report.lowrank[0]["applied"] is not None and report.prune["importance"] == "taylor"
    assert torch.isfinite(student(_x())).all()


def test_recovery_runs_inside_compress_and_improves_agreement(fashion_mnist):
    torch.manual_seed(0)
    model = create_model("mae_vit_test_p7_28").eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    shape = describe(model)
    cfg = CompressionConfig(blocks=tuple(BlockConfig(heads=1, mlp_hidden=16) for _ in shape.blocks),
                            distill=DistillConfig(temperature=2.0, alpha=0.0, feature_weight=0.0, steps=40))
    x = (fashion_mnist["val"].images[:256].float() / 255 - 0.286) / 0.353
    raw, _ = compress(model, cfg, recover_steps=0)
    rec, report = compress(model, cfg, train=fashion_mnist["train"].head(4096), bf16=False, recovery_lr=1e-3)
    assert report.recovery["steps"] == 40
    agree = [(m(x).argmax(1) == model(x).argmax(1)).float().mean().item() for m in (raw, rec)]
    assert agree[1] > agree[0]
