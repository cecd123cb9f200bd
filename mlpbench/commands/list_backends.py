"""List every known backend: whether it can run here (and if not, why), its version and device."""
from __future__ import annotations

import argparse
import json

import backends

__all__ = ["add_arguments", "describe", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def describe(name: str) -> dict:
    """What ``mlpbench backends`` reports of one backend."""
    backend = backends.create(name)
    ok, why = backend.available()
    return {"name": name, "available": ok, "reason": why or None,
            "version": backend.version, "device": backend.device if ok else None}


def run(args: argparse.Namespace) -> int:
    rows = [describe(name) for name in backends.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = "yes" if r["available"] else "no "
        version = r["version"] or "-"
        detail = r["device"] if r["available"] else r["reason"]
        print(f"{r['name']:<{width}}  {state}  {version:<12}  {detail}")
    return 0
