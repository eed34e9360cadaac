from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, PlainSerializer

# Money and quantities are decimal strings on the wire, never floats.
DecimalStr = Annotated[Decimal, PlainSerializer(lambda d: str(d), return_type=str, when_used="json")]


class Contract(BaseModel):
    """An event payload. Frozen; parsed tolerantly so producers can add fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ce_type: ClassVar[str]
    topic: ClassVar[str]
    # Name of the field that is the aggregate id: record key and `ce_subject`.
    key_field: ClassVar[str]

    def key(self) -> str:
        return str(getattr(self, self.key_field))
