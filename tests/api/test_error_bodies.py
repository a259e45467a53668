"""Error answers that echo what the client sent stay valid JSON, whatever it sent: a lone UTF-16 surrogate
(the escape "\\ud800" is valid JSON but has no UTF-8 form) is refused at its field, and the echo carries it as
its escape, never a 500 or a dropped connection."""
from __future__ import annotations

import json

import pytest

from .utils import SMALL, client_for, create, make_app

@pytest.mark.parametrize("method, path, body, loc", [
    ("POST", "/api/models", b'{"nickname": "\\ud800"}', ["body", "nickname"]),
    ("POST", "/api/models", b'{"layers": [{"units": 2, "activation": "\\ud800"}]}', ["body", "layers", 0, "activation"]),
    ("POST", "/api/models", b'{"\\udc00": 1}', ["body"]),
    ("POST", "/api/models/{id}/train", b'{"steps": "\\ud800"}', ["body", "steps"]),
    ("PATCH", "/api/models/{id}", b'{"nickname": "a\\udfffb"}', ["body", "nickname"]),
    ("POST", "/api/models/{id}/derive", b'{"equations": {"delta_L": "\\ud800"}}', None),
])
def test_a_lone_surrogate_is_refused_at_its_field_and_echoed_as_its_escape(method, path, body, loc):
    with client_for(make_app()) as client:
        mid = create(client, SMALL)["id"]
        r = client.request(method, path.format(id=mid), content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        detail = json.loads(r.content)["detail"]  # valid JSON
        if loc is not None:
            assert detail[0]["loc"] == loc
        assert b"\\ud800" in r.content or b"\\udc00" in r.content or b"\\udfff" in r.content  # the escape, as sent
