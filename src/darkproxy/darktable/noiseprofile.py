"""darktable's automatic noise profile (``src/common/noiseprofiles.c``), where darkproxy can be certain of it.

With ``a[0] = -1`` in denoiseprofile's params (its "autodetect", what darktable writes when the camera has a
profile) ``commit_params`` looks the camera's maker, model and ISO up in ``noiseprofiles.json`` and falls back
to the generic poissonian profile (``a = 1e-4``, ``b = 0`` for every channel). darktable matches the maker and
model by its own normalised names (rawspeed's camera database), which darkproxy does not port: it answers only
where no profile can match, a raw whose EXIF maker shares no name with any maker of the file.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

GENERIC = (1e-4, 0.0)  # dt_noiseprofile_generic: a and b of the green channel ("generic poissonian")


@lru_cache(maxsize=4)
def profiled_makers(path: str) -> frozenset[str]:
    """The makers of ``noiseprofiles.json`` (lower case)."""
    data = json.loads(Path(path).read_text())
    return frozenset(str(n["maker"]).lower() for n in data.get("noiseprofiles", ()))


def _words(s: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", s.lower()) if w}


def auto_profile(make: str, noiseprofiles: str | os.PathLike[str] | None) -> tuple[float, float] | None:
    """The green channel's ``(a, b)`` darktable's automatic profile gives a raw whose EXIF maker is ``make``:
    the generic poissonian profile when no maker of ``noiseprofiles`` shares a word with it, else ``None``
    (darktable may have the camera: not modelled). ``None`` too when the file is unknown."""
    if noiseprofiles is None or not Path(noiseprofiles).is_file():
        return None
    mine = _words(make)
    if any(_words(m) & mine for m in profiled_makers(str(noiseprofiles))):
        return None
    return GENERIC
