"""Helper processes that take chunks as they come free, with this process joining in.

A local run on ``workers`` processes starts ``workers - 1`` helpers. Every
process, helpers and this one, takes the next chunk nobody has taken yet
(a counter shared by all of them), so no core idles while a chunk is left,
and the end of a run is not left to one process that took chunks ahead of
time. This process takes a chunk only while the next one in order has not
come back; otherwise it hands the results to the caller, in chunk order.

Memory is bounded whatever the speed of the caller: a process must take
one of ``window`` slots (a shared semaphore) before it takes a chunk, and
the slot comes back when the caller is done with that chunk.

Helpers ignore Ctrl-C: this process stops them (:func:`results_in_order`
terminates them on any exception, Ctrl-C included), and a helper whose
parent has gone stops by itself. Why not ``concurrent.futures``: its pool
hands chunks out ahead of time, decodes results in a thread that competes
with this process's own simulation, and a helper stopped in the middle of
sending a result left its manager thread waiting for the rest of the
message for ever, which hung the interpreter's exit after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import multiprocessing

# What a local run uses of multiprocessing, imported with this module rather than
# on the run's first use (about 3 ms of every run on several processes).
import multiprocessing.heap
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import pickle
import signal
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# Every message starts with the chunk number it carries, the length of its pickle and
# the number of buffers that follow the pickle; then each buffer's length.
_HEADER = struct.Struct("<QQQ")
_LENGTH = struct.Struct("<Q")
_CHANNEL_BYTES = 16 * 2**20   # room asked for in a helper's channel (the system caps it)
_PATIENCE_S = 1.0         # how often a waiting process looks whether its parent is alive


class HelperFailed(RuntimeError):
    """A helper process stopped without finishing the chunks it took."""


def results_in_order(task: Callable[[Any], Any], chunks: Sequence[Any], helpers: int,
                     window: int, start: Callable[[], None] | None = None,
                     ending: list | None = None) -> Iterator[Any]:
    """Yield ``task(chunk)`` for every chunk, in chunk order, computed here and on helpers.

    ``task`` runs in the helpers and here; with the ``spawn`` start method
    (where ``fork`` is missing) it and ``chunks`` must be picklable (a chunk
    is whatever ``task`` takes: replication ids, or a scenario's too). ``start`` runs once in
    each helper before its first chunk. An exception raised by ``task`` in a
    helper is raised here, with the helper's traceback as a note; whichever
    process ran the chunk, it is raised at the chunk's turn, once the results
    of the chunks before it are out (a sweep writes the points they finish).

    Once every result is out, the helpers are ending by themselves (a
    process takes a few tens of milliseconds to give its memory back): with
    ``ending``, a list, they go there for the caller to :func:`reap` once it
    has done its own last work, instead of being waited for here.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    shared = _Shared(context.Value("q", 0), context.Semaphore(window), len(chunks))
    inbox = _Inbox()
    started: list[_Helper] = []
    try:
        for _ in range(helpers):
            started.append(_Helper.start(context, task, chunks, shared, start, started))
        # Reading threads start once every helper is forked (forking a process
        # that runs threads is unsafe).
        for helper in started:
            threading.Thread(target=_read, args=(helper.connection, inbox), daemon=True).start()
        for position in range(len(chunks)):
            yield inbox.decoded(_wait_for(position, task, chunks, shared, inbox, started))
            shared.slots.release()
    except BaseException:
        # Ctrl-C, an error, or a caller that stopped reading: the helpers stop now.
        for helper in started:
            helper.process.terminate()
        reap([helper.process for helper in started])
        raise
    # Normally every helper ends by itself once no chunk is left. Each reading
    # thread closes its end of the channel when the helper's end closes.
    if ending is None:
        reap([helper.process for helper in started])
    else:
        ending.extend(helper.process for helper in started)


def reap(processes: list) -> None:
    """Wait for helper processes that are ending; kill one that is still there after 5 s."""
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


@dataclass
class _Shared:
    taken: Any            # multiprocessing.Value: the next chunk nobody has taken
    slots: Any            # multiprocessing.Semaphore: chunks taken and not yet consumed
    chunks: int

    def take(self, block: bool) -> int | None:
        """The number of the next chunk to run, or None (no slot free, or none left).

        Waits at most :data:`_PATIENCE_S` for the counter: a helper killed
        while holding its lock must not hang the process that would notice.
        """
        if not self.slots.acquire(block, _PATIENCE_S if block else None):
            return None
        lock = self.taken.get_lock()
        if lock.acquire(timeout=_PATIENCE_S):
            try:
                index = self.taken.value
                if index < self.chunks:
                    self.taken.value = index + 1
                    return index
            finally:
                lock.release()
        self.slots.release()
        return None

    def all_taken(self) -> bool:
        """Every chunk taken (False as well when the counter cannot be read now)."""
        lock = self.taken.get_lock()
        if not lock.acquire(timeout=_PATIENCE_S):
            return False
        try:
            return self.taken.value >= self.chunks
        finally:
            lock.release()


@dataclass
class _Inbox:
    """Results that came back, by chunk number: raw messages from helpers, objects from here."""

    arrived: dict[int, Any] = field(default_factory=dict)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def put(self, index: int, item: Any) -> None:
        with self.condition:
            self.arrived[index] = item
            self.condition.notify_all()

    def wake(self) -> None:
        with self.condition:
            self.condition.notify_all()

    def pop(self, index: int, wait_s: float = 0.0) -> tuple[bool, Any]:
        with self.condition:
            if wait_s and index not in self.arrived:
                self.condition.wait(wait_s)
            if index in self.arrived:
                return True, self.arrived.pop(index)
            return False, None

    @staticmethod
    def decoded(item: Any) -> Any:
        # Decoded here rather than in the reading thread: decoding holds the
        # interpreter, and this process may be busy simulating meanwhile.
        if isinstance(item, _Failed):
            raise item.error
        if not isinstance(item, _Message):
            return item
        result, error = pickle.loads(item.payload, buffers=item.buffers)
        if error is not None:
            exception, text = error
            exception.add_note(f"raised in a helper process:\n{text}")
            raise exception
        return result


@dataclass
class _Message:
    payload: memoryview
    buffers: list[bytearray]   # the pickle's large buffers, received as they are


@dataclass
class _Failed:
    """The error of a chunk this process ran ahead of its turn."""

    error: Exception


def _wait_for(position, task, chunks, shared, inbox, started) -> Any:
    """The result of chunk ``position``: run chunks here while it is not back."""
    while True:
        found, item = inbox.pop(position)
        if found:
            return item
        index = shared.take(block=False)
        if index is not None:
            try:
                result = task(chunks[index])
            except Exception as exc:   # raised at its turn, as a helper's error is: the
                result = _Failed(exc)  # chunks before it are handed over first
            inbox.put(index, result)
            continue
        found, item = inbox.pop(position, wait_s=_PATIENCE_S if shared.all_taken() else 0.05)
        if found:
            return item
        for helper in started:
            if helper.process.exitcode not in (None, 0):
                raise HelperFailed(f"a helper process stopped unexpectedly "
                                   f"(exit code {helper.process.exitcode})")


@dataclass
class _Helper:
    process: Any
    connection: Any

    @classmethod
    def start(cls, context, task, chunks, shared, start, others: list[_Helper]) -> _Helper:
        receiving, sending = socket.socketpair()
        _widen(sending)
        # A forked helper holds copies of every reading end made so far: it closes
        # them, so that a helper whose parent is gone gets an error writing, not a
        # full channel that nobody reads.
        readers = [receiving] + [helper.connection for helper in others]
        process = context.Process(target=_helper_main,
                                  args=(task, chunks, shared, start, sending, readers,
                                        os.getpid()),
                                  daemon=True)
        try:
            process.start()
        except BaseException:
            receiving.close()
            raise
        finally:
            sending.close()   # this process only reads: the channel ends when the helper does
        return cls(process, receiving)


def _widen(connection: socket.socket) -> None:
    """Let a helper put several megabytes in the channel at once, within the system's limit.

    Fewer round trips between the helper and the reading thread, which
    otherwise wakes up for every 200 KB or so (the default).
    """
    with contextlib.suppress(OSError):   # not allowed: the default works, a little slower
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _CHANNEL_BYTES)


