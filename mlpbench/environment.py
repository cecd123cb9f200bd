"""Where and with what a run happens: CPU, cores, library versions, BLAS, GPU, command line."""
from __future__ import annotations

import os
import platform
from typing import Iterable

from mlpbench.results import now

__all__ = ["command_line", "cpu_model", "environment", "facts_in_process", "kernel_variables"]


def cpu_model() -> str:
    """The CPU's model name (``backends.cpu.cpu_facts``)."""
    from backends.cpu import cpu_facts

    return cpu_facts()["model"]


def _library_versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def kernel_variables(environ=os.environ) -> dict[str, str]:
    """The variables set that choose BLAS kernels over the libraries' own pick (``settings``)."""
    from mlpbench.settings import KERNEL_VARIABLES

    return {name: environ[name] for name in KERNEL_VARIABLES if name in environ}


def environment(libraries: list[str], facts: dict[str, dict], argv: list[str]) -> dict:
    """Where and with what a run happens: versions, BLAS, CPU, each backend's device and GPU
    (``facts``: what each backend's worker said of itself), the command line."""
    from threadpoolctl import threadpool_info

    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = os.cpu_count()
    gpus = {name: f["gpu"] for name, f in facts.items() if f.get("gpu")}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": cores_usable,
        "libraries": _library_versions(dict.fromkeys(["mlpbench", "numpy", "threadpoolctl",
                                                      *libraries])),
        "blas": threadpool_info(),
        "kernel_variables": kernel_variables(),
        "gpu": next(iter(gpus.values()), None),
        "gpus": gpus,
        "devices": {name: f.get("device") for name, f in facts.items()},
        "device_roofs": {name: f["device_roofs"] for name, f in facts.items()
                         if f.get("device_roofs")},
        "workers": {name: {"pid": f.get("pid"), "thread_info": f.get("thread_info")}
                    for name, f in facts.items()},
        "command": list(argv),
        "started": now(),
        "finished": None,
    }


def facts_in_process(backend, threads: int | None) -> dict:
    """What ``environment`` records of a backend run in this process (bench's workers say
    it of themselves): device, GPU, threads. Asked inside ``threads(n)``: asking may start
    the library's runtime (JAX sizes its CPU pool then)."""
    with backend.threads(threads) as info:
        return {"device": backend.device, "gpu": backend.gpu_info(), "thread_info": info,
                "pid": os.getpid()}


def command_line(argv: list[str] | None = None) -> list[str]:
    """The command line as typed: ``argv`` when main() was given one, else this process's own
    (``python -m mlpbench`` recorded as such)."""
    import sys

    if argv is not None:
        return ["mlpbench", *argv]
    program = os.path.basename(sys.argv[0]) if sys.argv else "mlpbench"
    if program == "__main__.py":
        return [os.path.basename(sys.executable), "-m", "mlpbench", *sys.argv[1:]]
    return [program, *sys.argv[1:]]
