"""``--request-log``: one JSON line per ended request, for the differential test against
the simulator and for the overhead benchmark. Times are monotonic seconds (one origin for
the proxy and every worker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from kairos.serve.job import Job


class RequestLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def write(self, job: Job) -> None:
        r = job.request
        self._file.write(
            json.dumps(
                {
                    "request_id": job.client_id,
                    "id": r.id,
                    "arrival": r.arrival,
                    "prompt_tokens": r.prompt_tokens,
                    "max_tokens": job.max_tokens,
                    "ttft_slo": r.ttft_slo,
                    "tpot_slo": r.tpot_slo,
                    "prefill_instance": r.prefill_instance,
                    "decode_instance": r.decode_instance,
                    "placement_inputs": job.placement_inputs,
                    "queued": job.queued,
                    "dispatched": job.dispatched,
                    "prefill_start": r.prefill_start,
                    "prefill_end": r.prefill_end,
                    "prefill_seen": job.prefill_seen,
                    "first_sent": job.first_sent,
                    "predicted_prefill": r.predicted_prefill,
                    "preemptions": r.preemptions,
                    "token_times": job.token_times,
                    "status": job.status,
                    "error": job.error.message if job.error else None,
                }
            )
            + "\n"
        )

    def close(self) -> None:
        self._file.close()
