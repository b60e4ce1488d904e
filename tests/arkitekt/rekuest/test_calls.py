from __future__ import annotations

import enum
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from arkitekt import App, Provide, inject
from arkitekt._settings import Settings
from arkitekt.extension import ScopeKind, current_scope
from arkitekt.rekuest import (
    AssignmentCancelledError,
    BadArgumentsError,
    CallEvent,
    CallTimeoutError,
    NoAgentError,
    Registry,
    RemoteError,
    acall,
    acancel,
    aiterate,
    asubmit,
    call,
    cancel,
    current_assignment,
    iterate,
    log,
    progress,
    submit,
)
from arkitekt_server import EmbeddedServer
from tests.helpers import until

registry = Registry()
invocations: list[str] = []
cancelled: list[str] = []
closed = threading.Event()


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@registry.register
def c_add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    invocations.append("c_add")
    return a + b


@registry.register
async def c_scale(values: list[float], factor: float, mode: Mode = Mode.FAST) -> list[str]:
    return [*(str(v * factor) for v in values), mode.name, str(isinstance(mode, Mode))]


@registry.register
def c_maybe(x: int | None = None, table: dict[str, int] | None = None) -> str:
    return f"{x}:{table}"


@registry.register
def c_fail(message: str) -> int:
    raise ValueError(f"bad input: {message}")


@registry.register
def c_where() -> dict[str, str | None]:
    scope = current_scope()
    context = current_assignment()
    return {
        "kind": scope.kind.name,
        "thread": threading.current_thread().name,
        "assignment": context.id if context else None,
    }


@registry.register
@inject
async def c_settings(x: int, settings: Settings = Provide("settings")) -> str:
    return f"{x}:{settings.rekuest.max_workers}"


@registry.register
def c_frames(count: int) -> Iterator[int]:
    try:
        for i in range(count):
            yield i * 10
    finally:
        closed.set()


@registry.register
async def c_aframes(count: int) -> AsyncIterator[str]:
    for i in range(count):
        await anyio.lowlevel.checkpoint()
        yield f"frame-{i}"


@registry.register
async def c_sleep(seconds: float) -> str:
    progress(1, "sleeping")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        cancelled.append("c_sleep")
        raise
    return "woke"


