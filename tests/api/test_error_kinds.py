"""The one table from domain error kinds to the wire: HTTP status and headers, stream frame and close code."""
from __future__ import annotations

import pytest

from app.api.errors import WIRE, close_code, domain_response, error_frame, headers_of, status_of
from app.service import errors
from app.service.errors import Kind

# every kind, as a client sees it: (status, fixed headers, the stream frame names the status)
EXPECTED = {
    Kind.NOT_FOUND: (404, {}, False),
    Kind.UNAUTHORIZED: (401, {"WWW-Authenticate": "Bearer"}, False),
    Kind.FORBIDDEN: (403, {}, False),
    Kind.FROZEN: (423, {}, True),
    Kind.CONFLICT: (409, {}, True),
    Kind.BUSY: (503, {}, True),
    Kind.TOO_LARGE: (413, {}, True),
    Kind.TOO_MANY: (429, {}, True),
    Kind.STORE_FULL: (507, {}, True),
    Kind.UNPROCESSABLE: (422, {}, True),
    Kind.STORE_UNAVAILABLE: (503, {}, True),
    Kind.FAILED: (500, {}, False),
}


class Probe(errors.DomainError):
    def __init__(self, kind: Kind, retry_after: float | None = None):
        super().__init__(f"a {kind.name} refusal", retry_after=retry_after)
        self.kind = kind


def test_the_table_has_every_kind():
    assert set(WIRE) == set(Kind) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name)
def test_each_kind_maps_to_its_status_headers_frame_and_close_code(kind):
    status, headers, names_status = EXPECTED[kind]
    err = Probe(kind)
    assert status_of(err) == status and headers_of(err) == headers and close_code(err) == 4000 + status
    response = domain_response(err)
    assert response.status_code == status and response.body == f'{{"detail":"a {kind.name} refusal"}}'.encode()
    assert {k: response.headers[k] for k in headers} == headers and "retry-after" not in response.headers
    frame = {"type": "error", "status": status, "detail": f"a {kind.name} refusal"} if names_status else \
        {"type": "error", "detail": f"a {kind.name} refusal"}
    assert error_frame(err) == frame and list(error_frame(err)) == list(frame)  # key order too


@pytest.mark.parametrize("seconds, header", [(0.2, "1"), (1.0, "1"), (2.6, "3"), (5, "5")])
def test_a_wait_becomes_retry_after_in_whole_seconds(seconds, header):
    err = Probe(Kind.TOO_MANY, seconds)
    assert domain_response(err).headers["retry-after"] == header
    assert error_frame(err) == {"type": "error", "status": 429, "detail": "a TOO_MANY refusal",
                                "retry_after": int(header)}


def test_the_service_errors_map_as_the_api_answers_them():
    cases = [(errors.not_found("m1"), 404, {}), (errors.Unauthorized("no token"), 401, {"WWW-Authenticate": "Bearer"}),
             (errors.Frozen(), 423, {}), (errors.Busy("busy", 1.0), 503, {"Retry-After": "1"}),
             (errors.StoreUnavailable(), 503, {"Retry-After": "5"}),
             (errors.OverLimit(Kind.STORE_FULL, "full"), 507, {}),
             (errors.OverLimit(Kind.TOO_LARGE, "large"), 413, {})]
    assert [(status_of(e), headers_of(e)) for e, _, _ in cases] == [(s, h) for _, s, h in cases]
    assert errors.Frozen().detail == errors.FROZEN == "training is frozen by the instructor"
