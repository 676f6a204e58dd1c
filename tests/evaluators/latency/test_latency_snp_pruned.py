"""SNP's structurally pruned DeiTs (evaluators/latency/fit/snp_pruned.py): the reading of its ratio files,
checked against SNP's own MAC counts, and the operator lists that price them."""
from __future__ import annotations

from evaluators.latency.fit import snp_pruned
from evaluators.latency.fit.snp_pruned import PRUNED, base_shape, block_widths, pruned_ops, read_ratios, row_ops
from evaluators.latency.fit.whole_model import read_rows
from evaluators.latency.predict.ops import decompose
from evaluators.latency.predict.predictor import LatencyPredictor

# the README's "GFLOPs" column (timm's MAC count) of each pruned row
README_GMACS = {"deit-tiny-patch16-224+snp-0.6g": 0.6, "deit-small-patch16-224+snp-2.0g": 2.0,
                "deit-small-patch16-224+snp-1.3g": 1.3, "deit-base-patch16-224+snp-6.4g": 6.4}


def gmacs(ops) -> float:
    return sum(o.macs for o in ops) / 1e9


def test_every_pruned_row_has_ratios_for_every_block():
    ratios = read_ratios()
    assert set(ratios) == set(PRUNED)
    for model, r in ratios.items():
        assert len(r) == 3 * 12 + 1 and "add_24" in r, model
        assert all(0.0 <= v < 1.0 for v in r.values()), model
    csv_models = {r.model for r in read_rows() if r.source == snp_pruned.SNP_REPO and r.shape is None}
    assert csv_models == set(PRUNED)


def test_widths_read_as_fractions_removed_give_snps_own_mac_counts():
    """0.638 / 2.037 / 1.265 / 6.380 GMACs against the README's 0.6 / 2.0 / 1.3 / 6.4, to its one decimal."""
    for model, printed in README_GMACS.items():
        assert round(gmacs(pruned_ops(model)), 1) == printed, model


def test_the_other_readings_of_the_ratios_miss_the_mac_counts():
    """Fractions kept instead of removed, or the residual stream left unpruned, do not give SNP's counts."""
    for model, printed in README_GMACS.items():
        r = read_ratios()[model]
        kept = {k: 1.0 - v for k, v in r.items()}
        no_residual = {**r, "add_24": 0.0}
        for other in (kept, no_residual):
            assert abs(gmacs(pruned_ops(model, other)) - printed) > 0.05, model


def test_tinys_widths_are_whole_channels_per_head():
    res, widths = block_widths(read_ratios()["deit-tiny-patch16-224+snp-0.6g"], 192, 3)
    assert res == 192 - 39  # add_24: 0.203125 x 192 = 39 channels
    assert widths[0] == (64 - 25, 64 - 13, 768 - 154)  # 0.390625 / 0.203125 x 192 over 3 heads; 0.2005 x 768


def test_pruned_ops_price_unequal_qk_and_v_widths_exactly():
    model = "deit-small-patch16-224+snp-1.3g"
    res, widths = block_widths(read_ratios()[model], 384, 6)
    ops = {o.name: o for o in pruned_ops(model)}
    tokens = 197
    for i, (qk, v, mlp) in enumerate(widths):
        assert ops[f"blocks.{i}.attn.qkv"].n == 6 * (2 * qk + v)
        assert ops[f"blocks.{i}.attn.proj"].k == 6 * v and ops[f"blocks.{i}.attn.proj"].n == res
        # q k^T over qk and attn v over v: m T h (qk + v) MACs
        assert ops[f"blocks.{i}.attn.core"].macs == tokens * tokens * 6 * (qk + v)
        assert ops[f"blocks.{i}.mlp.fc1"].n == mlp and ops[f"blocks.{i}.mlp.fc1"].k == res
    assert ops["patch_embed"].n == res and ops["head"].k == res


def test_pruned_models_predict_faster_than_their_base_and_plain_rows_use_token_pooling():
    pred = LatencyPredictor("rpi4-a72-ort-4t")
    for model in PRUNED:
        base = base_shape(model)
        assert row_ops(base.name, base) == decompose(base, global_pool="token")
        assert pred.predict_ops_ms(row_ops(model)) < pred.predict_ops_ms(row_ops(base.name, base))


def test_extract_refuses_a_path_that_is_not_a_git_directory(tmp_path, capsys):
    assert snp_pruned.main([str(tmp_path)]) == 2
    assert "is not a git directory" in capsys.readouterr().err
    assert read_ratios()  # the shipped CSV is untouched


def test_per_head_rounding_matters_only_where_a_file_gives_no_whole_channels_per_head():
    for model in PRUNED:
        same = pruned_ops(model, per_head="nearest") == pruned_ops(model)
        assert same == (model != "deit-base-patch16-224+snp-6.4g"), model
