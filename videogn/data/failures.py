"""Bad videos and data stops: what failed, why, and when the run stops because of it.

A video is bad when the decoder says so (`videogn.data.decoding.DecodeError`); the dataset replaces it by another
video and reports it with the batch (`ClipBatch.failures`), and a stop found while making a batch travels as the
batch itself (`DataStop`). `BadVideos` is the run's record of them, kept by the data module:
- every bad video met, with the decoder's reason, logged once, appended once to `quarantine_file`, and saved in
  checkpoints (`state_dict`); the videos read with PyAV because the backend could not (`fallbacks`) likewise;
- the videos known before a loader starts (from a resumed run's checkpoint, or listed in `skip_videos`) are given
  to its dataset, which skips them (they count as bad), and the fallbacks to its decoder (`share_known`);
- the circuit breaker: a `DataStop`, or more than `max_bad_fraction` of a list bad, stops the run with the most
  common reason (`TooManyBadVideos`).

Under DDP the ranks decide together, so that every rank stops at the same point with the same message. In
training, where the ranks take their batches in step, `check_batch` exchanges what each rank found at every batch
(a count summed over ranks, then the findings gathered when there are any). In evaluation the ranks may hold
different numbers of batches: a rank whose dataset gave up ends its epoch there (its loader stops after a
`DataStop`), and the exchange happens at the epoch end (`sync`, called by `VideoClassifier`'s epoch-end hooks and
nowhere else). `BadVideoMonitor` logs the count `sync` returns (`on_sync`).
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
    """In place of a batch: the dataset stopped (`TooManyBadVideos`) while making it (`KineticsClips.defer_stops`)."""

    message: str
    split: str
    failures: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple field: never changed in place

    def error(self) -> TooManyBadVideos:
        return TooManyBadVideos(self.message)


_logged: set[str] = set()  # paths already logged by this process


def log_bad_video(path: str, reason: str) -> None:
    """Log a bad video once per process (the data module logs what its workers found, once)."""
    if path not in _logged:
        _logged.add(path)
        log.warning("skipping unreadable video %s: %s", path, reason)


def most_common_reason(failures: dict[str, str]) -> str:
    """'N×: reason (e.g. path)' for the most frequent reason, paths taken out so that reasons group."""
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
        datasets: the data module's datasets by split (read when deciding: a list's size; written: what the workers
            of loaders made later copy). The record keeps the mapping itself, not a copy.
        rank: this process's global rank (0 writes the quarantine file, and reads `skip_videos` under DDP).
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
        """Take in a batch's bad videos and fallbacks and decide whether the run stops, alike on all ranks
        (`TooManyBadVideos`). `training`: a training step's batch, which every rank takes at the same point (under
        DDP the ranks then decide at once; other batches at the epoch end, `sync`)."""
        self.record_failures(batch.failures, batch.split)
        self.record_fallbacks(getattr(batch, "fallbacks", {}))
        self._stops.extend([batch.message] if isinstance(batch, DataStop) else [])
        if not is_distributed():
            self._decide()
        elif training and batch.split == "train":
            self._exchange()

    def share_known(self, dataset: _Dataset, split: str) -> None:
        """Before a loader's workers start: its dataset skips the known bad videos of its list (they count as bad)
        and reads the known fallbacks with PyAV at once; too many known bad stops the run here (alike on every
        rank: they know the same)."""
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
        """Videos a worker read with PyAV: logged once, kept (and given to loaders made later, and to this
        process's datasets, which the workers of non-persistent loaders copy)."""
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
        """At an epoch end (a collective under DDP: all ranks call it, from `VideoClassifier`'s epoch-end hooks):
        gather every rank's new bad videos and stops, decide, and return the count of bad videos over all ranks
        (also given to `on_sync`)."""
        if is_distributed():
            self._exchange()
        count = len(self.failures)
        for listener in self.on_sync:
            listener(count)
        return count

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint (the data module's state): the bad videos met so far and the videos read with
        PyAV."""
        return {"failures": dict(self.failures), "fallbacks": dict(self.fallbacks)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.failures.update(state_dict.get("failures", {}))
        self._written.update(state_dict.get("failures", {}))
        self.fallbacks.update(state_dict.get("fallbacks", {}))

    def _skip_list(self) -> dict[str, str]:
        """`skip_videos` read (path → reason), once; under DDP rank 0's copy, so that every rank counts alike."""
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
        """(A collective: every rank calls it at the same point.) Every rank's new bad videos and stops, merged on
        every rank; then the same decision everywhere."""
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
