"""Schema-driven fuzzing with schemathesis against the live /openapi.json, served by
gunicorn over real PostgreSQL and Redis, with a real admin key and a real client key.

Bounded here (fixed seed, a small example budget per operation) so it fits every
test run; `make fuzz` runs it with a larger budget (BOOKING_FUZZ_EXAMPLES)."""

import os

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import auth

SEED = 20261123
EXAMPLES = int(os.environ.get("BOOKING_FUZZ_EXAMPLES") or 12)
# Required: no 5xx, no answer outside the documented schema, no undocumented status
# code or content type. (Not "schema-valid input must succeed": an unknown provider id
# is schema-valid and rightly 422.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture
def live_schema(web):
    return schemathesis.openapi.from_url(f"{web}/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


BOUNDED = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                              suppress_health_check=list(hypothesis.HealthCheck))


@schema.parametrize()
@hypothesis.seed(SEED)
@BOUNDED
def test_every_operation_answers_as_documented_to_an_admin(case, admin_key, web):
    case.call_and_validate(base_url=web, headers=auth(admin_key), checks=CHECKS)


@schema.parametrize()
@hypothesis.seed(SEED + 1)
@BOUNDED
def test_every_operation_answers_as_documented_to_a_client(case, client_key, web):
    case.call_and_validate(base_url=web, headers=auth(client_key), checks=CHECKS)
