"""Ids: the id of an aggregate known by a code, and how it is derived (``GET /ids``).

A creation step (``Household.Applied``, ``Project.Approved``) is signed over its subject,
the id of the aggregate it is about to create; that id is not chosen by the server but
derived from the code in the content, so a client computes it before anyone signs::

    id = uuid5(NAMESPACE, "{kind}:{code}")
    NAMESPACE = uuid5(NAMESPACE_URL, "https://zhuisu.example/ids")
              = 69989ca4-9987-5a2e-a804-5dd7ed619731

(``domain.region.stable_id``; each aggregate's ``create_id``; an account's code is
``REGION/FUND_SOURCE``).  This route answers it for any kind, so a client without a UUID
library can ask; ``zhuisu id`` does the same offline, and ``zhuisu sign`` fills in a
creation step's subject itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Reader
from api.schemas import HOUSEHOLD_ID, problem_responses
from projections.aggregates import ID_KINDS, aggregate_id

router = APIRouter(tags=["commands"])


class IdOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "kind": "household", "code": "H1", "id": HOUSEHOLD_ID, "code_is": "户编号 household code",
        "derivation": 'uuid5(69989ca4-9987-5a2e-a804-5dd7ed619731, "household:H1")',
        "namespace": "69989ca4-9987-5a2e-a804-5dd7ed619731", "name": "household:H1"}]})

    kind: str
    code: str
    id: str = Field(description="the aggregate's id: a creation step's subject")
    code_is: str = Field(description="what the code of this kind is")
    derivation: str = Field(description="uuid5(namespace, name), RFC 9562 (SHA-1)")
    namespace: str
    name: str = Field(description='"{kind}:{code}", hashed as UTF-8')


@router.get("/ids/{kind}/{code:path}", response_model=IdOut,
            responses=problem_responses(401, 403, 422))
def get_id(kind: Annotated[str, Path(description=f"one of {sorted(ID_KINDS)}",
                                     max_length=20)],
           code: Annotated[str, Path(description="the aggregate's code (an account's: "
                                                 "REGION/FUND_SOURCE)")],
           _: Reader) -> Any:
    """The id of the aggregate of ``kind`` known by ``code`` (it need not exist yet), and
    how it is derived: what a creation step is signed over as its subject."""
    return aggregate_id(kind, code)
