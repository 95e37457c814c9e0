"""Which app-aware serving techniques are on: one switch each, all on by default.

Users never set these; the serving ablation (``autotqa bench serving --workload agents``) turns them
off one by one to measure what each is worth on the agents' real calls. Where each switch acts:

* ``layout``: ``"stable"`` sends the agents' segments as they are (header + schema first, role text
  last, ``layout.py``); ``"role_first"`` moves the role text in front of the header, so prompts of
  different roles share no prefix (``layout.role_first``, applied by ``client.Program``).
* ``kv_reuse``: the engine keeps and reuses KV state (per-session snapshots, the live prefix, forks
  decoded over one shared prefix). An engine constructor option (``session_cache``), so it is read by
  ``factory.engine_options``; a remote server's own prefix cache cannot be turned off from here.
* ``locality``: the scheduler keeps a session's calls together (started programs first, the
  session live on the slot first, the anticipation hold between a program's calls).
* ``warm_up``: the shared prefix is prefilled when a session opens, and when a program begins unless
  the engine still holds it (``Engine.holds_prefix``; ``client.LLMClient._submit_warmup``).
* ``priority``: the scheduler runs the critical path first (requests others depend on) and honours
  explicit request priority (with aging).

With ``locality`` and ``priority`` both off the scheduler is FIFO.

>>> ServingOptions().all_on
True
>>> ServingOptions(locality=False).policy
'app_aware'
>>> ServingOptions(locality=False, priority=False).policy
'fifo'
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

Layout = Literal["stable", "role_first"]


@dataclass(frozen=True)
class ServingOptions:
    """One switch per technique; the defaults are what every user gets."""

    layout: Layout = "stable"
    kv_reuse: bool = True
    locality: bool = True
    warm_up: bool = True
    priority: bool = True

    def __post_init__(self) -> None:
        if self.layout not in ("stable", "role_first"):
            raise ValueError(f"unknown prompt layout {self.layout!r} (stable or role_first)")

    @property
    def policy(self) -> Literal["app_aware", "fifo"]:
        """The scheduler policy these switches amount to (FIFO when it may reorder nothing)."""
        return "app_aware" if self.locality or self.priority else "fifo"

    @property
    def all_on(self) -> bool:
        return self == ServingOptions()

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
