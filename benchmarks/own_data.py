"""Issue 15 benchmarks: your own images and your own MAE, on CPU (and a GPU where one is lent).

``--part rss``: peak memory does not grow with the number of images. Generated image folders (224 px
JPEGs, 10 classes) of 2,000 and 20,000 images; the same run on each -- ``maec eval`` of the shipped
model over the whole train split (every image decoded once) -- with the peak RSS and PSS of its process tree
(the main process plus its DataLoader workers, sampled every 50 ms from /proc; PSS counts a page the
forked workers share with their parent once). Target: the 20,000-image
run within 20% of the 2,000-image run.

``--part vitb``: end to end at ViT-B size. A ViT-B/16 MAE with decoder in the official
facebookresearch/mae layout (``{"model": state_dict}`` in a .pth; random weights, nothing can be
downloaded here), an image folder in the ImageNet layout (``train/<class>``, ``val/<class>``, non-square
images), then ``maec finetune`` for a few steps, ``run_search.py --trials 3`` at a budget of 60% of the
teacher's predicted latency, and ``maec apply`` of the exported winner. Wall time and peak RSS of each
stage. The classifier is near chance after a few steps of fine-tuning from random weights, so the
search runs with ``--no-teacher-check``; the knobs sized for the 28 px model are set per size (printed).

``--part throughput``: recovery (distillation) steps per second of the ViT-B classifier on each
accelerator this machine has (CPU always; CUDA when torch sees a GPU), batch 8, bf16 where fast.

    python benchmarks/own_data.py --part rss [--sizes 2000,20000]
    python benchmarks/own_data.py --part vitb
    python benchmarks/own_data.py --part throughput
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---- peak RSS of a process tree --------------------------------------------------------------------
def _tree_memory_kb(pid: int) -> tuple[int, int]:
    """``(RSS, PSS)`` of ``pid`` and its descendants, summed (kB), from /proc. RSS counts a page shared by a
    DataLoader worker and its parent (fork, copy-on-write) in both; PSS splits it among its sharers, so
    the PSS sum is the memory the tree really holds."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    rss = pss = 0
    for p in tree:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """``(wall s, peak tree RSS MiB, peak tree PSS MiB, stdout)`` of ``cmd``; raises when it fails."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=(os.environ | {"PYTHONPATH": str(ROOT)} | (env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_pss
        while not done.is_set():
            rss, pss = _tree_memory_kb(proc.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak_rss / 1024, peak_pss / 1024, out


# ---- generated image folders -----------------------------------------------------------------------
def make_folder(root: Path, n: int, classes: int = 10, size: tuple[int, int] = (224, 224), split: str = "",
                seed: int = 0) -> Path:
    """``root/[split/]<class>/<i>.jpg``: ``n`` images in all, each class a mean colour plus noise and a
    random rectangle (so the classes are learnable). Reused when it exists with that many files."""
    import numpy as np
    from PIL import Image

    base = root / split if split else root
    if base.is_dir() and sum(1 for _ in base.rglob("*.jpg")) == n:
        return root
    rng = np.random.default_rng(seed)  # the images' noise and rectangles
    colours = np.random.default_rng(1234).integers(30, 225, (classes, 3))  # the classes: the same in every split
    h, w = size
    for i in range(n):
        c = i % classes
        d = base / f"class_{c:02d}"
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(colours[c] + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y:y + h // 4, x:x + w // 4] = 255 - colours[c]
        Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)
    return root


def part_rss(sizes: list[int], workdir: Path) -> None:
    rows = []
    for n in sizes:
        folder = make_folder(workdir / f"folder_{n}", n)
        cmd = [sys.executable, "-m", "cli.main", "eval", "--model", "default", "--data", str(folder), "--split",
               "train", "--json", "--accelerator", "cpu"]
        wall, rss, pss, out = run_measured(cmd)
        result = json.loads(out.strip().splitlines()[-1])
        rows.append((n, result["n"], wall, rss, pss))
        print(f"  {n} images: {result['n']} decoded in {wall:.1f} s, peak RSS {rss:.0f} MiB, PSS {pss:.0f} MiB",
              file=sys.stderr)
    print("| images in the folder | train images decoded | wall s | peak RSS of the process tree (MiB) "
          "| peak PSS of the tree (MiB) |")
    print("|---|---|---|---|---|")
    for n, decoded, wall, rss, pss in rows:
        print(f"| {n:,} | {decoded:,} | {wall:.1f} | {rss:.0f} | {pss:.0f} |")
    for what, i in (("RSS", 3), ("PSS", 4)):
        ratio = rows[-1][i] / rows[0][i]
        print(f"peak {what} ratio {rows[-1][0]:,} / {rows[0][0]:,} images: {ratio:.3f} (target <= 1.20: "
              f"{'met' if ratio <= 1.2 else 'missed'})")
    print(f"DataLoader workers: {os.environ.get('MAE_DATA_WORKERS') or 'default (cores - 1)'}")


# ---- ViT-B end to end ------------------------------------------------------------------------------
VITB_KNOBS = ["--sensitivity-images", "4", "--cheap-val-images", "32", "--recover-top", "0",
              "--recover-steps", "2", "--final-recover-steps", "2", "--recover-batch-size", "8", "--timeout", "0"]


def part_vitb(workdir: Path, accelerator: str) -> None:
    import torch

    from evaluators.latency.predict.predictor import LatencyPredictor
    from mae.model import create_model, describe

    data = workdir / "vitb_data"
    make_folder(data, 240, classes=3, size=(256, 320), split="train", seed=1)
    make_folder(data, 60, classes=3, size=(256, 320), split="val", seed=2)
    ckpt = workdir / "mae_pretrain_vit_base_full.pth"
    if not ckpt.is_file():
        torch.manual_seed(0)
        mae = create_model("mae_vit_base_patch16", kind="mae")
        torch.save({"model": mae.state_dict()}, ckpt)  # the official release's layout
        del mae
    teacher_ms = LatencyPredictor(None).predict_ms(describe(create_model("mae_vit_base_patch16", num_classes=3)))
    budget = f"{0.6 * teacher_ms:.0f}ms"
    stages = []
    ft = workdir / "vitb_ft"
    cmd = [sys.executable, "-m", "cli.main", "finetune", "--init", str(ckpt), "--data", str(data), "--out", str(ft),
           "--epochs", "1", "--max-steps", "3", "--batch-size", "8", "--accelerator", accelerator, "--no-progress"]
    stages.append(("maec finetune (3 steps, batch 8)", *run_measured(cmd)[:3]))
    results = workdir / "vitb_results"
    cmd = [sys.executable, "run_search.py", "--budget", budget, "--model", str(ft / "model.safetensors"),
           "--data", str(data), "--trials", "3", "--results-dir", str(results), "--study-name", "vitb",
           "--no-teacher-check", "--no-progress", "--accelerator", accelerator, *VITB_KNOBS]
    stages.append((f"run_search.py --budget {budget} --trials 3", *run_measured(cmd)[:3]))
    winner = results / "vitb" / "winner.json"
    w = json.loads(winner.read_text())
    deploy = workdir / "vitb_deploy"
    cmd = [sys.executable, "-m", "cli.main", "apply", str(winner), "--out", str(deploy), "--force", "--rounds", "1",
           "--limit", "16", "--accelerator", accelerator]
    stages.append(("maec apply winner.json (rebuild, ONNX, int8, timing)", *run_measured(cmd)[:3]))
    report = json.loads((deploy / "report.json").read_text())
    print(f"ViT-B/16 MAE (official layout, random weights) on a 3-class folder in the ImageNet layout "
          f"(240 train/, 60 val/ images, 256x320); accelerator {accelerator}; search knobs: {' '.join(VITB_KNOBS)}")
    print("| stage | wall s | peak RSS of the process tree (MiB) | peak PSS (MiB) |")
    print("|---|---|---|---|")
    for name, wall, rss, pss in stages:
        print(f"| {name} | {wall:.0f} | {rss:.0f} | {pss:.0f} |")
    ft_metrics = json.loads((ft / "metrics.json").read_text())
    print(f"fine-tuned classifier: val top-1 {ft_metrics['val_top1']:.3f}, test top-1 {ft_metrics['test_top1']:.3f} "
          "(the classes differ by mean colour: a few steps suffice)")
    print(f"teacher predicted {teacher_ms:.0f} ms on the default profile, budget {budget}, winner predicted "
          f"{w['metrics']['latency_ms']:.0f} ms, winner test top-1 {w['metrics']['test_accuracy']:.3f} (teacher "
          f"{w['metrics']['teacher_test_accuracy']:.3f}); maec apply rebuilt it: top-1 {report['after']['top1']:.3f} "
          f"(ONNX {report['after']['onnx_top1']:.3f}) on {report['n']} test images, ONNX speed-up on this host "
          f"{report['onnx_latency_ms']['speedup']:.2f}x, params {report['params']['original']:,} -> "
          f"{report['params']['compressed']:,}")


def part_throughput() -> None:
    import torch

    from mae.accelerator import resolve_accelerator
    from mae.data import ImageSplit
    from mae.model import create_model
    from spaces.config import DistillConfig
    from toolkit.distill import recover

    accels = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("| accelerator | precision | recovery steps/s (ViT-B/16, batch 8, 224 px) | images/s |")
    print("|---|---|---|---|")
    for name in accels:
        accel = resolve_accelerator(name)
        torch.manual_seed(0)
        teacher = create_model("mae_vit_base_patch16", num_classes=10).eval()
        student = create_model("mae_vit_base_patch16", num_classes=10)
        student.load_state_dict(teacher.state_dict())
        images = torch.randint(0, 256, (64, 3, 224, 224), dtype=torch.uint8)
        split = ImageSplit(images, torch.randint(0, 10, (64,)), tuple(str(i) for i in range(10)),
                           (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        steps = 3 if name == "cpu" else 30
        recover(student, teacher, split, DistillConfig(steps=1), batch_size=8, bf16=accel.bf16, progress=False,
                device=accel.device)  # warm-up (kernels, allocator)
        rep = recover(student, teacher, split, DistillConfig(steps=steps), batch_size=8, bf16=accel.bf16,
                      progress=False, device=accel.device)
        rate = rep.steps / rep.wall_s
        print(f"| {accel.describe()} | {'bf16' if accel.bf16 else 'fp32'} | {rate:.2f} | {8 * rate:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("rss", "vitb", "throughput"), required=True)
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--workdir", default=None, help="where generated folders and models go (default: a temp dir)")
    ap.add_argument("--accelerator", default="auto")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.part == "rss":
            part_rss([int(s) for s in args.sizes.split(",")], workdir)
        elif args.part == "vitb":
            part_vitb(workdir, args.accelerator)
        else:
            part_throughput()
    return 0


if __name__ == "__main__":
    sys.exit(main())
