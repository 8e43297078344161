"""Proxy architectures (see :mod:`darkproxy.models.registry` for the contract)."""

from darkproxy.models import demosaic, demosaic_rcd, multiscale, pointwise, positional, spatial  # noqa: F401,E402  (register the built-ins)
from darkproxy.models.registry import ArchEntry, arch_entry, build_model, list_archs, register_arch

__all__ = ["ArchEntry", "arch_entry", "build_model", "list_archs", "register_arch"]
