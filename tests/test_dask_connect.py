"""``--scheduler``: every way of not reaching a usable Dask cluster is one line, soon."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from simulator import executors
from simulator.errors import InputError

distributed = pytest.importorskip("dask.distributed")


def _refused(address: str, timeout_s: float = 1.0) -> str:
    with pytest.raises(InputError) as info:
        executors.connect(address, timeout_s=timeout_s)
    (problem,) = info.value.problems
    assert problem.file == "--scheduler"
    return str(problem)


@pytest.mark.parametrize("address", ["foo", "http://127.0.0.1:8786", "tcp://127.0.0.1",
                                     "tcp://127.0.0.1:notaport", "127.0.0.1:port"])
def test_an_address_that_is_not_one(address):
    assert "not a scheduler address: write tcp://HOST:PORT" in _refused(address)


def test_a_port_that_answers_but_is_not_a_scheduler_does_not_hang():
    # Accepts connections and says nothing: Dask alone would wait for ever.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    started = time.monotonic()
    try:
        message = _refused(f"tcp://127.0.0.1:{port}", timeout_s=1.0)
    finally:
        server.close()
    assert time.monotonic() - started < 10
    assert "no Dask scheduler answers there" in message or "cannot reach" in message


def test_a_scheduler_without_workers():
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  dashboard_address=None) as cluster:
        message = _refused(cluster.scheduler_address, timeout_s=1.0)
    assert "the Dask scheduler has no workers" in message


def test_workers_of_another_version_or_without_fesr_sim(monkeypatch):
    # Threads of this process as workers: they run the function as patched here.
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  protocol="tcp://", dashboard_address=None) as cluster:
        monkeypatch.setattr(executors, "_worker_version", lambda: "0.0.1")
        assert "runs fesr-sim 0.0.1, this is" in _refused(cluster.scheduler_address)

        def missing():
            raise ModuleNotFoundError("No module named 'simulator'")

        monkeypatch.setattr(executors, "_worker_version", missing)
        message = _refused(cluster.scheduler_address)
        assert "its workers cannot run fesr-sim (ModuleNotFoundError" in message
        monkeypatch.undo()
        client = executors.connect(cluster.scheduler_address, timeout_s=5.0)
        client.close()
        # HOST:PORT without its scheme, as Dask itself takes it.
        client = executors.connect(cluster.scheduler_address.removeprefix("tcp://"),
                                   timeout_s=5.0)
        assert client.scheduler.address == cluster.scheduler_address
        client.close()
