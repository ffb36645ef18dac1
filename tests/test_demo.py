"""The newcomer's first command: the demo runs on embedded parts and shows one trace."""

from __future__ import annotations

import re

from tests.processes import clean_env, run_launcher


def test_demo_shows_one_trace_with_baggage() -> None:
    result = run_launcher(["demo"], clean_env(), timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^trace [0-9a-f]{32}$", out, re.MULTILINE), out
    assert re.search(r"^└─ checkout  \(demo-producer", out, re.MULTILINE), out
    assert re.search(r"^   └─ apply_async/tasks.charge \[producer\]  \(demo-producer", out, re.MULTILINE), out
    assert re.search(r"^      └─ run/tasks.charge \[consumer\]  \(demo-worker", out, re.MULTILINE), out
    assert "baggage the worker saw: tenant_id=acme_corp, request_source=api_gateway" in out
    assert "one trace across producer and worker: yes" in out
