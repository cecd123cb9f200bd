"""The gate's worker: one backend of one commit's snapshot, timing short samples of a prepared point.

Run by file path (``python .../mlpbench/gate/worker.py BACKEND``) with ``PYTHONPATH`` set to
the commit's snapshot: ``backends`` and ``kernels`` come from that commit, this program from
the tree running the gate, so a base commit older than the gate can still be measured. It
talks JSON lines through ``mlpbench/workers.py`` of this tree and times with its
``mlpbench/measure.py`` (both loaded by path: the snapshot's ``mlpbench`` may not have them). The backend's library is imported at start, before the first
request, so the parent can start base and head side by side. Requests:

- ``{"op": "start"}``: where ``backends`` came from, the backend's version, or ``error``;
- ``{"op": "prepare", "point", "lr", "seed", "threads", "probe_s"}``: the point's arrays
  and step, warmed up; ``step_s``, one step's seconds, measured for about ``probe_s``, and
  ``blas``, what the backend's ``describe`` says its step ran on, where it says;
- ``{"op": "sample", "steps", "replace"}``: ``seconds`` of that many back-to-back steps, ended
  by the backend's synchronize on the last step's outputs; with ``replace`` true, first (and
  untimed) the point's arrays are copied to fresh memory, the last few placements kept alive
  so that the allocator cannot hand the same memory back;
- ``{"op": "pieces", "point", "lr", "seed", "threads"}``: the point's pieces, warmed up, as
  the commit's ``Backend.prepare_pieces`` gives them; ``piece_s``, each one call's seconds;
- ``{"op": "piece_sample", "piece", "calls"}``: ``seconds`` of that many calls of a piece.

``python .../worker.py --lacks NAME[,NAME]`` instead prints ``{"lacks": [...]}``, the names the
snapshot's ``backends`` does not know, importing no backend's library (asked before any timing).
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Earlier placements of a point's arrays kept alive: a freed block of the same size would
#: come straight back from the allocator, at the same place.
KEPT_PLACEMENTS = 3
# The script's own folder is sys.path[0]: drop it, so nothing there shadows the snapshot.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]


def _load(name: str):
    """This tree's ``mlpbench/<name>.py``, by path, once (the snapshot's may not have it)."""
    key = f"_gate_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE.parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


def _load_workers():
    return _load("workers")


def one_line(exc: BaseException) -> str:
    return _load_workers().one_line(exc)


def create_backend(name: str):
    """The backend ``name`` of the snapshot: ``backends.create`` (fresh instances), or the
    singletons of ``backends.get`` in commits before it."""
    import backends

    make = getattr(backends, "create", None) or backends.get
    return make(name)


def lacks(name: str) -> bool:
    """Whether the snapshot's ``backends`` does not know ``name``: not in its ``names()``, or,
    in commits without it, refused by its registry's lookup (a KeyError, as UnknownBackend is)."""
    import backends

    if hasattr(backends, "names"):
        return name not in backends.names()
    try:
        create_backend(name)
    except KeyError:
        return True
    return False


