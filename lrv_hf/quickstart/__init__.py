"""The quickstart: the whole LRV loop end to end on a synthetic release, offline, on CPU, in a few minutes.

`run_quickstart(QuickstartConfig(...))` runs it (`steps`), `report` writes report.md, `cli` is `lrv-hf quickstart`.
"""

from .config import QuickstartConfig
from .steps import QuickstartResult, run_quickstart


__all__ = ["QuickstartConfig", "QuickstartResult", "run_quickstart"]
