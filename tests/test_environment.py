"""What a run records of where it ran: the CPU's facts."""
from __future__ import annotations

import platform

from backends.cpu import cpu_facts

CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu avx2 fma

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
"""


def test_the_first_processors_fields(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    facts = cpu_facts(str(path))
    assert (facts["model"], facts["vendor"], facts["processor"]) == \
        ("AMD EPYC 9B14", "AuthenticAMD", "0")
    assert facts["flags"].split() == ["fpu", "avx2", "fma"]


def test_without_cpuinfo_the_model_is_platforms(tmp_path):
    facts = cpu_facts(str(tmp_path / "missing"))
    assert facts["model"] == (platform.processor() or platform.machine()) and facts["vendor"] == ""
