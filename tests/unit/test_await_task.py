"""playbook_sync.worker.local.await_task: the one way the CLI and the tests wait for a task (raw meta, never result.ready())."""

from __future__ import annotations

import time

import pytest

from playbook_sync.errors import ServiceError, explain
from playbook_sync.worker.local import BrokerSilent, WorkerLost, await_task, task_result, wait_ready

pytestmark = pytest.mark.unit


class Backend:
    """A result backend that answers with the given metas in turn (an exception is raised), the last one forever."""

    def __init__(self, *answers):
        self.answers, self.unsubscribed = list(answers), []

    def get_task_meta(self, task_id):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def remove_pending_result(self, result):
        self.unsubscribed.append(result.id)


class Result:
    """Only id and backend: reading ready(), state or children would build the chord's AsyncResults."""

    __slots__ = ("backend", "id")

    def __init__(self, backend):
        self.backend, self.id = backend, "task-1"


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_the_stored_meta_once_the_task_finished_and_the_result_is_unsubscribed():
    backend = Backend({"status": "PENDING"}, {"status": "STARTED"}, {"status": "SUCCESS", "result": {"run_id": "r"}})
    waited = []
    meta = await_task(Result(backend), deadline=soon(), poll=0.001, on_wait=waited.append)
    assert meta["result"] == {"run_id": "r"} and len(waited) == 2 and waited == sorted(waited)
    assert backend.unsubscribed == ["task-1"]
    assert task_result(Result(Backend({"status": "FAILURE", "result": ValueError("x")})), timeout=5, poll=0.001).args == ("x",)


def test_a_silent_backend_is_a_broker_error_unless_a_liveness_check_decides():
    with pytest.raises(BrokerSilent, match="refused"):
        await_task(Result(Backend(ConnectionError("refused"))), deadline=soon(), poll=0.001)
    backend = Backend(ConnectionError("refused"), ConnectionError("refused"), {"status": "SUCCESS", "result": 1})
    assert await_task(Result(backend), deadline=soon(), poll=0.001, check=lambda: None)["result"] == 1
    with pytest.raises(WorkerLost, match="the local worker exited"):
        await_task(Result(Backend(ConnectionError("x"))), deadline=soon(), poll=0.001, check=lambda: "the local worker exited")


def test_past_the_deadline_a_timeout_and_the_result_is_still_unsubscribed():
    backend = Backend({"status": "PENDING"})
    with pytest.raises(TimeoutError, match="task-1"):
        await_task(Result(backend), deadline=time.monotonic(), poll=0.001)
    assert backend.unsubscribed == ["task-1"]


class DeadProcess:
    """A worker process that was killed (-9) before it answered a ping."""

    returncode = -9

    def poll(self):
        return self.returncode


class SilentApp:
    class control:  # noqa: N801 - the shape of Celery's app.control
        @staticmethod
        def ping(timeout):
            time.sleep(timeout)
            return []


def test_a_worker_that_dies_before_it_is_ready_is_one_sentence_with_its_log(tmp_path):
    # Was a boxed traceback ending in RuntimeError: celery worker exited with code -9 before it was ready.
    with pytest.raises(ServiceError) as caught:
        wait_ready(SilentApp(), DeadProcess(), 5, log_file=tmp_path / "worker.log")
    line = explain(caught.value)
    assert line == f"the local worker exited (code -9) before it was ready; see {tmp_path / 'worker.log'}"


def test_a_worker_that_never_answers_is_one_sentence_too():
    class Alive(DeadProcess):
        def poll(self):
            return None

    with pytest.raises(ServiceError) as caught:
        wait_ready(SilentApp(), Alive(), 0.1)
    assert explain(caught.value) == "the local worker did not answer within 0.1s of starting"
