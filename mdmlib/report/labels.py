"""The one table of display labels: runs and interval methods as the tables and figures name them."""
from __future__ import annotations

RUN_LABELS = {"baseline": "ADM", "mdm": "ADM+MDM"}
