import torch

from mae.model import create_model, describe, masked_patch_loss, patchify, random_masking, sincos_pos_embed, unpatchify


def test_random_masking_keeps_exact_count_and_restores_order():
    x = torch.arange(2 * 49 * 3, dtype=torch.float32).reshape(2, 49, 3)
    visible, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(1))
    assert visible.shape == (2, 12, 3)  # int(49 * 0.25)
    assert mask.sum(dim=1).tolist() == [37.0, 37.0]
    # visible tokens are exactly those with mask 0, in shuffled order; putting (visible, masked)
    # back through ids_restore recovers the original sequence
    for n in range(2):
        kept = x[n][mask[n] == 0]
        assert sorted(visible[n, :, 0].tolist()) == sorted(kept[:, 0].tolist())
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    shuffled = torch.gather(x, 1, ids_shuffle.unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(shuffled[:, :12], visible)
    restored = torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(restored, x)


def test_patchify_round_trip():
    imgs = torch.randn(3, 1, 28, 28)
    p = patchify(imgs, 4)
    assert p.shape == (3, 49, 16)
    assert torch.equal(unpatchify(p, 4, 1), imgs)
    assert torch.equal(p[0, 1], imgs[0, 0, 0:4, 4:8].reshape(-1))  # patch 1 is row 0, column 1


def test_loss_counts_masked_patches_only():
    pred, target = torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    target[0, 0] = 10.0  # a huge error on a visible patch is ignored
    target[0, 2] = 1.0
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert masked_patch_loss(pred, target, mask).item() == 0.5  # (0 + 1) / 2 masked patches


def test_mae_forward_shapes_and_gradient_only_through_masked_loss():
    mae = create_model("mae_vit_test_p7_28", kind="mae")
    imgs = torch.randn(2, 1, 28, 28)
    loss, pred, mask = mae(imgs, mask_ratio=0.75)
    assert pred.shape == (2, 16, 49) and mask.shape == (2, 16)
    assert mask.sum().item() == 2 * (16 - int(16 * 0.25))
    loss.backward()
    assert mae.decoder_pred.weight.grad is not None and mae.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert mae.pos_embed.grad is None  # fixed sin-cos table


def test_norm_pix_target_is_normalised_per_patch():
    mae = create_model("mae_vit_test_p7_28", kind="mae", norm_pix_loss=True)
    t = mae.target(torch.rand(2, 1, 28, 28))
    assert torch.allclose(t.mean(-1), torch.zeros(2, 16), atol=1e-5)


def test_classifier_reuses_encoder_names_and_default_preset():
    clf = create_model("mae_vit_tiny_p4_28")
    assert clf(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    a = clf.arch
    assert (a.patch_size, a.num_patches, a.embed_dim, a.depth, a.num_heads) == (4, 49, 192, 6, 3)
    mae = create_model("mae_vit_tiny_p4_28", kind="mae")
    enc = mae.encoder_state_dict()
    clf_keys = set(clf.state_dict())
    assert set(enc) <= clf_keys and {k for k in clf_keys if k not in enc} == {
        "fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}


def test_sincos_matches_mae_reference_values():
    emb = sincos_pos_embed(8, 2)  # [1, 5, 8]
    assert emb.shape == (1, 5, 8) and torch.equal(emb[0, 0], torch.zeros(8))
    # token 2 = grid row 0, column 1: the first half encodes the column (MAE's w-first meshgrid)
    assert torch.allclose(emb[0, 2, :2], torch.tensor([torch.sin(torch.tensor(1.0)), torch.sin(torch.tensor(0.01))]))


def test_describe_reports_block_shapes():
    shape = describe(create_model("mae_vit_tiny_p4_28", kind="mae"))
    assert shape.is_mae and len(shape.blocks) == 6 and len(shape.decoder_blocks) == 2
    assert shape.blocks[0].linear_dims()["qkv"] == (192, 576)
