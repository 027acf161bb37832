import numpy as np
import pytest

from sim.golden.packing import (
    bytes_to_words,
    check_packed,
    check_T,
    pack_bitplanes,
    plane_words,
    popcount,
    quantize_unit_interval,
    unpack_bitplanes,
    words_to_bytes,
)


@pytest.mark.parametrize("T", range(1, 17))
def test_unpack_pack_round_trip_is_exact(T, rng):
    a = rng.integers(0, 1 << T, size=(7, 33))
    planes = unpack_bitplanes(a, T)
    assert planes.shape == (T, 7, 33)
    assert np.array_equal(pack_bitplanes(planes), a)


def test_bitplanes_are_msb_first():
    # a = 0b1010 with T = 4: spikes at t = 1 and t = 3
    assert unpack_bitplanes(np.array([0b1010]), 4)[:, 0].tolist() == [1, 0, 1, 0]
    assert unpack_bitplanes(np.array([1]), 3)[:, 0].tolist() == [0, 0, 1]


def test_plane_words_group_neurons_lsb_first(rng):
    planes = rng.integers(0, 2, size=(3, 21))
    words = plane_words(planes, 8)
    assert words.shape == (3, 3)
    for t in range(3):
        for i in range(21):
            assert (words[t, i // 8] >> (i % 8)) & 1 == planes[t, i]


def test_popcount_counts_spikes(rng):
    a = rng.integers(0, 1 << 12, size=500)
    assert popcount(a).tolist() == [bin(int(x)).count("1") for x in a]


@pytest.mark.parametrize("signed", [False, True])
def test_bytes_round_trip(signed, rng):
    lo, hi = (-(1 << 15), 1 << 15) if signed else (0, 1 << 16)
    w = rng.integers(lo, hi, size=100)
    assert np.array_equal(bytes_to_words(words_to_bytes(w, 2, signed), 2, signed), w)


def test_quantize_unit_interval_rounds_half_up_and_clips():
    x = np.array([-0.5, 0.0, 1 / 30, 0.5, 1.0, 2.0])
    assert quantize_unit_interval(x, 4).tolist() == [0, 0, 1, 8, 15, 15]


@pytest.mark.parametrize("bad", [0, 17, -1])
def test_T_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="T must be in 1..16"):
        check_T(bad)


def test_T_must_be_an_integer():
    with pytest.raises(TypeError, match="T must be an integer"):
        check_T(2.5)


def test_out_of_range_words_are_refused():
    with pytest.raises(ValueError, match=r"packed 4-bit words in \[0, 15\]"):
        check_packed(np.array([3, 16]), 4)
    with pytest.raises(ValueError, match="packed"):
        check_packed(np.array([-1]), 4)


def test_non_integer_arrays_are_refused():
    with pytest.raises(TypeError, match="must hold integers"):
        check_packed(np.array([1.5]), 4)
    with pytest.raises(TypeError, match="integer array"):
        check_packed(np.array(["a"]), 4)


def test_too_wide_values_do_not_serialize():
    with pytest.raises(ValueError, match="do not fit 1 byte"):
        words_to_bytes(np.array([256]), 1)
    with pytest.raises(ValueError, match="whole number"):
        bytes_to_words(b"\x00\x01\x02", 2)
