"""A trained proxy: :mod:`.model` (:class:`Proxy`, load a run folder or ``zoo:MODULE``),
:mod:`.locate` (where a proxy's files are; the zoo folder as a path), :mod:`.compat` (a zoo
proxy against the installed darktable), :mod:`.tiling` (a proxy on a whole image),
:mod:`.fastpath` (a pointwise proxy as a 3D LUT)."""

from darkproxy.proxy.model import Proxy, RunLoadError, ScaledProxy, load_proxy

__all__ = ["Proxy", "RunLoadError", "ScaledProxy", "load_proxy"]
