"""Everything that talks to darktable: locate it, read its module schemas,
encode params and XMP sidecars, render, and tap out module inputs/outputs."""

from darkproxy.darktable.locate import DarktableInstall, locate_darktable
from darkproxy.darktable.params import decode_params, encode_params, set_params
from darkproxy.darktable.render import Renderer, RenderJob, read_tiff, write_tiff
from darkproxy.darktable.schema import FieldSchema, ModuleSchema, SchemaSet, load_schemas
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.xmp import HistoryItem, Sidecar, read_xmp

__all__ = [
    "Darktable",
    "DarktableInstall",
    "FieldSchema",
    "HistoryItem",
    "ModuleSchema",
    "RenderJob",
    "Renderer",
    "SchemaSet",
    "Sidecar",
    "decode_params",
    "encode_params",
    "load_schemas",
    "locate_darktable",
    "read_tiff",
    "read_xmp",
    "set_params",
    "write_tiff",
]