@registry.register
def c_busy(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            progress(50, "busy")
            time.sleep(0.02)
    except AssignmentCancelledError:
        cancelled.append("c_busy")
        raise
    return "done"


@registry.register
def c_chatty(steps: int) -> int:
    for step in range(steps):
        progress(100 * (step + 1) // steps, f"step {step}")
    log("hello from the agent")
    log("careful", "warning")
    return steps


@pytest.mark.anyio
async def test_calls_with_every_kind_of_argument(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect():
        assert await acall("c_add", 1, b=2) == 3
        assert await acall("c_add", 41) == 42
        assert await acall(c_add, a=1) == 2  # the function object works too
        scaled = await acall("c_scale", values=[1, 2.5], factor=2, mode=Mode.SLOW)
        assert scaled == ["2.0", "5.0", "SLOW", "True"]
        assert await acall("c_maybe") == "None:None"
        assert await acall("c_maybe", x=3, table={"a": 1}) == "3:{'a': 1}"
        assert await acall("c_settings", 7) == "7:8"


@pytest.mark.anyio
async def test_each_assignment_runs_in_its_own_task_scope(
    connect: Callable[..., App], serve: Any
) -> None:
    async with serve(connect(), registry), connect():
        first, second = await acall("c_where"), await acall("c_where")
    assert first["kind"] == second["kind"] == ScopeKind.TASK.name
    assert first["thread"] != threading.main_thread().name  # sync functions run in workers
    assert first["assignment"]
    assert first["assignment"] != second["assignment"]


def test_sync_twins_in_with_app(connect: Callable[..., App]) -> None:
    agent_app, caller_app = connect(), connect()
    agent_app.rekuest.registry = registry
    with agent_app:
        agent_app.app_slot.scope.bridge.call(agent_app.rekuest.astart)
        with caller_app:
            assert call("c_add", 2, 3) == 5
            closed.clear()
            assert list(iterate("c_frames", count=3)) == [0, 10, 20]
            assert closed.is_set()
            with pytest.raises(RemoteError, match="bad input: sync"):
                call("c_fail", "sync")
            job = submit("c_add", 1)
            assert job.result() == 2
            busy = submit("c_busy", 30)
            cancel(busy.id)  # by id, as another thread or process could
            with pytest.raises(AssignmentCancelledError):
                busy.result()


@pytest.mark.anyio
async def test_remote_errors_carry_the_traceback(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect():
        with pytest.raises(RemoteError) as caught:
            await acall("c_fail", message="oops")
    error = caught.value
    assert error.remote_message == "ValueError: bad input: oops"
    assert "Traceback (most recent call last)" in error.remote_traceback
    assert 'raise ValueError(f"bad input: {message}")' in error.remote_traceback
    assert error.assignment_id


@pytest.mark.anyio
async def test_bad_arguments_never_reach_the_agent(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect():
        before = len(invocations)
        cases = [
            ((), {"a": "one"}, "argument 'a': expected int"),
            ((), {}, "missing the required argument 'a'"),
            ((1,), {"c": 3}, "unexpected argument 'c'"),
            ((1, 2, 3), {}, "takes 2 argument"),
        ]
        for args, kwargs, message in cases:
            with pytest.raises(BadArgumentsError, match=message):
                await acall("c_add", *args, **kwargs)
        with pytest.raises(BadArgumentsError, match="expected one of 'FAST', 'SLOW'"):
            await acall("c_scale", values=[1], factor=1, mode="MEDIUM")
        with pytest.raises(BadArgumentsError, match="is a stream; use iterate"):
            await acall("c_frames", count=1)
        assert len(invocations) == before


@pytest.mark.anyio
async def test_no_agent_fails_at_once_or_waits(
    connect: Callable[..., App], serve: Any, server: EmbeddedServer
) -> None:
    late = Registry()

    @late.register
    def c_late(x: int) -> int:
        return x * 2

    async with connect() as caller_app:
        with pytest.raises(NoAgentError, match="no function 'c_nowhere'"):
            await acall("c_nowhere")
        start = time.monotonic()
        with pytest.raises(NoAgentError, match=r"c_nowhere.*\(waited 0.3 s\)"):
            await acall("c_nowhere", wait=0.3)
        assert time.monotonic() - start >= 0.25
        result: list[int] = []

        async def caller() -> None:
            result.append(await acall("c_late", 21, wait=10))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(caller)
            await anyio.sleep(0.3)
            assert result == []
            async with serve(connect(), late) as agent:
                await until(lambda: bool(result))
        assert result == [42]
        client = (await caller_app.container.transport()).client
        offline: list[bool] = []

        async def gone() -> None:  # the server notices the closed socket a moment later
            agents = (await client.get(f"{server.url}/rekuest/agents/")).json()
            offline.append(not next(a for a in agents if a["key"] == agent.key)["online"])

        with anyio.fail_after(5):
            while not offline or not offline[-1]:
                await gone()
        # Its agent is gone again: a clear error, naming the function.
        with pytest.raises(NoAgentError, match="provides 'c_late'"):
            await acall("c_late", 1)


@pytest.mark.anyio
async def test_streams(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect():
        assert [item async for item in aiterate("c_aframes", 3)] == [
            "frame-0",
            "frame-1",
            "frame-2",
        ]
        closed.clear()
        seen = []
        async for item in aiterate("c_frames", count=1000):
            seen.append(item)
            if len(seen) == 2:
                break
        assert seen == [0, 10]
        await until(closed.is_set)  # leaving early closed the generator on the agent
        with pytest.raises(BadArgumentsError, match="not a stream; use call"):
            async for _ in aiterate("c_add", 1):
                pass


@pytest.mark.anyio
async def test_progress_and_logs_reach_the_caller_and_the_server(
    connect: Callable[..., App], serve: Any, server: EmbeddedServer
) -> None:
    events: list[CallEvent] = []
    async with serve(connect(), registry), connect() as caller:
        assert await acall("c_chatty", 4, on_event=events.append) == 4
        transport = await caller.container.transport()
        stored = await transport.client.get(
            f"{server.url}/rekuest/assignments/{events[0].assignment_id}"
        )
    progress_events = [(e.progress, e.message) for e in events if e.kind == "progress"]
    assert progress_events == [(25, "step 0"), (50, "step 1"), (75, "step 2"), (100, "step 3")]
    logs = [(e.level, e.message) for e in events if e.kind == "log"]
    assert logs == [("info", "hello from the agent"), ("warning", "careful")]
    assert stored.status_code == 200
    body = stored.json()
    assert body["status"] == "done"
    assert body["result"] == 4
    assert [line["message"] for line in body["logs"]] == ["hello from the agent", "careful"]


@pytest.mark.anyio
async def test_cancelling_the_awaiting_task_stops_the_function(
    connect: Callable[..., App], serve: Any
) -> None:
    cancelled.clear()
    async with serve(connect(), registry) as agent, connect():
        # Cancel only once the function runs: a fixed delay raced the agent's start on a
        # loaded machine, and a call cancelled before it starts has nothing to stop.
        running = anyio.Event()

        def on_event(event: CallEvent) -> None:
            if event.kind == "progress":
                running.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(functools.partial(acall, "c_sleep", 30, on_event=on_event))
            await running.wait()
            tasks.cancel_scope.cancel()
        await until(lambda: "c_sleep" in cancelled)
        await until(lambda: not agent.holding)  # the server acknowledged the outcome
        # The timeout leaves the call ample time to start (the agent is warm by now).
        with pytest.raises(CallTimeoutError, match=r"within 2 s"):
            await acall("c_sleep", 30, timeout=2)
        await until(lambda: cancelled.count("c_sleep") == 2)


@pytest.mark.anyio
async def test_cancel_by_id_and_cooperative_sync_cancel(
    connect: Callable[..., App], serve: Any
) -> None:
    cancelled.clear()
    async with serve(connect(), registry), connect(), anyio.create_task_group() as tasks:
        ids: list[str] = []
        outcome: list[BaseException] = []

        async def run(name: str) -> None:
            try:
                await acall(name, 30, on_event=lambda event: ids.append(event.assignment_id))
            except AssignmentCancelledError as error:
                outcome.append(error)

        for name in ("c_sleep", "c_busy"):
            ids.clear()
            tasks.start_soon(run, name)
            await until(lambda: bool(ids))
            await acancel(ids[0])
            await until(lambda name=name: len(outcome) == 1 + (name == "c_busy"))
        await until(lambda: sorted(cancelled) == ["c_busy", "c_sleep"])
    assert all(isinstance(error, AssignmentCancelledError) for error in outcome)


@pytest.mark.anyio
async def test_submit_returns_a_handle(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect():
        job = await asubmit("c_add", 1, b=5)
        assert len(job.id) == 32
        assert "c_add" in repr(job)
        assert await job.aresult() == 6
        sleeper = await asubmit("c_sleep", 30)
        await sleeper.acancel()
        with pytest.raises(AssignmentCancelledError):
            await sleeper.aresult()
        timed = await asubmit("c_sleep", 30, timeout=0.2)
        with pytest.raises(CallTimeoutError, match=r"within 0\.2 s"):
            await timed.aresult()
