"""Every registered component honours its registry's contract (semsyn.testing.conformance)."""

from __future__ import annotations

import pytest

from semsyn.testing.conformance import check_component, conformance_cases


@pytest.mark.parametrize(("kind", "name"), conformance_cases(), ids=lambda v: str(v))
def test_component_conforms(kind: str, name: str) -> None:
    check_component(kind, name)