def libraries(backend) -> dict:
    """Versions of numpy, scipy and the backend's library in this worker's environment."""
    from importlib import metadata

    found = {}
    for name in dict.fromkeys(["numpy", "scipy", getattr(backend, "library", "") or "numpy"]):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def blas() -> list[str]:
    """The BLAS libraries loaded here, as 'openblas 0.3.31 (numpy.libs)' (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return sorted({f"{p.get('internal_api')} {p.get('version')} "
                   f"({Path(p.get('filepath', '')).parent.name})"
                   for p in threadpool_info() if p.get("user_api") == "blas"})


def synchronizer(backend):
    """``sync(W, S, loss)``: the backend's synchronize on the step's outputs, or without
    arguments in commits whose synchronize takes none."""
    parameters = inspect.signature(backend.synchronize).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
           for p in parameters):
        return backend.synchronize
    return lambda *arrays: backend.synchronize()


class GateWorker:
    def __init__(self, backend_name: str) -> None:
        self.error = None
        self.point = None
        self._threads = contextlib.ExitStack()
        self._threaded = False
        self._placed: list[tuple] = []  # the last placements, kept allocated (replace)
        try:
            import backends

            self.origin = str(Path(backends.__file__).resolve().parent.parent)
            if lacks(backend_name):
                self.error = f"this commit lacks backend {backend_name!r}"
                return
            self.backend = create_backend(backend_name)
            ok, why = self.backend.available()
            if not ok:
                self.error = f"backend {backend_name!r} is not available: {why}"
                return
            self.backend._import()
            self.sync = synchronizer(self.backend)
        except BaseException as exc:  # the snapshot may not even import: tell the parent
            self.error = f"could not load backend {backend_name!r}: {one_line(exc)}"

    def handle(self, request: dict) -> dict:
        if self.error:
            return {"error": self.error}
        try:
            return getattr(self, "op_" + request["op"])(request)
        except Exception as exc:
            return {"error": one_line(exc)}

    def op_start(self, request: dict) -> dict:
        return {"origin": self.origin, "version": self.backend.version, "pid": os.getpid(),
                "python": sys.executable, "python_version": sys.version.split()[0],
                "libraries": libraries(self.backend), "blas": blas()}

    def _arrays(self, request: dict) -> dict:
        """The point's x, t, W, S moved in, with the thread limit entered once for good."""
        import numpy as np

        from kernels import make_problem

        np.seterr(all="ignore")  # a diverging loss is checked, not printed per step
        if not self._threaded:
            self._threads.enter_context(self.backend.threads(request["threads"]))
            self._threaded = True
        p = request["point"]
        drawn = make_problem(np.random.default_rng(request["seed"]), p["batch_size"], p["n_in"],
                             p["hidden"], p["n_out"], init="scaled")
        return {k: self.backend.asarray(np.ascontiguousarray(v, dtype=p["dtype"]))
                for k, v in drawn.items()}

    def op_pieces(self, request: dict) -> dict:
        """The point's pieces as the commit's backend runs them, warmed up; each one call's
        seconds (``mlpbench.pieces`` and ``Backend.prepare_pieces`` of the commit)."""
        from kernels import resolve_pieces
        from mlpbench.pieces import TIMED, piece_runs

        self.point = None
        arrays = self._arrays(request)
        pieces = self.backend.prepare_pieces(resolve_pieces, lr=request["lr"],
                                             dtype=request["point"]["dtype"])
        self.latest: dict[str, tuple] = {}
        self.piece_runs = piece_runs(pieces, arrays, self.latest)
        probe = {}
        for name in TIMED:
            self.run_piece(name, 2)  # a JIT compiles here
            probe[name] = min(self.run_piece(name, 2) for _ in range(3)) / 2
        return {"piece_s": probe}

    def run_piece(self, name: str, calls: int) -> float:
        """Seconds of ``calls`` calls of piece ``name``, ended by the backend's synchronize."""
        return _load("measure").timed(self.piece_runs[name],
                                      lambda: self.sync(*self.latest.get(name, ())), calls)[0]

    def op_piece_sample(self, request: dict) -> dict:
        return {"seconds": self.run_piece(request["piece"], request["calls"])}

    def op_prepare(self, request: dict) -> dict:
        import numpy as np

        from kernels import make_step

        self.point = None
        p = request["point"]
        arrays = self._arrays(request)
        step = self.backend.prepare(make_step, lr=request["lr"], dtype=p["dtype"])
        measure = _load("measure")
        self.point = measure.StepChain(step, arrays, self.sync)
        measure.warm_up(self.point.run, self.point.synchronize)  # a JIT compiles here
        steps = measure.calibrate(self.point.run, self.point.synchronize,
                                  min_time=request["probe_s"])
        # The first blocks may still load (a BLAS, a cache): the best of three more.
        seconds = min(self.run(steps) for _ in range(3))
        loss = float(np.asarray(self.backend.to_numpy(self.point.loss)))
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss} after the warm-up steps")
        return {"step_s": seconds / steps, "blas": self.blas(p["dtype"])}

    def blas(self, dtype: str):
        """The ``blas`` of the backend's ``describe``, or None (commits before it, or none)."""
        try:
            return self.backend.describe(dtype).get("blas")
        except Exception:  # an older commit's describe: the reply goes without
            return None

    def run(self, steps: int) -> float:
        """Seconds of ``steps`` steps, each step's W and S feeding the next, synchronised."""
        return _load("measure").timed(self.point.run, self.point.synchronize, steps)[0]

    def replace(self, steps: int) -> None:
        """The point's x, t, W and S copied to fresh memory (values unchanged), then a few
        untimed steps on them (at most ``steps``): the new pages faulted in, the caches warm."""
        import numpy as np

        chain, backend = self.point, self.backend
        old = (chain.x, chain.t, chain.W, chain.S)
        self._placed = (self._placed + [old])[-KEPT_PLACEMENTS:]
        chain.x, chain.t, chain.W, chain.S = (
            backend.asarray(np.array(backend.to_numpy(a), copy=True)) for a in old)
        self.run(min(steps, 3))

    def op_sample(self, request: dict) -> dict:
        if request.get("replace"):
            self.replace(request["steps"])
        return {"seconds": self.run(request["steps"])}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--lacks":
        # A snapshot whose backends does not import lacks nothing here: its workers say why.
        print(json.dumps({"lacks": [n for n in sys.argv[2].split(",") if lacks(n)]}))
        return
    if len(sys.argv) != 2:
        sys.exit("usage: python worker.py BACKEND | --lacks NAME[,NAME]  "
                 "(started by mlpbench regress)")
    os.dup2(1, 2)  # the parent keeps stdout as this worker's log; its last line explains a death
    worker = GateWorker(sys.argv[1])
    _load_workers().serve(worker.handle)


if __name__ == "__main__":
    main()
