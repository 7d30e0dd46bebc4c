"""A run's TensorBoard logs read back: the scalars of every version of a run folder (a resumed run logs to a new
version). Shared by the grid (has a run's last checkpoint been tested?) and the report; no Lightning."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_scalars"]


def _event_files(run_dir: Path) -> list[Path]:
    """Every event file of a run, oldest version first (a resumed run logs to a new version)."""
    versions = sorted(run_dir.glob("version_*"), key=lambda p: int(p.name.split("_")[-1]))
    return [events for version in versions for events in sorted(version.glob("events.out.tfevents.*"))]


def run_scalars(
    run_dir: Path, tags: set[str] | None = None, newer_than: Path | None = None
) -> dict[str, dict[int, float]]:
    """tag -> step -> value of a run's TensorBoard events (`tags`, default all; later versions win: resumed runs);
    with `newer_than`, only of the event files written after that file (a test of the current last checkpoint)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {}
    files = _event_files(run_dir)
    if newer_than is not None:
        since = newer_than.stat().st_mtime if newer_than.is_file() else float("inf")
        files = [events for events in files if events.stat().st_mtime > since]
    for events in files:
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in set(accumulator.Tags()["scalars"]) & (set(accumulator.Tags()["scalars"]) if tags is None else tags):
            scalars.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return scalars
