"""A fork server for the tests' ``run_cli``: it imports darkproxy and its heavy dependencies (torch, colour,
kornia, ...: ~3 s of imports) once, then forks one child per CLI call. Each child is still a separate process
that runs ``python -m darkproxy ARGS`` exactly (``runpy`` on ``darkproxy.__main__``) with its own environment,
working directory, stdin from /dev/null, stdout and stderr in files and its own exit status: only the
interpreter's start-up and the imports are shared. The server itself runs no computation (no thread pool is
started before a fork).

Protocol, one JSON object per line: request on stdin ``{"args", "env", "cwd", "out", "err"}``; replies on
stdout ``{"pid": ...}`` as soon as the child is forked, then ``{"rc": ...}`` when it ends (a child killed by
signal N gives ``-N``, as ``subprocess`` reports it).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import sys
import traceback

# Heavy third-party imports first (their cost is the point), then every darkproxy module but the Ray ones
# (Ray reads its environment when imported: a test that sets it must see a fresh import).
for _name in ("torch", "numpy", "scipy.ndimage", "colour", "kornia", "safetensors.torch", "rawpy", "PIL.Image",
              "skimage", "tqdm", "matplotlib"):  # fmt: skip
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)
import darkproxy  # noqa: E402

for _m in pkgutil.walk_packages(darkproxy.__path__, "darkproxy."):
    if ".cluster" in _m.name or _m.name.endswith("__main__"):
        continue
    with contextlib.suppress(ImportError):
        importlib.import_module(_m.name)


def _child(req: dict) -> int:
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        f = os.open(path, flags, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fd 0 is /dev/null now
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = [os.path.join(os.path.dirname(darkproxy.__file__), "__main__.py"), *req["args"]]
    sys.path[0] = os.getcwd()  # as ``python -m`` sets it
    import atexit
    import runpy
    import threading

    try:
        runpy.run_module("darkproxy", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:  # what the interpreter does with sys.exit's argument
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined] # what interpreter exit does: join non-daemon threads
    atexit._run_exitfuncs()
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    return code


def main() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(req)
            finally:
                os._exit(code & 0xFF)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
