"""Workflows call activities through activities/interfaces.py: every activity an
interface declares is implemented, and the worker registers it under that name."""

from __future__ import annotations

import inspect

from activities.interfaces import INTERFACES
from activities.registry import build_activities, interface_activities
from tests.conftest import TEST_PROOFS


class NoStore:
    """Building the list touches nothing: a stand-in for the store is enough here."""


def test_the_worker_registers_every_declared_activity_once_under_its_name():
    declared = [name for interface in INTERFACES for name in interface_activities(interface)]
    registered = build_activities(NoStore(), TEST_PROOFS)  # type: ignore[arg-type]
    assert sorted(fn.__name__ for fn in registered) == sorted(declared)
    assert len(set(declared)) == len(declared), "two interfaces declare the same activity name"


def test_every_implementation_overrides_the_interface_it_registers():
    for fn in build_activities(NoStore(), TEST_PROOFS):  # type: ignore[arg-type]
        owner = type(fn.__self__)
        assert fn.__func__ is not getattr(owner.__mro__[1], fn.__name__), f"{owner.__name__}.{fn.__name__} is the stub"
        assert inspect.iscoroutinefunction(fn)
