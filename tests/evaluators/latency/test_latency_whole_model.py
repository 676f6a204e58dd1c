"""Whole-model ARM rows: plain ViTs recognised and decomposed, term groups that sum to the prediction,
group-scale fits that recover known scales, runtime factors from same-model pairs, and the A76 profiles'
held-out figures."""
from __future__ import annotations

import re

import numpy as np
import pytest

from evaluators.latency.derive.vit_anchored import (
    THREAD_ANCHOR,
    fit_rows,
    heldout_family,
    runtime_factors,
    scaling_checks,
    thread_checks,
    thread_summary,
    to_ort_at_ref,
)
from evaluators.latency.fit.whole_model import (
    WholeRow,
    core_type,
    fit_group_scales,
    read_rows,
    runtime_factor,
    scale_profile,
    term_groups,
    vit_shape,
)
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import load_profile


def _row(model: str, ms: float, runtime: str = "tflite", device: str = "d") -> WholeRow:
    return WholeRow(model=model, family="", shape=vit_shape(model), source="s", device=device, core="Cortex-A76",
                    ghz=2.4, threads=1, runtime=runtime, dtype="fp32", latency_ms=ms)


def test_plain_vit_names_map_to_their_shapes_and_nothing_else_does():
    t = vit_shape("deit-tiny-distilled-patch16-224")
    assert (t.embed_dim, len(t.blocks), t.blocks[0].heads, t.blocks[0].mlp_hidden, t.num_patches) == (192, 12, 3, 768, 196)
    b32 = vit_shape("vit-base-patch32-384")
    assert (b32.embed_dim, b32.patch_size, b32.img_size, b32.num_patches) == (768, 32, 384, 144)
    assert vit_shape("vit-msn-small").embed_dim == 384
    assert vit_shape("ViT-B/32").img_size == 384 and vit_shape("ViT-Tiny").embed_dim == 192
    assert vit_shape("LeViT_128") is None and vit_shape("resnet50") is None


def test_core_type_names_one_cluster_and_refuses_mixed_ones():
    assert core_type("1x Kryo 485 Prime (Cortex-A76-based; core type from device spec) @2.84 GHz; cluster of 1") == "Cortex-A76"
    assert core_type("1x Kryo 485 Prime (x) @2.84 GHz; cluster of 1; 1x Kryo 485 Gold (y) @2.32 GHz; cluster of 3") == ""
    assert core_type("Cortex-A72 @1.8GHz x4 (per section title)") == "Cortex-A72"


def test_term_groups_sum_to_the_prediction():
    prof = load_profile("rpi4-a72-ort-1t")
    for name in ("deit-tiny-distilled-patch16-224", "vit-base-patch32-224-in21k"):
        shape = vit_shape(name)
        assert term_groups(prof, shape).sum() == pytest.approx(LatencyPredictor(prof).predict_ms(shape), rel=1e-9)


def test_group_scales_are_recovered_from_rows_made_with_them():
    prof = load_profile("rpi4-a72-ort-1t")
    truth = np.array([0.2, 0.05, 1.5])
    names = ["deit-tiny-distilled-patch16-224", "deit-small-distilled-patch16-224", "deit-base-distilled-patch16-224",
             "vit-base-patch32-224-in21k", "vit-base-patch16-384"]
    rows = [_row(n, float(term_groups(prof, vit_shape(n)) @ truth)) for n in names]
    assert fit_group_scales(prof, rows) == pytest.approx(truth, rel=1e-6)
    scaled = LatencyPredictor(scale_profile(prof, truth))
    assert scaled.predict_ms(vit_shape(names[0])) == pytest.approx(rows[0].latency_ms, rel=1e-9)
    # a factor on the rows scales the fit with it
    assert fit_group_scales(prof, rows, [2.0] * len(rows)) == pytest.approx(2 * truth, rel=1e-6)


def test_rows_of_one_width_fit_one_common_scale_and_keep_the_profiles_split():
    """768-wide rows alone cannot tell how narrow models run: the three groups get one scale, so a narrow
    model's prediction is the profile's own times it (three free scales extrapolated 16-30% off)."""
    prof = load_profile("rpi4-a72-ort-1t")
    names = ["deit-base-distilled-patch16-224", "vit-base-patch32-224-in21k", "vit-base-patch16-384"]
    rows = [_row(n, float(term_groups(prof, vit_shape(n)) @ np.array([0.2, 0.05, 1.5]))) for n in names]
    s = fit_group_scales(prof, rows)
    assert s[0] == s[1] == s[2] > 0
    x = np.array([term_groups(prof, r.shape).sum() for r in rows])
    y = np.array([r.latency_ms for r in rows])
    assert s[0] == pytest.approx(np.sum(x / y) / np.sum((x / y) ** 2), rel=1e-6)  # least squared relative error
    assert len(set(fit_group_scales(prof, rows + [_row("deit-tiny-distilled-patch16-224", 50.0)]))) == 3


