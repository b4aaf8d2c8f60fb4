

# ── the SDK Worker stops the task ─────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["local", "http"])
async def test_the_worker_stops_a_task_whose_run_went_over_budget(
    transport: str, tmp_path: Path
) -> None:
    cancelled = anyio.Event()

    async def handler(task: TaskRun) -> str:
        task.adapter.emit("message", {"turn": 1}, usage={"input_tokens": 600})
        task.adapter.emit("message", {"turn": 2}, usage={"input_tokens": 1200})  # crosses
        for turn in range(3, 1000):  # goes on working until the fleet's refusal stops it
            task.adapter.emit("message", {"turn": turn}, usage={"input_tokens": 1200 + turn})
            try:
                await anyio.sleep(0.05)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise
        return "never"

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(_spec({"max_tokens": 1000}))
        worker = Worker(client, handler, worker_id="w", lease_seconds=30, heartbeat_seconds=0.2)
        with anyio.fail_after(20):
            stats = await worker.run(max_tasks=1)
        events = await client.run_events(run.run_id, limit=1000)
        final = await client.get_run(run.run_id)
        with pytest.raises(BudgetExceededError):  # the same class on every transport
            await client.heartbeat(final.steps[0].task_ids[0], 1, worker_id="w")
    assert cancelled.is_set()
    assert (stats.lost, stats.completed) == (1, 0)
    assert final.status == "failed"
    types = [e.type for e in events]
    assert "budget_exceeded" in types
    assert not [t for t in types if t.startswith("receipt_")]
