from fleetforge.ids import new_id


def test_ids_are_strictly_increasing_within_a_process() -> None:
    ids = [new_id("run") for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == len("run_") + 26 for i in ids)
