"""darkproxy modules / darkproxy params."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args
from darkproxy.cli._util import add_command, emit

ORDER = 10


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "modules",
        "list darktable modules and their parameter schemas",
        "List every darktable module that describes its parameters (read from the installed "
        "darktable's own introspection data), with its params version and field count, in pipe order. "
        "--json: a list of {name, version, n_fields, size, pipe_position}.",
        "  darkproxy modules\n  darkproxy modules --json | jq '.[].name'\n",
    )
    p.set_defaults(func=run_modules)
    q = add_command(
        sub,
        common,
        "params",
        "show one module's parameters (type, range, default)",
        "Show a module's parameter struct as darktable describes it: every field with type, "
        "offset, size, and $MIN/$MAX/$DEFAULT or enum values. --json: {module, version, size, fields: [...]}.",
        "  darkproxy params exposure\n  darkproxy params colorbalancergb --json\n",
    )
    q.add_argument("module", help="module (operation) name, e.g. exposure")
    q.set_defaults(func=run_params)


def run_modules(args: argparse.Namespace) -> int:
    dt = darktable_from_args(args)
    s = dt.schemas
    order = s.pipe_order(2) if s.pipe_orders else sorted(s.modules)
    names = [m for m in order if m in s.modules] + sorted(set(s.modules) - set(order))
    rows = [
        {
            "name": n,
            "version": s.modules[n].version,
            "n_fields": len(s.modules[n].fields),
            "size": s.modules[n].size,
            "pipe_position": order.index(n) if n in order else None,
        }
        for n in names
    ]
    lines = [f"darktable {dt.version}: {len(rows)} modules with parameter schemas (pipe order v3.0)"]
    lines += [f"  {r['name']:18s} v{r['version']:<3d} {r['n_fields']:4d} fields {r['size']:6d} bytes" for r in rows]
    if s.without_introspection:
        lines.append(f"without introspection: {', '.join(sorted(s.without_introspection))}")
    emit(args, rows, "\n".join(lines))
    return 0


def run_params(args: argparse.Namespace) -> int:
    dt = darktable_from_args(args)
    sch = dt.schemas.get(args.module)
    lines = [f"{sch.name} (params v{sch.version}, {sch.size} bytes, {sch.type_name}, darktable {dt.version})"]
    for f in sch.fields:
        rng = ""
        if f.type == "enum":
            rng = "{" + ", ".join(f"{k}={v}" for k, v in (f.values or {}).items()) + "}"
        elif f.min is not None:
            rng = f"[{f.min:g}, {f.max:g}]"
        if f.type == "array":
            kind = "string" if f.is_string else f"{f.element.type if f.element else '?'}[{f.count}]"
        else:
            kind = f.type
        dflt = f"default {f.default}" if f.default is not None else ""
        desc = f"  # {f.description}" if f.description else ""
        lines.append(f"  {f.name:28s} {kind:10s} @{f.offset:<5d} {rng} {dflt}{desc}")
    emit(args, sch.to_json(), "\n".join(lines))
    return 0
