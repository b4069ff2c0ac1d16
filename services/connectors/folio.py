"""The Folio adapter (being written on its branch: until then it carries nothing out and checks nothing)."""

from __future__ import annotations

from kodex.config import FolioConnector
from kodex.services.connectors import Carried, Check
from kodex.services.instructions import Instruction


class FolioAdapter:
    system = "folio"

    def __init__(self, config: FolioConnector) -> None:
        self.config = config

    def can(self, action: str) -> bool:
        return False

    def carry_out(self, instruction: Instruction) -> Carried:
        return Carried("retry", detail="not carried out by this adapter")

    def check(self) -> list[Check]:
        return [Check("adapter", False, "the Folio adapter is not built yet")]

    def close(self) -> None:
        return None
