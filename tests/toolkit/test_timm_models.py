"""The toolkit on timm ViTs converted by our loaders (architecture only, random weights)."""
import pytest
import timm
import torch

from mae.loaders import from_timm, load_timm
from mae.model import describe
from spaces.config import BlockConfig, CompressionConfig
from spaces.config_presets import preset_config
from toolkit.compress import apply, compress
from toolkit.lowrank import LowRankLinear


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224.mae"])
def test_half_preset_shrinks_timm_vits(name):
    torch.manual_seed(0)
    kw = {"img_size": 32, "depth": 2} if "base" in name else {"img_size": 32}
    model = from_timm(timm.create_model(name, pretrained=False, **kw)).eval()
    shape = describe(model)
    student, report = compress(model, preset_config(shape, "half"), recover_steps=0)
    assert report.params_after < 0.6 * report.params_before
    assert student.blocks[0].attn.num_heads == shape.blocks[0].heads - round(shape.blocks[0].heads / 3)
    x = torch.randn(2, 3, 32, 32)
    assert student(x).shape == model(x).shape


def test_identity_on_a_timm_model_is_exact():
    model = load_timm("deit_tiny_patch16_224")
    x = torch.randn(1, 3, 224, 224)
    shape = describe(model)
    assert torch.equal(apply(model, CompressionConfig.identity(shape))(x), model(x))


def test_low_rank_on_a_timm_vit():
    torch.manual_seed(0)
    model = from_timm(timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32)).eval()
    shape = describe(model)
    blocks = tuple(BlockConfig(heads=s.heads, mlp_hidden=s.mlp_hidden,
                               ranks={"qkv": None, "proj": None, "fc1": 32, "fc2": 32})
                   for s in shape.blocks)
    student = apply(model, CompressionConfig(blocks=blocks))
    assert isinstance(student.blocks[0].mlp.fc1, LowRankLinear)
    assert student(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
