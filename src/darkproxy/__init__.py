"""darkproxy: neural proxies for darktable modules.

Data space: unless stated otherwise every image is a float32 array or tensor in
*linear Rec2020* (darktable's working space, scene-referred, unclipped).
"""

from darkproxy.errors import DarkproxyError

__version__ = "0.1.0"
__all__ = ["DarkproxyError", "__version__"]
