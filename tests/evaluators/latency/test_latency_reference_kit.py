"""The reference kit (``maec measure --sweep reference``) and its check (``maec validate``)."""
from __future__ import annotations

import csv
import json

import pytest

from cli.main import main
from evaluators.latency.fit.reference_check import (
    BOARD_PROFILES,
    WHOLE_COLUMNS,
    ModelCheck,
    append_rows,
    board_runs,
    board_status,
    check_ratios,
    check_whole_rows,
    mixed_cores,
    summary,
    whole_rows,
)
from evaluators.latency.fit.whole_model import read_rows, vit_shape
from evaluators.latency.measure.kit import build_kit, sweep_items
from evaluators.latency.measure.ort_timing import CSV_COLUMNS, run_manifest
from evaluators.latency.measure.reference_items import REFERENCE_MODELS, reference_item
from evaluators.latency.predict.profile import load_profile


def _without_name(shape: dict) -> dict:
    return {k: v for k, v in shape.items() if k != "name"}


def test_reference_models_have_the_shapes_the_arm_data_gives_them():
    """The kit times exactly the architectures the data CSV's rows of the same name are priced as."""
    items = sweep_items("reference")
    assert [i.bench for i in items] == [f"ref_{n}" for n in REFERENCE_MODELS]
    for item in items:
        name = item.bench.removeprefix("ref_")
        assert _without_name(item.spec["shape"]) == _without_name(vit_shape(name).to_dict())
        assert item.spec["global_pool"] == "token" and item.row_kind == "model"
    with pytest.raises(ValueError, match="unknown reference model 'deit-huge'"):
        reference_item("deit-huge")


@pytest.fixture(scope="module")
def deit_tiny_run(tmp_path_factory) -> tuple:
    """DeiT-Tiny built by the kit and timed here (two runs, one pass): a real ``run_kit.py`` CSV row."""
    folder = tmp_path_factory.mktemp("refkit")
    build_kit([reference_item("deit-tiny-patch16-224")], folder)
    out = folder / "host.csv"
    assert run_manifest(folder, out, threads=1, repeats=2, warmup=0, rounds=1, min_seconds=0.0, progress=False) == 1
    with open(out, newline="") as f:
        return out, list(csv.DictReader(f))