def _read(connection: socket.socket, inbox: _Inbox) -> None:
    """Receive a helper's results as they come (the helper never waits for this process).

    Through a socket rather than a pipe: a pipe holds at most a megabyte
    here, and reading a chunk of several megabytes from it took this
    thread back and forth, each time waiting for the interpreter while
    this process simulated (the helper waited too, up to 25 ms a chunk). A
    socket read with ``MSG_WAITALL`` takes the whole message in one call,
    outside the interpreter.
    """
    try:
        while True:
            header = bytearray(_HEADER.size)
            _receive_into(connection, memoryview(header))
            index, length, count = _HEADER.unpack(header)
            sizes = bytearray(_LENGTH.size * count)
            _receive_into(connection, memoryview(sizes))
            payload = bytearray(length)
            _receive_into(connection, memoryview(payload))
            buffers = []
            for (size,) in _LENGTH.iter_unpack(sizes):
                buffers.append(bytearray(size))
                _receive_into(connection, memoryview(buffers[-1]))
            inbox.put(index, _Message(memoryview(payload), buffers))
    except (EOFError, OSError):
        inbox.wake()   # the helper ended: the waiting process looks at its exit code
    finally:
        connection.close()


def _receive_into(connection: socket.socket, buffer: memoryview) -> None:
    """Fill ``buffer`` from ``connection`` (EOFError if the other end closes first)."""
    wait_all = getattr(socket, "MSG_WAITALL", 0)
    done = 0
    while done < len(buffer):
        # A signal may cut a waiting read short: it returns what came, and we go on.
        count = connection.recv_into(buffer[done:], len(buffer) - done, wait_all)
        if not count:
            raise EOFError("the helper closed its channel")
        done += count


