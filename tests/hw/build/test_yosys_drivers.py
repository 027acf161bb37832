"""hw.build.yosys_drivers: nets with two drivers in a yosys JSON netlist, and the yosys script
with abc9's older XAIGER export (the fallback hw.build takes when yosys 0.70 makes such a net)."""

import json
import zipfile

import pytest

from hw.build.yosys_drivers import XAIGER1, archive_with_xaiger1, multiply_driven, with_xaiger1


def _netlist(tmp_path, second_pin_net):
    """A module ``top`` with a two-output cell and a flip-flop; ``second_pin_net`` is the net
    of the cell's second output (2: its own; 1: the first output's, as yosys#6237 makes)."""
    cell = {"type": "DP16KD", "port_directions": {"DOA3": "output", "DOB6": "output",
                                                  "DIA3": "input"},
            "connections": {"DOA3": [1], "DOB6": [second_pin_net], "DIA3": ["0"]}}
    ff = {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "Q": "output"},
          "connections": {"DI": [1], "Q": [3]}}
    module = {"cells": {"mem": cell, "ff": ff},
              "netnames": {"weights": {"bits": [1, 2]}, "q": {"bits": [3]}}}
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"modules": {"top": module}}))
    return path


def test_multiply_driven_names_the_net_and_its_drivers(tmp_path):
    assert multiply_driven(_netlist(tmp_path, 2)) == []
    assert multiply_driven(_netlist(tmp_path, 1)) == ["weights[0]: mem.DOA3, mem.DOB6"]


def test_with_xaiger1_goes_before_synth_once():
    script = "read_rtlil top.il\nsetparam -set X 1\n    synth_ecp5  -top top\nwrite_json top.json\n"
    new = with_xaiger1(script)
    assert new == ("read_rtlil top.il\nsetparam -set X 1\n    " + XAIGER1
                   + "\n    synth_ecp5  -top top\nwrite_json top.json\n")
    assert with_xaiger1(new) == new
    with pytest.raises(ValueError, match="no synth_"):
        with_xaiger1("read_rtlil top.il\n")


def test_archive_with_xaiger1_rewrites_the_plans_script_only(tmp_path):
    """The plan zip's yosys script gets the fallback line; the other members stay byte for
    byte, and a zip without the script is refused by name."""
    archive = tmp_path / "plan.zip"
    members = {"top.ys": "read_rtlil top.il\nsynth_ecp5 -top top\n", "top.il": "module x\n",
               "build_top.sh": "yosys -q top.ys\n"}
    with zipfile.ZipFile(archive, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    archive_with_xaiger1(archive, "top.ys")
    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == list(members)
        assert z.read("top.ys").decode() == with_xaiger1(members["top.ys"])
        assert XAIGER1 in z.read("top.ys").decode()
        for name in ("top.il", "build_top.sh"):
            assert z.read(name).decode() == members[name]
    with pytest.raises(KeyError, match="no other.ys"):
        archive_with_xaiger1(archive, "other.ys")
