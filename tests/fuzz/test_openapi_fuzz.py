"""Schema-driven fuzzing with schemathesis against the live /openapi.json, served by
gunicorn over real PostgreSQL and Redis, with a real admin key and a real client key.

Every check schemathesis has runs, on schema-valid and schema-invalid input alike: no
5xx, nothing answered outside the document, schema-invalid input refused
(negative_data_rejection) and schema-valid input accepted (positive_data_acceptance),
so that what the document says an operation accepts is what it accepts.

Bounded here (fixed seed, a small example budget per operation) so it fits every
test run; `make fuzz` runs it with a larger budget (BOOKING_FUZZ_EXAMPLES) and any
seed (BOOKING_FUZZ_SEED)."""

import os
import re

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import auth

SEED = int(os.environ.get("BOOKING_FUZZ_SEED") or 20261123)
EXAMPLES = int(os.environ.get("BOOKING_FUZZ_EXAMPLES") or 25)

# Schema-valid input that is still refused, by rules an OpenAPI schema cannot state: one
# field against another, a reference to something that must exist, a cursor or key this
# API must have issued. The document states each in the field's description. A 422 is
# excused only if every message it gives is one of these: (field, words in the message);
# a field ending in "." matches as a prefix.
UNSTATABLE_RULES = (
    ("weekly_schedule.", "start must be before end"),
    ("weekly_schedule.", "intervals overlap"),
    ("end", "Must be after start."),
    ("end", "Time off may last at most ten years."),
    ("date", "Give either date or from/to, not both."),
    ("date", "Give date, or both from and to."),
    ("to", "Must be after from."),
    ("to", "Must not be before from."),
    ("intervals", "start must be before end"),
    ("intervals", "intervals overlap"),
    ("to", "The range may span at most 31 days."),
    ("provider_id", "no such provider"),
    ("service_id", "no such service"),
    ("service_id", "not offered by this provider"),
    ("service_ids", "no such service"),
    ("cursor", "invalid cursor"),
    ("Idempotency-Key", "reused with a different request"),
)


def refused_only_by_unstatable_rules(response) -> bool:
    if response.status_code != 422:
        return False
    errors = response.json().get("errors") or {}
    return bool(errors) and all(
        any(_names(rule_field, field) and rule_words in message
            for rule_field, rule_words in UNSTATABLE_RULES)
        for field, messages in errors.items() for message in messages)


def _names(rule_field: str, field: str) -> bool:
    return field.startswith(rule_field) if rule_field.endswith(".") else field == rule_field


def valid_data_is_accepted(ctx, response, case):
    """positive_data_acceptance, but for UNSTATABLE_RULES, a 412 (an If-Match that does
    not match is well-formed and rightly refused) and a 413 (a body over 64 KiB)."""
    if response.status_code in (412, 413) or refused_only_by_unstatable_rules(response):
        return None
    return positive_data_acceptance(ctx, response, case)


CONFIG = SchemathesisConfig.from_dict({
    # The tests send a real key (an admin's, a client's); were schemathesis to generate the
    # Authorization header too, a case meant to go without it would still carry the key.
    # Missing and wrong keys have tests of their own (tests/integration/test_bad_input.py).
    "generation": {"with-security-parameters": False},
    # schemathesis's refusals, and 413: a body over 64 KiB is refused before it is read,
    # whatever it holds (documented on every operation that takes one).
    "checks": {"negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]}},
})


@pytest.fixture
def live_schema(web):
    return schemathesis.openapi.from_url(f"{web}/openapi.json", config=CONFIG)


schema = schemathesis.pytest.from_fixture("live_schema")

BOUNDED = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                              suppress_health_check=list(hypothesis.HealthCheck))


def leave_out_headers_it_could_not_generate(case) -> None:
    """schemathesis's coverage phase cannot draw a header value whose pattern needs other
    characters than letters and digits (If-Match's quotes): it sends "0" and still calls the
    case schema-valid. Such a header is optional here, so leave it out instead."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not case.headers:
        return
    for parameter in case.operation.headers:
        pattern = parameter.definition.get("schema", {}).get("pattern")
        value = case.headers.get(parameter.name)
        if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
            del case.headers[parameter.name]


def call_and_check_everything(case, web: str, key: str) -> None:
    leave_out_headers_it_could_not_generate(case)
    case.call_and_validate(base_url=web, headers=auth(key),
                           excluded_checks=[positive_data_acceptance],
                           additional_checks=[valid_data_is_accepted])


@schema.parametrize()
@hypothesis.seed(SEED)
@BOUNDED
def test_every_operation_answers_as_documented_to_an_admin(case, admin_key, web):
    call_and_check_everything(case, web, admin_key)


@schema.parametrize()
@hypothesis.seed(SEED + 1)
@BOUNDED
def test_every_operation_answers_as_documented_to_a_client(case, client_key, web):
    call_and_check_everything(case, web, client_key)