def _helper_main(task, chunks, shared: _Shared, start, connection, readers,
                 parent: int) -> None:
    # The parent stops us. (A termination request ends a helper at once: the command's
    # own handlers are undone at the fork, console._stops_end_child_processes.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for reader in readers:
        reader.close()
    _end_with_parent()
    if start is not None:
        start()
    while os.getppid() == parent:
        index = shared.take(block=True)
        if index is None:
            if shared.all_taken():
                break
            continue
        try:
            payload, buffers = _pickled((task(chunks[index]), None))
        except Exception as exc:  # sent to the parent, which raises it
            payload, buffers = _pickled((None, (_portable(exc), traceback.format_exc())))
        connection.sendall(_HEADER.pack(index, len(payload), len(buffers))
                           + b"".join(_LENGTH.pack(len(b)) for b in buffers))
        connection.sendall(payload)
        for buffer in buffers:
            connection.sendall(buffer)
    connection.close()


def _pickled(value) -> tuple[bytes, list[memoryview]]:
    """``value`` pickled, its large buffers apart (Parquet parts, arrays: pickle's
    protocol 5). Sent as they are and received into buffers of their own, they are
    never copied into or out of the pickle (~0.5 ms of this process's time for a
    reference chunk's 3.4 MB, and of the receiving process's)."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return payload, [buffer.raw() for buffer in buffers]


def _end_with_parent() -> None:
    """Linux: the kernel stops this process when its parent dies (elsewhere: nothing)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _portable(exception: Exception) -> Exception:
    """The exception itself if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exception))
        return exception
    except Exception:
        return RuntimeError(f"{type(exception).__name__}: {exception}")
