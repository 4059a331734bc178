"""The fault matrix (issue 12): {STT, LLM, TTS, realtime, memory} × {HTTP 500, hang, dropped socket,
bad key 401, connection refused}. Every cell's caller hears a useful sentence within 2.5 s of the
fault and the call ends in an answer, a transfer or a voicemail (tests/voice/fault_matrix.py).

``PHONE_AGENT_MATRIX_STAGES=stt,llm`` runs only those rows, ``PHONE_AGENT_MATRIX_FAULTS=hang`` only
those columns (while working on one ladder).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.voice.fault_matrix import FAULTS, STAGES, matrix_table, run_matrix

CONCURRENCY = 5  # calls at once (each on its own agent and fakes)
READY = STAGES


async def test_every_cell_serves_the_caller(tmp_path: Path) -> None:
    stages = [s for s in os.environ.get("PHONE_AGENT_MATRIX_STAGES", ",".join(READY)).split(",") if s]
    faults = [f for f in os.environ.get("PHONE_AGENT_MATRIX_FAULTS", ",".join(FAULTS)).split(",") if f]
    cells = [(stage, fault) for stage in stages for fault in faults]
    results, seconds = await run_matrix(cells, tmp_path, concurrency=CONCURRENCY)
    table = matrix_table(results, seconds)
    print("\n" + table)
    failed = [f"{r.stage} × {r.fault}" for r in results if not r.passed]
    assert not failed, table
