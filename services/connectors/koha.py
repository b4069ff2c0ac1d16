"""The Koha adapter (being written on its branch: until then it carries nothing out and checks nothing)."""

from __future__ import annotations

from kodex.config import KohaConnector
from kodex.services.connectors import Carried, Check
from kodex.services.instructions import Instruction


class KohaAdapter:
    system = "koha"

    def __init__(self, config: KohaConnector) -> None:
        self.config = config

    def can(self, action: str) -> bool:
        return False

    def carry_out(self, instruction: Instruction) -> Carried:
        return Carried("retry", detail="not carried out by this adapter")

    def check(self) -> list[Check]:
        return [Check("adapter", False, "the Koha adapter is not built yet")]

    def close(self) -> None:
        return None
