#!/usr/bin/env bash
# The fine-tuning table of docs/own-videos.md: `make demo`'s network (trained on pan4) fine-tuned
# on a new task with new classes (motion10: 10 classes of direction and speed under nuisances; 180 train, 60 val
# videos), against the same network trained from scratch and a linear probe, at one budget (10 epochs of the demo
# recipe), for seeds 0 1 2. About 1 minute per run on 2 CPU cores. Run from the repository root after `make demo`.
set -euo pipefail
PY=.venv/bin/python
CKPT=runs/demo/i3d_gn_8clips/checkpoints/last.ckpt
test -f "$CKPT" || { echo "finetune_demo: $CKPT not found: run make demo first" >&2; exit 1; }
test -f demo_data/motion10_ft/val.csv || $PY data_prep/make_synthetic.py --out demo_data/motion10_ft --task motion10 \
    --videos_per_class 24 --val_fraction 0.25 --quiet
OUT=runs/finetune_demo
rm -rf "$OUT"
DATA=(--data.train_list demo_data/motion10_ft/train.csv --data.val_list demo_data/motion10_ft/val.csv
      --trainer.max_epochs 10 --trainer.default_root_dir "$OUT" --trainer.enable_progress_bar false)
for seed in ${SEEDS:-0 1 2}; do
  S=(--seed_everything "$seed" --data.seed "$seed")
  $PY -m videogn fit -c configs/demo.yaml "${DATA[@]}" "${S[@]}" --run_name "scratch_s$seed"
  $PY -m videogn fit -c configs/demo.yaml -c configs/finetune.yaml "${DATA[@]}" "${S[@]}" --run_name "finetune_s$seed"
  $PY -m videogn fit -c configs/demo.yaml -c configs/finetune.yaml "${DATA[@]}" "${S[@]}" \
      --model.freeze_until res5 --model.backbone_lr_mult 1 --run_name "probe_s$seed"
done
$PY - "$OUT" <<'PY'
import statistics, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
rows = {}  # the last validation of each run (3 clips per video, as configs/demo.yaml validates), by variant
for run in sorted(Path(sys.argv[1]).iterdir()):
    values = {}
    for events in run.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events)); acc.Reload()
        for tag in ("val/top1", "val/video_top1"):
            if tag in acc.Tags()["scalars"]:
                values[tag] = acc.Scalars(tag)[-1].value
    rows.setdefault(run.name.rsplit("_s", 1)[0], []).append(values)
for name, runs in rows.items():
    cells = []
    for tag in ("val/top1", "val/video_top1"):
        v = [100 * r[tag] for r in runs if tag in r]
        cells.append(f"{statistics.fmean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0:.1f}")
    print(f"| {name} | {cells[0]} | {cells[1]} | {len(runs)} |")  # mean ± std over seeds
PY