def test_runtime_factor_pairs_the_same_model_on_the_same_setting_only():
    rows = [_row("deit-tiny-distilled-patch16-224", 100.0), _row("deit-tiny-distilled-patch16-224", 120.0, "ort"),
            _row("deit-small-distilled-patch16-224", 300.0), _row("deit-small-distilled-patch16-224", 330.0, "ort"),
            _row("vit-msn-small", 999.0, "ort", device="other")]  # no partner on its device: not a pair
    f = runtime_factor(rows, "ort", "tflite")
    assert (f.median, f.low, f.high, f.n) == (pytest.approx(1.15), pytest.approx(1.1), pytest.approx(1.2), 2)
    assert runtime_factor(rows, "ort", "tflite", models=re.compile("small")).n == 1
    with pytest.raises(ValueError, match="no model ran in both"):
        runtime_factor(rows, "ncnn", "tflite")


def test_a76_fit_on_the_published_rows_holds_out_by_family_within_the_targets():
    rows = read_rows()
    fit = fit_rows(rows)
    assert len(fit) == 36 and {r.ghz for r in fit} == {2.84, 2.32}
    f = runtime_factors(rows)
    assert 1.0 < f["ort/tflite"]["median"] < 1.2 and f["ort/tflite"]["pairs"] == 4
    held, per_model = heldout_family(load_profile("rpi4-a72-ort-1t"), fit, f)
    assert held["n"] == 36 and held["within_25pct"] >= 0.8
    checks = scaling_checks(per_model)
    assert len(checks) == 3 and all(abs(c["error"]) <= 0.15 for c in checks)
    # DeiT-S / DeiT-T is measured near 3.1, well under the 3.6 MAC ratio the Pi 4 profile predicts
    assert 2.9 < checks[0]["measured"] < 3.3


def test_shipped_a76_profiles_carry_their_held_out_figures():
    for name in ("rpi5-a76-ort-1t", "rpi5-a76-ort-4t", "snapdragon-855plus-ort-1t", "rk3588-a76-ort-4t"):
        v = load_profile(name).validation
        assert v["heldout_family"]["within_25pct"] >= 0.8 and len(v["size_scaling"]) == 3, name
    one, four = LatencyPredictor("rpi5-a76-ort-1t"), LatencyPredictor("rpi5-a76-ort-4t")
    shape = vit_shape("deit-small-distilled-patch16-224")
    assert four.predict_ms(shape) < one.predict_ms(shape)


def test_int8_scales_are_recovered_and_applied_to_the_int8_linears_only():
    from evaluators.latency.fit.whole_model import fit_int8_scales, scale_int8
    from spaces.config_presets import preset_config

    prof = load_profile("rpi4-a72-ort-1t")
    cfg = lambda shape: preset_config(shape, "int8")
    names = ["deit-tiny-distilled-patch16-224", "deit-small-distilled-patch16-224", "vit-base-patch32-224-in21k",
             "vit-base-patch16-384"]
    truth = np.array([0.3, 2.0])
    rows = [_row(n, float(term_groups(prof, vit_shape(n), cfg(vit_shape(n)), split_int8=True) @ np.r_[1.0, truth]))
            for n in names]
    assert fit_int8_scales(prof, rows, cfg, [1.0] * len(rows)) == pytest.approx(truth, rel=1e-6)
    scaled = scale_int8(prof, *truth)
    assert scaled.core["linear/fp32"] == prof.core["linear/fp32"]
    assert scaled.core["linear/w8a32"]["ns_per_mac"] == pytest.approx(0.3 * prof.core["linear/w8a32"]["ns_per_mac"])
    assert scaled.core["linear/w8a8"]["ns_per_act"] == prof.core["linear/w8a8"]["ns_per_act"]
    # the split sums to the whole prediction, like the fp32 groups
    shape = vit_shape(names[0])
    assert term_groups(prof, shape, cfg(shape), split_int8=True).sum() == pytest.approx(
        term_groups(prof, shape, cfg(shape)).sum(), rel=1e-12)


def test_shipped_a76_profiles_price_int8_vits_from_measured_int8_rows():
    v = load_profile("rpi5-a76-ort-1t").validation["int8"]
    assert v["fit_rows"]["n"] == 16 and v["heldout_family"]["within_25pct"] >= 0.8