def test_validate_prices_a_timed_reference_model_as_inspect_does(deit_tiny_run, capsys):
    out, (row,) = deit_tiny_run
    assert "maec validate" in (out.parent / "README.txt").read_text()  # the kit says what to do with its CSV
    code = main(["validate", str(out), "--device", "rpi4-a72-ort-1t", "--json"])
    data = json.loads(capsys.readouterr().out)
    (m,) = data["models"]
    assert m["model"] == "deit-tiny-patch16-224" and m["measured_ms"] == pytest.approx(float(row["latency_ms"]))
    assert main(["inspect", "--model", "timm:deit_tiny_patch16_224", "--device", "rpi4-a72-ort-1t", "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)["latency_ms"]
    assert m["predicted_ms"] == pytest.approx(inspected, rel=1e-4)  # inspect rounds to 0.1 µs
    assert data["ratios"] == [] and data["summary"]["models"] == 1
    assert code == (0 if abs(m["error"]) <= 0.25 else 1)  # an x86 host against the Pi 4 profile: whichever it is


def test_size_ratios_and_targets():
    models = [ModelCheck("deit-tiny-patch16-224", 10.0, 11.0), ModelCheck("deit-small-patch16-224", 30.0, 36.0),
              ModelCheck("vit-base-patch32-224", 50.0, 30.0)]
    (r,) = check_ratios(models)  # DeiT-B and ViT-B/16 not timed: one pair
    assert (r.larger, r.smaller) == ("deit-small-patch16-224", "deit-tiny-patch16-224")
    assert r.measured == 3.0 and r.predicted == pytest.approx(36 / 11) and r.error == pytest.approx(12 / 11 - 1)
    s = summary(models, [r])
    assert s["within_25pct"] == pytest.approx(2 / 3) and not s["targets_met"]  # ViT-B/32 is -40%
    assert summary(models[:2], [r])["targets_met"]
    assert not summary([], [])["targets_met"]


def _arm_row(row: dict) -> dict:
    return {**row, "os": "Linux 6.6.51+rpt-rpi-v8 aarch64", "cpu_model": "BCM2835 (4x Cortex-A72)", "max_mhz": "1800",
            "device": "Raspberry Pi 4 Model B Rev 1.5"}


def test_arm_runs_become_data_rows_that_read_back(deit_tiny_run, tmp_path):
    _, (row,) = deit_tiny_run
    with pytest.raises(ValueError, match="not on ARM"):
        whole_rows([row], source_file="host.csv", source_commit="abc")
    rows = whole_rows([_arm_row(row)], source_file="pi4.csv", source_commit="abc")
    assert list(rows[0]) == list(WHOLE_COLUMNS)
    data = tmp_path / "runs.csv"
    assert append_rows(rows, data) == 1 and append_rows(rows, data) == 1  # the header once
    back = read_rows(data)
    assert len(back) == 2 and data.read_text().count("model,family") == 1
    r = back[0]
    assert (r.model, r.core, r.ghz, r.threads, r.runtime, r.dtype) == (
        "deit-tiny-patch16-224", "Cortex-A72", 1.8, 1, "ort", "fp32")
    assert r.shape == vit_shape("deit-tiny-patch16-224") and r.latency_ms == pytest.approx(float(row["latency_ms"]), abs=5e-4)
    assert mixed_cores("RK3588 (4x Cortex-A55 + 4x Cortex-A76)") and not mixed_cores("4x Cortex-A76 @2.4 GHz")


def test_validate_bad_input_is_one_sentence_and_exit_2(deit_tiny_run, tmp_path, capsys):
    out, (row,) = deit_tiny_run
    no_ref = tmp_path / "ops.csv"
    with open(no_ref, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerow({**row, "bench": "call_v784", "row_kind": "op", "spec": json.dumps({"ops": []})})
    arm = tmp_path / "rk3588.csv"
    with open(arm, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerow({**_arm_row(row), "cpu_model": "RK3588 (4x Cortex-A55 + 4x Cortex-A76)"})
    for argv, message in (
            (["validate", str(no_ref)], "has no reference rows"),
            (["validate", str(out), "--add-to-data", str(tmp_path / "d.csv")], "not on ARM"),
            (["validate", str(arm), "--add-to-data", str(tmp_path / "d.csv")], "--cpu-cores"),
            (["measure", "--out", "x.csv", "--sweep", "huge"], "--sweep must be one of"),
            (["measure", "--out", "x.csv", "--sweep", "reference", "--what", "ops"], "whole models only")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d.csv").exists()  # nothing half-written


def test_board_runs_in_the_data_are_priced_as_validate_prices_them(deit_tiny_run, tmp_path, capsys):
    """The benchmark's section 6 reads the data file: same prices as ``maec validate`` on the run's CSV."""
    out, (row,) = deit_tiny_run
    data = tmp_path / "runs.csv"
    append_rows(whole_rows([_arm_row(row)], source_file="pi4.csv", source_commit="abc"), data)
    ((setting, runs),) = board_runs(data).items()
    assert setting[2:5] == ("Cortex-A72", 1.8, 1) and BOARD_PROFILES[("Cortex-A72", 1)] == "rpi4-a72-ort-1t"
    (m,) = check_whole_rows(load_profile("rpi4-a72-ort-1t"), runs)
    main(["validate", str(out), "--device", "rpi4-a72-ort-1t", "--json"])
    (v,) = json.loads(capsys.readouterr().out)["models"]
    assert m.predicted_ms == pytest.approx(v["predicted_ms"], rel=1e-9) and m.measured_ms == pytest.approx(v["measured_ms"], abs=5e-4)
    assert board_runs(tmp_path / "absent.csv") == {}
    # `maec devices` lists it under the profile that claims the run's core and threads, and the way to a first one
    assert board_status("rpi4-a72-ort-1t", data).startswith("board runs of the reference kit: Raspberry Pi 4 Model B")
    assert "none yet" in board_status("rpi5-a76-ort-4t", data) and board_status("dimensity-9300-ort-1t", data) is None
