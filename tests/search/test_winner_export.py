"""The search's outputs: ``results/<study>/`` files, ``winner.json`` reproduced by ``maec apply``, and the
``--task reconstruct`` search of a full MAE end to end."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from searchkit import quick_settings

from cli.main import main as maec
from mae.checkpoints import save_model
from mae.model import create_model
from search.engine import search
from search.results import recovered_scores
from search.setup import build_setup
from search.winner import choose_winner, top_feasible
from spaces.config import CompressionConfig

RESULT_FILES = ("trials.csv", "trials.parquet", "pareto.html", "winner.json", "winner_layers.csv",
                "winner_layers.html", "settings.json", "study.db")


def test_winner_is_exported_and_maec_apply_reproduces_it(tmp_path, tiny_ckpt):
    # the whole train split (as maec apply uses): the re-built winner and apply then train on the same batches
    settings = quick_settings(tmp_path / "results", tiny_ckpt, limit_train=None, trials=4, final_recover_steps=3)
    outcome = search(settings)
    assert outcome.winner is not None
    for name in RESULT_FILES:
        assert (outcome.out_dir / name).is_file(), name
    trials = pd.read_csv(outcome.out_dir / "trials.csv")
    assert len(trials) == 4 and {"accuracy", "latency_ms"} <= set(trials.columns)
    winner = json.loads((outcome.out_dir / "winner.json").read_text())
    m = winner["metrics"]
    assert winner["config"]["distill"]["steps"] == m["final_recover_steps"] == 3  # the final recovery, exported
    assert m["latency_ms"] <= m["budget_ms"] and winner["provenance"]["seed"] == 0
    assert len(winner["provenance"]["model_sha256"]) == 64

    out = tmp_path / "deploy"
    assert maec(["apply", str(outcome.out_dir / "winner.json"), "--model", tiny_ckpt, "--out", str(out),
                 "--split", "val", "--limit", "128", "--no-bf16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["top1"] == pytest.approx(m["val_accuracy_rebuilt"], abs=1e-9)
    assert CompressionConfig.from_json((out / "compression.json").read_text()).to_dict() == winner["config"]

    other = tmp_path / "other.safetensors"  # same architecture, other weights: not the model searched
    torch.manual_seed(1)
    save_model(create_model("mae_vit_test_p7_28"), other)
    assert maec(["apply", str(outcome.out_dir / "winner.json"), "--model", str(other), "--out",
                 str(tmp_path / "deploy2"), "--no-bf16"]) == 2
    assert not (tmp_path / "deploy2").exists()


def test_final_recovery_is_skipped_without_distillation(tmp_path, tiny_ckpt):
    settings = quick_settings(tmp_path / "results", tiny_ckpt, techniques=("prune", "quant"), final_recover_steps=50)
    winner = search(settings).winner
    assert winner is not None and winner["config"]["distill"]["steps"] == 0


def test_the_winner_is_the_best_recovered_of_the_top_cheap_trials(tmp_path, tiny_ckpt, monkeypatch):
    settings = quick_settings(tmp_path / "results", tiny_ckpt, trials=6, recover_top=2)
    outcome = search(settings)
    study = outcome.study
    complete = [t for t in study.trials if t.values]
    assert all(t.values[0] == t.user_attrs["cheap_score"] for t in complete)  # the sampler saw one fidelity
    top = top_feasible(study, 2)
    scores = recovered_scores(study)
    assert len(top) == 2 and set(scores) == {t.number for t in top}  # recovered after the search, top 2 only
    best = max(top, key=lambda t: (scores[t.number], -t.values[1]))
    m = outcome.winner["metrics"]
    assert outcome.winner["provenance"]["trial"] == best.number and m["fidelity"] == "cheap"
    assert m["val_accuracy_recovered"] == scores[best.number] and m["val_accuracy"] == best.values[0]
    table = pd.read_csv(outcome.out_dir / "trials.csv").set_index("number")
    for number, score in scores.items():
        assert table.loc[number, "recovered_score"] == pytest.approx(score, abs=1e-12)
    assert table["recovered_score"].notna().sum() == 2
    # chosen again (a resumed study writing its results): nothing is recovered twice
    setup = build_setup(settings)
    monkeypatch.setattr(setup.evaluator, "compress", lambda *a, **k: pytest.fail("recovered twice"))
    assert choose_winner(study, setup, settings).number == best.number


@pytest.fixture(scope="module")
def tiny_mae_ckpt(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mae") / "tiny_mae.safetensors"
    save_model(create_model("mae_vit_test_p7_28", kind="mae"), path)
    return str(path)


def test_reconstruct_searches_the_full_mae_by_psnr_against_encoder_plus_decoder_latency(tmp_path, tiny_mae_ckpt):
    probe = quick_settings(tmp_path / "probe", tiny_mae_ckpt, task="reconstruct")
    setup = build_setup(probe)
    teacher_ms = setup.predict_ms(None)
    assert setup.evaluator.metric_name == "psnr_db" and setup.shape.decoder_blocks  # the decoder is searched
    budget = (teacher_ms + setup.predict_ms(setup.smallest_config())) / 2  # splits the space
    settings = quick_settings(tmp_path / "results", tiny_mae_ckpt, task="reconstruct", budget_ms=budget, trials=4)
    outcome = search(settings)
    df = pd.read_csv(outcome.out_dir / "trials.csv")
    assert "psnr_db" in df.columns and df["psnr_db"].notna().all()
    assert outcome.winner is not None
    m = outcome.winner["metrics"]
    assert m["latency_ms"] <= budget < m["teacher_latency_ms"]
    assert 0 < m["test_psnr_db"] < 60 and 0 < m["teacher_test_psnr_db"] < 60
    assert outcome.winner["task"] == "reconstruct"


def test_a_folder_in_the_imagenet_layout_is_searched_and_its_winner_applied_on_the_same_data(tmp_path, tiny_ckpt):
    """``train/`` and ``val/`` without ``test/``: val/ is reported on as test, 10% of train/ selects;
    winner.json records the data and ``maec apply winner.json`` evaluates on it without being told."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in range(10):  # the test model's head has 10 classes
            d = tmp_path / "images" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(d / f"{i}.png")
    data = str(tmp_path / "images")
    settings = quick_settings(tmp_path / "results", tiny_ckpt, data=data, trials=3, recover_top=1, study_name=None)
    outcome = search(settings)
    assert outcome.winner is not None and outcome.out_dir.name.startswith("classify-tiny-images-")  # tagged name
    assert outcome.winner["data"] == {"data": data, "data_dir": None}
    out = tmp_path / "deploy"
    assert maec(["apply", str(outcome.out_dir / "winner.json"), "--model", tiny_ckpt, "--out", str(out),
                 "--no-bf16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 20  # the 20 images of val/, the test split of this layout (not Fashion-MNIST's 10,000)
