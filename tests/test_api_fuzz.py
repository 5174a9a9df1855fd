"""The JSON admin API fuzzed from the OpenAPI document it serves: no 5xx, answers as documented.

schemathesis loads `/api/admin/openapi.json` from the app in-process (a real admin token, the
simulator behind the floor routes) and runs every documented operation with generated valid
and invalid input, checking each answer with schemathesis's checks (no server error, status
codes, content types and bodies as documented, invalid input refused). Each operation with
path parameters also runs on objects that exist, so the fuzzing reaches past the 404.

schemathesis's own pytest plugin (`@schema.parametrize()`) breaks on pytest 9.2 (it reads a
node attribute pytest removed), so each operation is driven through its documented Hypothesis
strategy (`operation.as_strategy()`) instead; every failure is collected and reported at once.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.test_api import make_token

# Per operation and per mode (valid, invalid input): bounded so the run stays well under a
# minute on two shared cores.
EXAMPLES = 40


def load_schema(server):
    """The document the app serves, loaded with a real admin token, and ids of real objects."""
    svc = server.svc
    floors = [f.id for f in svc.directory.floors()]
    displays = [svc.store.add_display(f"Fuzz {i}", floors[i % len(floors)]).id for i in range(3)]
    headers = make_token(svc, name="fuzz")
    schema = schemathesis.openapi.from_wsgi("/api/admin/openapi.json", server.app, headers=headers)
    schema.config.update(headers=headers)
    building = svc.directory.tree().building_of(floors[0])
    known = {"display_id": displays[0], "floor_id": floors[0], "building_id": building.id}
    made = server.app.test_client().post(
        "/api/admin/announcements",
        json={"scope": "all", "title": "Fuzz", "duration_minutes": 30},
        headers=headers,
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    known["announcement_id"] = made.json["id"]
    return schema, known


def strategies(operation, known: dict[str, object]):
    """Valid input, valid input on objects that exist (past the 404), and invalid input."""
    yield "positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    names = {p.name for p in operation.path_parameters}
    if names and names <= set(known):
        real = {name: known[name] for name in names}
        yield "existing", operation.as_strategy(path_parameters=real)
    inputs = (operation.path_parameters, operation.query, operation.body)
    if any(len(group) for group in inputs):  # an operation without input has none to break
        yield "negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_admin_api_conforms_to_its_document(server):
    schema, known = load_schema(server)
    # Deletions last, so the other operations still find the displays the fixture made.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.method.upper() == "DELETE", op.label),
    )
    assert len(operations) >= 18  # every route of the document was loaded
    failures: dict[str, str] = {}
    calls = 0
    started = time.monotonic()
    for operation in operations:
        for kind, strategy in strategies(operation, known):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,  # the same cases on every run: a failure is reproducible
                database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case):
                nonlocal calls
                calls += 1
                # Valid by the document is not always valid by the world: a floor Density
                # knows, a code a screen shows, an image that decodes. Such input gets a 400
                # with a message, which schemathesis's "positive data acceptance" counts as a
                # failure; every other check (no 5xx, documented statuses, content types and
                # bodies, invalid input refused) runs.
                case.call_and_validate(excluded_checks=[positive_data_acceptance])

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group
                failures[f"{operation.label} ({kind})"] = str(exc)[:2000]
    elapsed = time.monotonic() - started
    print(f"fuzz: {len(operations)} operations, {calls} calls, {elapsed:.1f} s")
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


# -- what the fuzzing found, pinned ---------------------------------------------------------------
def test_ids_past_64_bits_are_404_not_500(server):
    """Flask's int converter takes any digits; SQLite's INTEGER stops at 2**63 - 1."""
    client = server.app.test_client()
    headers = make_token(server.svc)
    huge = 2**64
    for method, path, body in (
        ("GET", f"/api/admin/displays/{huge}", None),
        ("PATCH", f"/api/admin/displays/{huge}", {"name": "x"}),
        ("PUT", f"/api/admin/displays/{huge}", {"name": "x"}),
        ("POST", f"/api/admin/displays/{huge}/revoke", None),
        ("DELETE", f"/api/admin/displays/{huge}", None),
    ):
        answer = client.open(path, method=method, json=body, headers=headers)
        assert answer.status_code == 404, (method, path, answer.get_data(as_text=True))
    assert client.get(f"/admin/displays/{huge}").status_code in (302, 404)  # the console too
    for display_id in (huge, -huge):
        paired = client.post(
            "/api/admin/pair", json={"code": "ABCD-EFGH", "display_id": display_id}, headers=headers
        )
        assert paired.status_code == 400 and "display_id" in paired.json["fields"]
    # Ids of up to 18 digits still reach the handler, which finds no such display.
    assert client.get(f"/api/admin/displays/{10**18 - 1}", headers=headers).status_code == 404
