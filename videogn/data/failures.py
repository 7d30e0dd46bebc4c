"""Bad videos and data stops: what failed, why, and when the run stops because of it.

A video is bad when the decoder says so (`videogn.data.decoding.DecodeError`). The dataset replaces it by another
video and reports it with the batch (`ClipBatch.failures`); a stop found while making a batch is returned in place
of the batch (`DataStop`). `BadVideos`, kept by the data module, is the run's record:
- every bad video is logged once, appended once to `quarantine_file` and saved in checkpoints, with the decoder's
  reason; so are the videos read with PyAV (`fallbacks`);
- the videos known before a loader starts (a resumed run's, or `skip_videos`) are skipped and count as bad;
- a `DataStop`, or more than `max_bad_fraction` of a list bad, stops the run (`TooManyBadVideos`).

Under DDP the ranks decide together, so every rank stops at the same point with the same message: in training at
every batch (`check_batch`), in evaluation at the epoch end (`sync`, called by `VideoClassifier`'s epoch-end hooks).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from videogn.data.decoder import log_fallback
from videogn.distributed import gather_objects, is_distributed, sum_over_ranks, world_size
from videogn.errors import RunStopped
from videogn.files import check_file

__all__ = ["BadVideos", "DataStop", "TooManyBadVideos", "log_bad_video", "most_common_reason"]

log = logging.getLogger(__name__)


class TooManyBadVideos(RunStopped):
    """So many videos fail to decode that the data or the decoder setup, not single files, must be wrong."""


class DataStop(NamedTuple):
    """Returned in place of a batch when the dataset stopped the run while making it (`KineticsClips.defer_stops`).

    `error()` gives the `TooManyBadVideos` to raise.
    """

    message: str
    split: str
    failures: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple field: never changed in place

    def error(self) -> TooManyBadVideos:
        return TooManyBadVideos(self.message)


_logged: set[str] = set()  # paths already logged by this process


def log_bad_video(path: str, reason: str) -> None:
    """Log a bad video once per process."""
    if path not in _logged:
        _logged.add(path)
        log.warning("skipping unreadable video %s: %s", path, reason)


def most_common_reason(failures: dict[str, str]) -> str:
    """ "N×: reason (e.g. path)" for the most frequent reason; paths are taken out so that reasons group."""
    reasons = Counter(reason.replace(path, "<file>") for path, reason in failures.items())
    reason, count = reasons.most_common(1)[0]
    example = next(p for p, r in failures.items() if r.replace(p, "<file>") == reason)
    return f"{count}×: {reason} (e.g. {example})"


class _Batch(Protocol):
    """What the record reads of a batch (`videogn.data.dataset.ClipBatch`, or a `DataStop`)."""

    failures: dict[str, str]  # videos found bad while it was made: path → the decoder's reason
    split: str


class _Decoder(Protocol):
    fallbacks: dict[str, str]


class _Dataset(Protocol):
    """What the record needs of a dataset (`KineticsClips`)."""

    list_file: str
    paths: list[str]
    failures: dict[str, str]
    decoder: _Decoder


class BadVideos:
    """The bad videos and PyAV fallbacks of a run, and the decision to stop it.

    Args:
        datasets: the data module's datasets by split; the record keeps this mapping, not a copy.
        rank: returns this process's global rank (rank 0 writes the quarantine file and reads `skip_videos`).
        max_bad_fraction: stop when more than this fraction of a list's videos is bad.
        quarantine_file: append `path<TAB>reason` for every bad video met, each once (None: no file).
        skip_videos: a file of videos to skip without decoding, counted as bad (`path[<TAB>reason]` lines).
    """

    def __init__(
        self,
        datasets: Mapping[str, _Dataset],
        rank: Callable[[], int],
        max_bad_fraction: float,
        quarantine_file: str | None = None,
        skip_videos: str | None = None,
    ) -> None:
        self.datasets, self.rank = datasets, rank
        self.max_bad_fraction, self.quarantine_file, self.skip_videos = max_bad_fraction, quarantine_file, skip_videos
        self.failures: dict[str, str] = {}  # path → reason, every bad video met (over all ranks after a sync)
        self.fallbacks: dict[str, str] = {}  # path → why the backend could not read it: read with PyAV
        self.on_sync: list[Callable[[int], None]] = []  # called with the count after every `sync`
        self._skipped: dict[str, str] | None = None  # skip_videos, read once (rank 0's under DDP)
        self._bad_by_split: dict[str, set[str]] = defaultdict(set)  # split → its bad videos (over all ranks)
        self._unsynced: dict[str, dict[str, str]] = defaultdict(dict)  # split → found on this rank since the last sync
        self._unsynced_fallbacks: dict[str, str] = {}  # read with PyAV on this rank since the last sync
        self._stops: list[str] = []  # DataStop messages not yet decided on all ranks
        self._written: set[str] = set()  # already in the quarantine file

    def check_batch(self, batch: _Batch, training: bool = False) -> None:
        """Record a batch's bad videos and fallbacks; raise `TooManyBadVideos` when the run must stop.

        Under DDP, a training batch (`training`) is decided on all ranks at once; other batches at `sync`.
        """
        self.record_failures(batch.failures, batch.split)
        self.record_fallbacks(getattr(batch, "fallbacks", {}))
        self._stops.extend([batch.message] if isinstance(batch, DataStop) else [])
        if not is_distributed():
            self._decide()
        elif training and batch.split == "train":
            self._exchange()

    def share_known(self, dataset: _Dataset, split: str) -> None:
        """Give a dataset the known bad videos (skipped, counted as bad) and fallbacks, before its loader starts.

        Raises `TooManyBadVideos` when too many of its list are known to be bad.
        """
        skipped = self._skip_list()
        known = {
            p: self.failures[p] if p in self.failures else skipped[p]
            for p in dataset.paths
            if p in self.failures or p in skipped
        }
        self.failures.update(known)
        self._written.update(known)  # already known: not quarantined again
        dataset.failures.update(known)
        self._bad_by_split[split if split != "predict" else "test"].update(known)
        dataset.decoder.fallbacks.update(self.fallbacks)
        self._decide()

    def record_fallbacks(self, fallbacks: dict[str, str]) -> None:
        """Log and keep the videos a worker read with PyAV, and give them to this process's datasets."""
        for path, reason in fallbacks.items():
            log_fallback(path, reason)
        self.fallbacks.update(fallbacks)
        for dataset in self.datasets.values():
            dataset.decoder.fallbacks.update(fallbacks)
        if is_distributed():
            self._unsynced_fallbacks.update(fallbacks)

    def record_failures(self, failures: dict[str, str], split: str = "train") -> dict[str, str]:
        """Merge a batch's failures (of `split`); returns those not seen before."""
        new = {p: r for p, r in failures.items() if p not in self.failures}
        for path, reason in new.items():
            log_bad_video(path, reason)
        self.failures.update(new)
        if split in self.datasets:  # what later workers of this split's loader copy
            self.datasets[split].failures.update(failures)
        self._bad_by_split[split].update(failures)
        if is_distributed():
            self._unsynced[split].update(failures)  # for the next exchange (`_exchange`)
        else:
            self._quarantine(new)
        return new

    def sync(self) -> int:
        """Gather every rank's new bad videos and stops, decide, and return the count of bad videos.

        Called at each epoch end; under DDP a collective that every rank calls. `on_sync` listeners get the count.
        """
        if is_distributed():
            self._exchange()
        count = len(self.failures)
        for listener in self.on_sync:
            listener(count)
        return count

    def state_dict(self) -> dict[str, Any]:
        """The bad videos met so far and the videos read with PyAV, for checkpoints."""
        return {"failures": dict(self.failures), "fallbacks": dict(self.fallbacks)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.failures.update(state_dict.get("failures", {}))
        self._written.update(state_dict.get("failures", {}))
        self.fallbacks.update(state_dict.get("fallbacks", {}))

    def _skip_list(self) -> dict[str, str]:
        """`skip_videos` as path → reason, read once; under DDP rank 0's copy, so every rank counts alike."""
        if self._skipped is None:
            skipped: dict[str, str] = {}
            name = self.skip_videos
            if name is not None and (not is_distributed() or self.rank() == 0):
                check_file(name, "data.skip_videos")
                for line in Path(name).read_text(encoding="utf-8").splitlines():
                    video, _, reason = line.strip("\r").partition("\t")
                    if video.strip() and not video.startswith("#"):
                        skipped[video.strip()] = reason.strip() or "listed in data.skip_videos"
            self._skipped = gather_objects(skipped)[0] if is_distributed() else skipped
        return self._skipped

    def _decide(self) -> None:
        """Raise `TooManyBadVideos` for the first stop, or for a list with more than `max_bad_fraction` bad."""
        if self._stops:
            raise TooManyBadVideos(self._stops[0])
        for split, bad in self._bad_by_split.items():
            dataset = self.datasets.get(split if split in self.datasets else "predict")
            if dataset is not None and len(bad) > self.max_bad_fraction * len(dataset.paths):
                ranks = f" (over {world_size()} ranks)" if is_distributed() else ""
                raise TooManyBadVideos(
                    f"{dataset.list_file}: {len(bad)} of {len(dataset.paths)} videos could not be decoded{ranks}, "
                    f"more than data.max_bad_fraction ({self.max_bad_fraction:g}). Most common reason "
                    f"{most_common_reason({p: self.failures[p] for p in sorted(bad)})}"  # alike on every rank
                )

    def _exchange(self) -> None:
        """Merge every rank's new bad videos and stops on every rank, then decide (a collective)."""
        new = sum(len(f) for f in self._unsynced.values()) + len(self._stops) + len(self._unsynced_fallbacks)
        if sum_over_ranks(new) == 0:
            return
        gathered = gather_objects((dict(self._unsynced), self._stops, self._unsynced_fallbacks))
        self._unsynced, self._stops, self._unsynced_fallbacks = defaultdict(dict), [], {}
        for rank, (unsynced, stops, fallbacks) in enumerate(gathered):
            for split, failures in unsynced.items():
                self.failures.update(failures)
                self._bad_by_split[split].update(failures)
            self._stops.extend(f"{stop} (rank {rank})" for stop in stops)
            self.fallbacks.update(fallbacks)
        self._quarantine(self.failures)
        self._decide()

    def _quarantine(self, failures: dict[str, str]) -> None:
        new = {p: r for p, r in failures.items() if p not in self._written}
        self._written.update(new)
        if new and self.quarantine_file and self.rank() == 0:
            path = Path(self.quarantine_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:  # one line each: a reason's tabs and newlines as spaces
                f.writelines(f"{p}\t{' '.join(r.split())}\n" for p, r in new.items())
