"""``maec calibrate``: fits recover a known device, bad input is one clear error, HAT CSVs work."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evaluators.latency.errors import CalibrationError
from evaluators.latency.fit.calibrate import calibrate_file
from evaluators.latency.measure.items import spec_ops
from evaluators.latency.measure.model_items import model_items
from evaluators.latency.measure.op_items import op_items
from evaluators.latency.measure.ort_timing import CSV_COLUMNS
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DEFAULT_PROFILE, load_profile


def _write(path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in CSV_COLUMNS})


def _synthetic_rows(noise: float, seed: int = 0, call_ms: float | None = None) -> list[dict]:
    """The standard sweep's rows timed by a known device (the default profile, its per-call cost replaced by
    ``call_ms`` when given; a row with no operator needs some, the host's 8 µs by default) with seeded noise."""
    truth = LatencyPredictor(DEFAULT_PROFILE)
    call_ms = (truth.call_ms or 0.008) if call_ms is None else call_ms
    rng = np.random.default_rng(seed)
    rows = []
    for item in op_items("standard", seed) + model_items("standard", seed):
        terms = list(spec_ops(item.spec))
        ms = call_ms + sum(truth.op_ms(op) * n for op, n in terms)
        rows.append({"bench": item.bench, "row_kind": item.row_kind, "spec": json.dumps(item.spec),
                     "latency_ms": f"{ms * (1 + noise * rng.standard_normal()):.6f}", "threads": 1,
                     "device": "synthetic", "cpu_model": "test", "runtime": "onnxruntime-cpu"})
    return rows


def test_a_fit_recovers_a_known_device_and_predicts_held_out_models(tmp_path):
    path = tmp_path / "m.csv"
    _write(path, _synthetic_rows(noise=0.02))
    prof = calibrate_file(path, name="synthetic", fit_on="ops", seed=0)
    assert prof.validation["heldout_models"]["n"] >= 10
    assert prof.validation["heldout_models"]["within_10pct"] >= 0.9
    assert prof.validation["heldout"]["mape"] < 0.05
    assert prof.threads == 1 and prof.confidence == "high"


def test_whole_model_rows_only_scale_a_base_profile(tmp_path):
    rows = [r for r in _synthetic_rows(noise=0.0) if r["row_kind"] == "model"]
    for r in rows:
        r["latency_ms"] = f"{2 * float(r['latency_ms']):.6f}"  # a device twice as slow
    path = tmp_path / "models.csv"
    _write(path, rows)
    prof = calibrate_file(path, name="anchors")
    assert prof.confidence == "low"
    base = load_profile(DEFAULT_PROFILE)
    assert prof.core["linear/fp32"]["ns_per_mac"] == pytest.approx(2 * base.core["linear/fp32"]["ns_per_mac"], rel=0.05)


