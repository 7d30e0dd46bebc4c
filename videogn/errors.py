"""The project's own error types: what videogn raises on purpose, so callers can catch exactly that.

- `ConfigError`: a setting that was checked and found wrong (a list file that does not exist, groups that do not
  divide a width, a resume whose settings changed). The command line prints it as one line, without a traceback.
  It is a `ValueError`, so code that catches bad values keeps working.
- A video the decoder cannot read is `videogn.data.decoding.DecodeError`; too many of them in a run is
  `videogn.data.dataset.TooManyBadVideos`.

Anything else that escapes is a bug and must propagate with its traceback: never turn it into "bad video" or
"configuration error".
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A setting checked and found wrong; the message names the setting (e.g. `data.train_list: ...`)."""
