"""Event ids stay unique across threads and forked processes."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from sessionware.core.session.ids import new_event_id


def test_ids_are_32_hex_characters_and_distinct() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_ids_made_on_many_threads_at_once_never_collide() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every) == 40_000


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    new_event_id()  # the parent has drawn its prefix and counted
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave without running pytest's exit
        os.close(read)
        os.write(write, " ".join(new_event_id() for _ in range(100)).encode())
        os.close(write)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_event_id() for _ in range(100)}
    assert len(child) == 100
    assert not child & parent
