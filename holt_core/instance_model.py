"""The full validation of an instance registry record (pydantic), behind ``instances.InstanceRecord``'s fast path.

``InstanceRecord.from_json`` reads what holt writes without pydantic; a record it cannot prove plainly valid
(a field of another JSON type, a missing field, text that is not JSON) is read here, so an odd but valid record
reads the same and a malformed one is refused exactly as before. Imported only then.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InstanceModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    run_id: str
    workspace_path: str
    started_at: str
    orchestrator_pid: int = 0
    # Our additions (Go readers ignore unknown keys).
    supervisor_pid: int = 0
    log_dir: str = ""
    status: str = "running"  # running | stopped
    api_url: str = ""  # the approvals API (holt_core/api), once it listens
