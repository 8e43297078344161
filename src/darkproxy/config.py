"""Configuration: CLI flags > environment variables > TOML config file > defaults.

Environment variables:
  ``DARKPROXY_DARKTABLE_CLI``  path to a darktable-cli executable
  ``DARKPROXY_HOME``           default workspace (datasets, runs, caches)
  ``DARKPROXY_CONFIG``         path to a TOML config file

The config file (default ``~/.config/darkproxy/config.toml``) may hold::

  darktable_cli = "/usr/bin/darktable-cli"
  home = "~/darkproxy"
  device = "auto"          # auto | cpu | cuda | mps
  render_timeout = 300     # seconds per darktable-cli call
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from darkproxy.errors import DarkproxyError


def default_config_path() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "darkproxy" / "config.toml"


@dataclass(frozen=True)
class Config:
    """Resolved settings. Build with :func:`load_config`."""

    darktable_cli: str | None = None
    home: Path = field(default_factory=lambda: Path.home() / "darkproxy")
    device: str = "auto"
    render_timeout: float = 300.0
    source: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def schema_cache_dir(self) -> Path:
        return self.home / "cache" / "schemas"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Load the config: file (``path``, ``$DARKPROXY_CONFIG`` or the default
    location, if present), then environment variables, then ``overrides``
    (CLI flags; ``None`` values are ignored)."""
    cfg = Config()
    source: dict[str, str] = {}
    explicit = path or os.environ.get("DARKPROXY_CONFIG")
    cfg_path = Path(explicit).expanduser() if explicit else default_config_path()
    if cfg_path.is_file():
        try:
            data = tomllib.loads(cfg_path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise DarkproxyError(f"config file {cfg_path} is not valid TOML: {e}") from None
        known = {f.name for f in fields(Config)} - {"source"}
        unknown = set(data) - known
        if unknown:
            raise DarkproxyError(
                f"config file {cfg_path}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        cfg = _apply(cfg, data, source, f"config:{cfg_path}")
    elif explicit:
        raise DarkproxyError(f"config file {cfg_path} does not exist")
    env = {}
    if os.environ.get("DARKPROXY_DARKTABLE_CLI"):
        env["darktable_cli"] = os.environ["DARKPROXY_DARKTABLE_CLI"]
    if os.environ.get("DARKPROXY_HOME"):
        env["home"] = os.environ["DARKPROXY_HOME"]
    cfg = _apply(cfg, env, source, "env")
    cfg = _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, source, "flag")
    return replace(cfg, source=source)


def _apply(cfg: Config, values: dict[str, Any], source: dict[str, str], origin: str) -> Config:
    if not values:
        return cfg
    conv: dict[str, Any] = {}
    for k, v in values.items():
        if k == "home":
            v = Path(str(v)).expanduser()
        elif k == "render_timeout":
            v = float(v)
        elif k == "darktable_cli":
            v = str(v)
        conv[k] = v
        source[k] = origin
    return replace(cfg, **conv)