@pytest.mark.parametrize("content, message", [
    ("", "no data rows"),
    ("a,b\n1,2\n", "not a `maec measure` CSV"),
    ("bench,row_kind,spec,latency_ms,threads\nx,op,{not json,1.0,1\n", "cannot be read"),
    ('bench,row_kind,spec,latency_ms,threads\nx,op,"{""ops"": []}",-1,1\n', "positive"),
    ('bench,row_kind,spec,latency_ms,threads\nx,op,"{""ops"": [[{""name"": ""a"", ""kind"": ""warp""}, 1]]}",1,1\n',
     "unknown op kind"),
    ('bench,row_kind,spec,latency_ms,threads\nx,op,"{""ops"": []}",1,1\ny,op,"{""ops"": []}",1,4\n', "mixes thread"),
])
def test_bad_csvs_raise_one_sentence(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        calibrate_file(path, name="x")


def test_missing_file_and_bad_name(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        calibrate_file(tmp_path / "none.csv", name="x")
    (tmp_path / "a.csv").write_text("bench\n")
    with pytest.raises(CalibrationError, match="plain file name"):
        calibrate_file(tmp_path / "a.csv", name="../evil")


def test_a_hat_csv_gives_a_pytorch_profile_with_baselines(arm_dir):
    prof = calibrate_file(arm_dir / "hat-raspberrypi" / "wmt14enfr_cpu_raspberrypi_all.csv", name="hat-enfr")
    v = prof.validation
    assert v["heldout"]["n"] > 300 and v["heldout"]["mape"] < v["baselines"]["flops_proportional"]["mape"]
    assert "PyTorch" in prof.runtime and prof.threads == 4
    assert prof.provenance[0]["commit"] and "dropped" in prof.provenance[0]["rows_used"]


def test_hat_outlier_rules_drop_the_disturbed_start_and_spikes_only():
    from evaluators.latency.fit.sources import hat_outliers

    rng = np.random.default_rng(0)
    ms = list(200 + 20 * rng.standard_normal(300))
    std = [4.0] * 300
    ms[:40] = [2000.0 + 10 * i for i in range(40)]      # a disturbed start-up run
    ms[41] = 190.0                                         # a normal row inside the tail of that run's window
    ms[150] = 700.0                                        # a spike above 2x the median
    std[200] = 0.4 * ms[200]                               # repeats that disagree
    out = hat_outliers(ms, std)
    assert out["startup"] == list(range(len(out["startup"]))) and 40 <= len(out["startup"]) <= 60
    assert out["spike"] == [150, 200]


def test_a_weight_footprint_is_recovered_from_the_deep_chains_and_absent_without_one(tmp_path):
    """A device whose weights beyond 8 MB per call cost 1 ns per byte (the truth): the sweep's chains of
    1-12 blocks show it, the fit finds the cache size and the cost, and held-out models keep within 10%."""
    from evaluators.latency.fit.calibrate import read_measure_csv, sample_weight_bytes
    from evaluators.latency.predict.cost import footprint_ms

    truth_fp = {"cache_bytes": 8e6, "ns_per_byte": 1.0}
    rows = _synthetic_rows(noise=0.0)
    path = tmp_path / "m.csv"
    _write(path, rows)
    samples, _ = read_measure_csv(path)
    for r, s in zip(rows, samples):
        r["latency_ms"] = f"{float(r['latency_ms']) + footprint_ms(sample_weight_bytes(s), truth_fp):.6f}"
    _write(path, rows)
    prof = calibrate_file(path, name="deep", fit_on="ops", seed=0)
    fp = prof.overhead["footprint"]
    assert fp["cache_bytes"] == pytest.approx(8e6, abs=1e6) and fp["ns_per_byte"] == pytest.approx(1.0, rel=0.15)
    assert prof.validation["heldout_models"]["within_10pct"] >= 0.9
    _write(path, _synthetic_rows(noise=0.02))  # the same device without the footprint, 2% noise: none is bought
    assert "footprint" not in calibrate_file(path, name="flat", fit_on="ops", seed=0).overhead


def test_merge_terms_are_fitted_last_and_leave_every_other_term_as_without_merge_rows(tmp_path):
    """Merge rows are static exports whose plain operators run faster than in the dynamic rows (here: 8% of
    each merge row): fitted last, the merge terms absorb that, and every other term is exactly the fit
    without them; a joint fit would move the plain operators' terms."""
    from dataclasses import replace

    from evaluators.latency.fit.calibrate import (
        fit_merge_last,
        fit_with_footprint,
        has_merge,
        predict_with_footprint,
        read_measure_csv,
    )
    from evaluators.latency.fit.fit import fit_coefficients

    path = tmp_path / "m.csv"
    _write(path, _synthetic_rows(noise=0.01))
    samples, _ = read_measure_csv(path)
    samples = [replace(s, latency_ms=0.92 * s.latency_ms) if has_merge(s) else s for s in samples]
    merging = [s for s in samples if has_merge(s)]
    assert len(merging) >= 10
    coefs, fp = fit_with_footprint([s for s in samples if not has_merge(s)])
    full = fit_merge_last(samples, coefs, fp)
    assert {c: v for c, v in full.items() if "merge/fp32" not in c} == coefs
    assert any(v > 0 for c, v in full.items() if "merge/fp32" in c)
    pred = predict_with_footprint(merging, full, fp)
    assert np.all(np.abs(pred / np.array([s.latency_ms for s in merging]) - 1) < 0.1)
    joint = fit_coefficients(samples, robust=True)
    assert joint[("op_us", "linear/fp32")] != pytest.approx(coefs[("op_us", "linear/fp32")], rel=1e-3)


def test_fp16_linears_are_priced_as_the_fp32_kernel_they_run(tmp_path):
    """fp16 weights are folded to fp32 by ONNX Runtime at session start (toolkit.onnx_quant): a calibrated
    profile prices them with exactly the fp32 terms."""
    path = tmp_path / "m.csv"
    _write(path, _synthetic_rows(noise=0.02))
    prof = calibrate_file(path, name="tied", fit_on="ops", seed=0)
    assert prof.core["linear/fp16"] == prof.core["linear/fp32"]
    assert prof.overhead["op_us"]["linear/fp16"] == prof.overhead["op_us"]["linear/fp32"]


def test_the_call_row_pins_the_per_call_cost(tmp_path):
    """A device that pays 40 µs per call: the sweep's empty call row (``call_v784``) lets the fit find that
    cost instead of spreading it over every operator's overhead, which a whole model pays once per operator."""
    rows = _synthetic_rows(noise=0.01, call_ms=0.04)
    assert rows[0]["bench"] == "call_v784" and json.loads(rows[0]["spec"]) == {"ops": [], "io": 0}
    path = tmp_path / "m.csv"
    _write(path, rows)
    prof = calibrate_file(path, name="called", fit_on="ops", seed=0)
    assert prof.overhead["call_us"] == pytest.approx(40.0, rel=0.1)
    assert prof.validation["heldout_models"]["within_10pct"] >= 0.9
