"""The held-out-sources check (benchmarks/latency_arm_validation.py section 4): ncnn's measured runtime factor,
which rows count, and thread-less rows once per board."""
from __future__ import annotations

import pytest

from evaluators.latency.derive.heldout_sources import (
    INT8_ROLE,
    NCNN,
    NETSPRESSO,
    _ratio,
    source_checks,
    summary,
)
from evaluators.latency.derive.vit_anchored import ncnn_factor
from evaluators.latency.fit.whole_model import read_rows


@pytest.fixture(scope="module")
def rows():
    return read_rows()


def test_ncnn_factor_is_the_geometric_mean_of_the_two_core_readings(arm_dir, rows):
    f = ncnn_factor(rows)
    # by hand from the CSV: ncnn 991.95 ms on the 855+ (2.96 / 2.42 GHz), TFLite 852.155 / 990.831 ms on the 855
    prime, gold = 991.95 * 2.96 / (852.155 * 2.84), 991.95 * 2.42 / (990.831 * 2.32)
    assert f["readings"] == {"prime": round(prime, 4), "gold": round(gold, 4)}
    assert f["ncnn_fp16_over_tflite_fp32"] == pytest.approx((prime * gold) ** 0.5, abs=1e-4)
    lo, hi = f["over_ort_range"]["fp16"]
    assert lo < f["over_ort"]["fp16"] < hi
    # fp32 ncnn (no fp16 arithmetic) is the fp16 factor times a measured fp16 speed-up > 1
    assert f["over_ort"]["fp32"] == pytest.approx(f["over_ort"]["fp16"] * f["fp32_over_fp16"], rel=1e-4)
    assert f["fp32_over_fp16"] > 1.5


def test_rows_a_profile_is_built_from_are_anchors_not_tests(arm_dir, rows):
    checks = source_checks(rows)
    role = {(c["profile"], c["row"], c["measured_ms"]): c["role"] for c in checks}
    for (profile, row, _), r in role.items():
        if NCNN not in row:
            continue
        anchor = (profile.startswith(("snapdragon-8gen2", "dimensity-9300")) or profile == "rpi4-a72-ort-1t"
                  or profile == "snapdragon-855plus-ort-1t" or (profile.endswith("-4t") and not profile.startswith("rpi4")))
        assert r.startswith("anchor") == anchor, (profile, row)
    # the two ncnn rows no profile is built from
    held = {c["profile"] for c in checks if NCNN in c["row"] and c["role"] == "held out"}
    assert held == {"rpi4-a72-ort-4t", "rpi5-a76-ort-1t"}


def test_a_thread_less_row_is_one_check_per_board_against_both_thread_counts(arm_dir, rows):
    checks = [c for c in source_checks(rows) if c["source"] == NETSPRESSO]
    boards = [c["profile"] for c in checks if c["dtype"] != "int8"]
    assert sorted(boards) == ["rpi4-a72-ort-1t / rpi4-a72-ort-4t", "rpi5-a76-ort-1t / rpi5-a76-ort-4t"]
    for c in checks:
        lo, hi = c["predicted_ms"]
        assert lo < hi  # 4 threads faster than 1
    assert all(c["role"] == INT8_ROLE for c in checks if c["dtype"] == "int8")


def test_span_ratio_is_one_inside_and_the_nearest_end_outside():
    assert _ratio((100.0, 200.0), 150.0) == 1.0
    assert _ratio((100.0, 200.0), 50.0) == 2.0
    assert _ratio((100.0, 200.0), 400.0) == 0.5
    assert _ratio(120.0, 100.0) == 1.2


def test_summary_counts_only_held_out_rows(arm_dir, rows):
    f = ncnn_factor(rows)
    checks = source_checks(rows, f)
    s = summary(checks, f)
    held = [c for c in checks if c["role"] == "held out"]
    assert s["n"] == len(held) and s["anchors"] + s["int8_shown"] + s["n"] == len(checks)
    assert s["within_25pct"] == sum(abs(c["ratio"] - 1) <= 0.25 for c in held) / len(held)


def test_snps_pruned_deits_are_held_out_rows_of_the_four_thread_pi4_profile(arm_dir, rows):
    """The four SNP-pruned DeiTs (priced from their per-layer widths) count as held-out rows of rpi4-a72-ort-4t,
    and the summary says how many rows each source gives."""
    from evaluators.latency.fit.snp_pruned import PRUNED, SNP_REPO

    f = ncnn_factor(rows)
    checks = source_checks(rows, f)
    pruned = [c for c in checks if c["model"] in PRUNED]
    assert sorted(c["model"] for c in pruned) == sorted(PRUNED)
    assert {(c["profile"], c["role"]) for c in pruned} == {("rpi4-a72-ort-4t", "held out")}
    s = summary(checks, f)
    assert s["by_source"][SNP_REPO][1] == 7 and sum(n for _, n in s["by_source"].values()) == s["n"]


def test_the_validation_benchmark_runs_and_prints_every_section(arm_dir):
    """``benchmarks/latency_arm_validation.py`` (fit only, seconds) ends cleanly and prints the figures the
    README quotes: held-out sources, the worst size-scaling check with its per-device reason, the pruning
    speed-ups and the DeiT-S / DeiT-T table."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "latency_arm_validation.py")], check=False,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MAE_ARM_LATENCY_DIR": str(arm_dir)})
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("## 1. Runtime transfer factors", "held out: 11 rows", "fitted on each device's rows alone",
                 "worst pruning speed-up error of the shipped profile", "DeiT-S / DeiT-T (224 px, fp32) as measured",
                 "sensitivity, not shipped", "the decision, on fresh rows", "| Cortex-A76 (shipped) | 8 |",
                 "## 6. This project's reference kit on boards"):
        assert line in out.stdout, line
