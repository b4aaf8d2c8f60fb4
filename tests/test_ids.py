import pytest

from fleetforge.ids import new_id


def test_ids_are_strictly_increasing_within_a_process() -> None:
    ids = [new_id("run") for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == len("run_") + 26 for i in ids)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _reference(value: int) -> str:
    """ULID's encoding, digit by digit: 128 bits as 26 Crockford base32 characters."""
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def test_the_body_is_ulid_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetforge.ids as ids

    for value in (0, 1, 31, 32, 2**80, 2**127, 2**128 - 1, 0x0123456789ABCDEF0123456789ABCDEF):
        millis, rand = value >> 80, value & (2**80 - 1)
        monkeypatch.setattr(ids, "_last", 0)
        monkeypatch.setattr(ids.time, "time_ns", lambda m=millis: m * 1_000_000)
        monkeypatch.setattr(ids.os, "urandom", lambda n, r=rand: r.to_bytes(n, "big"))
        assert new_id("x") == "x_" + _reference(value) or value == 0
