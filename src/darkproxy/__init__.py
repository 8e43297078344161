"""darkproxy: neural proxies for darktable modules.

Data space: unless stated otherwise every image is a float32 array or tensor in
*linear Rec2020* (darktable's working space, scene-referred, unclipped).
"""

from importlib.metadata import PackageNotFoundError, version

from darkproxy.errors import DarkproxyError

try:  # one source of truth: [project].version in pyproject.toml, as installed
    __version__ = version("darkproxy")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DarkproxyError", "__version__"]
