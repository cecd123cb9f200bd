"""The CPU this process runs on, as the system describes it: read once, for every module."""
from __future__ import annotations

import functools
import platform

__all__ = ["cpu_facts"]


@functools.lru_cache(maxsize=None)
def cpu_facts(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields of ``path`` ("model name", "vendor_id", "flags", ...), and
    ``model`` and ``vendor``: the model name ("" unknown: platform's processor or machine) and
    the maker ("GenuineIntel", "AuthenticAMD"; "" unknown). Read once per process."""
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block ends here; the others repeat it
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    fields["model"] = fields.get("model name") or platform.processor() or platform.machine()
    fields["vendor"] = fields.get("vendor_id", "")
    return fields
