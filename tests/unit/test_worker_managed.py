"""Python modules' phase methods: sync or `async def` (a pending step the pipeline awaits) before
the handler; an async phase after it is refused at load, naming the entry and the phases."""

from __future__ import annotations

import asyncio
import sys

import pytest

from wasp.config.sections.modules import ModuleEntry
from wasp.worker import managed
from wasp.worker.registry import CONTINUE, FINISH, ModuleError, Phase

SOURCE = '''
from wasp.modules import CONTINUE, FINISH, Module

class Early(Module):
    async def begin_request(self, request):
        return FINISH if request.header("X-Finish") else CONTINUE
    def authorize_request(self, request):
        return CONTINUE

class Wrong(Module):
    async def begin_request(self, request):
        return "yes"

class Late(Module):
    def begin_request(self, request):
        return CONTINUE
    async def end_request(self, request):
        return CONTINUE
'''


class Head:
    def __init__(self, headers):
        self.headers = headers


class Ctx:
    def __init__(self, headers=()):
        self.head = Head(list(headers))


@pytest.fixture
def source(tmp_path):
    (tmp_path / "async_mods_t.py").write_text(SOURCE)
    yield [str(tmp_path)]
    sys.modules.pop("async_mods_t", None)


def module(source, name):
    entry = ModuleEntry(name=name.lower(), type=f"async_mods_t:{name}")
    return managed.ManagedModule(entry, managed.import_class(entry, source))


def test_an_async_phase_is_a_pending_step(source):
    mod = module(source, "Early")
    step = mod.begin_request
    pending = step(Ctx())
    assert asyncio.iscoroutine(pending)
    assert asyncio.run(pending) is CONTINUE
    assert asyncio.run(step(Ctx([(b"x-finish", b"1")]))) is FINISH
    assert mod.authorize_request(Ctx()) is CONTINUE  # a sync one stays a plain call
    assert set(mod.phases) == {Phase.BEGIN_REQUEST, Phase.AUTHORIZE_REQUEST}


def test_an_async_phase_must_return_continue_or_finish(source):
    with pytest.raises(TypeError, match="begin_request\\(\\) returned 'yes'"):
        asyncio.run(module(source, "Wrong").begin_request(Ctx()))


def test_an_async_phase_after_the_handler_is_refused_at_load(source):
    with pytest.raises(ModuleError, match="end_request cannot be async"):
        module(source, "Late")