def test_qed_rows_carry_the_sources_own_spread_and_others_none():
    """qed's ``|std`` cell (µs, quoted in the notes) in ms beside its mean; sources without one give None."""
    rows = read_rows()
    s10 = next(r for r in rows if r.source == "qed-usc/mobile-ml-benchmark" and r.model == "deit-base-distilled-patch16-224"
               and r.device.startswith("Samsung Galaxy S10") and r.latency_ms == 1217.16)
    assert s10.std_ms == pytest.approx(26.235)  # csv line 6: mean 1217160.0, std 26235
    assert all(r.std_ms is None for r in rows if r.source != "qed-usc/mobile-ml-benchmark")
    assert all(r.std_ms is not None and r.std_ms >= 0 for r in rows if r.source == "qed-usc/mobile-ml-benchmark")


def test_levits_arm_server_rows_are_per_batch_and_tied_to_no_core():
    """LeViT's one-thread Arm server timings (images/s at batch 16) are stored per batch of 16 and carry no core
    type, so no profile is fitted or checked on them (PROVENANCE section 11)."""
    rows = {r.model: r for r in read_rows(batches=(16,)) if r.source == "facebookresearch/LeViT"}
    assert set(rows) == {"deit-tiny-distilled-patch16-224", "deit-small-distilled-patch16-224"}
    assert rows["deit-tiny-distilled-patch16-224"].latency_ms == pytest.approx(16 / 16.789331601416873 * 1000, abs=1e-3)
    assert {(r.core, r.threads, r.batch) for r in rows.values()} == {("", 1, 16)}
    ratio = rows["deit-small-distilled-patch16-224"].latency_ms / rows["deit-tiny-distilled-patch16-224"].latency_ms
    assert ratio == pytest.approx(2.218, abs=1e-3)
    assert not [r for r in read_rows() if r.source == "facebookresearch/LeViT"]  # batch 1 readers never see them


def test_spread_weights_trust_no_row_beyond_the_floor_and_equal_weights_change_nothing():
    from evaluators.latency.fit.whole_model import fit_group_scales, spread_weights

    rows = fit_rows(read_rows())
    w = spread_weights(rows, 0.05)
    for r, x in zip(rows, w):
        assert x == pytest.approx(1 / max(r.std_ms / r.latency_ms, 0.05))
    assert max(w) == pytest.approx(20.0)  # most rows vary by less than the floor: all of them weigh 1 / floor
    base = load_profile("rpi4-a72-ort-1t")
    f = runtime_factors(read_rows())
    factors = [to_ort_at_ref(r, f) for r in rows]
    plain = fit_group_scales(base, rows, factors)
    assert fit_group_scales(base, rows, factors, [7.0] * len(rows)) == pytest.approx(plain, rel=1e-9)


def test_thread_model_checks_hold_the_anchor_out_and_shrink_the_one_thread_ratios():
    """k reproduces the anchor's measured speed-up (so it is no check itself), every multi-thread setting of the
    A76 is checked, and with the rest not sped up a smaller model gains less: its ratio to a larger one falls."""
    rows = read_rows()
    base, f = load_profile("rpi4-a72-ort-1t"), runtime_factors(rows)
    checks = thread_checks(base, rows, f, "Cortex-A76")
    assert len(checks) == 8 and {c["threads"] for c in checks} == {2, 3}
    assert all(THREAD_ANCHOR not in c["models"] for c in checks)
    for c in checks:
        assert c["k"] > 1.0 and c["predicted"] < c["one_thread_predicted"], c
        assert c["error"] == pytest.approx(c["predicted"] / c["measured"] - 1, abs=2e-3)
    # the anchor: (gemm + weights) / k + rest over the one-thread total is 1 / its measured speed-up
    fit = fit_rows(rows)
    s = fit_group_scales(base, fit, [to_ort_at_ref(r, f) for r in fit])
    g = term_groups(base, vit_shape(THREAD_ANCHOR)) * s
    for c in checks:
        assert g.sum() / ((g[0] + g[1]) / c["k"] + g[2]) == pytest.approx(c["anchor_speedup"], rel=2e-3)
    t = thread_summary(checks)
    assert t["n"] == 8 and t["worst_abs_error"] == max(abs(c["error"]) for c in checks)
    assert thread_summary([]) == {"n": 0, "within_15pct": None, "worst_abs_error": None}


def test_four_thread_a76_profiles_list_their_thread_checks_and_a_confidence_that_follows():
    rows = read_rows()
    expected = thread_checks(load_profile("rpi4-a72-ort-1t"), rows, runtime_factors(rows), "Cortex-A76")
    for name in ("rpi5-a76-ort-4t", "rk3588-a76-ort-4t", "snapdragon-855plus-ort-4t"):
        p = load_profile(name)
        t = p.validation["thread_model_checks"]
        assert [c["error"] for c in t["checks"]] == [c["error"] for c in expected], name
        assert (p.confidence == "low") == (t["worst_abs_error"] > 0.15), name
    assert "thread_model_checks" not in load_profile("rpi5-a76-ort-1t").validation
