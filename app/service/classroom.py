"""Class settings kept in the store (shared by every process): freeze, the shared preset, the hidden test set."""
from __future__ import annotations

import numpy as np

from app.store import Store

from .errors import Frozen


class Classroom:
    def __init__(self, store: Store):
        self.store = store

    def frozen(self) -> bool:
        return bool((self.store.get_setting("class.frozen") or {}).get("frozen"))

    def check_not_frozen(self) -> None:
        """Frozen while the instructor has frozen training for everyone."""
        if self.frozen():
            raise Frozen()

    def set_frozen(self, frozen: bool) -> None:
        self.store.put_setting("class.frozen", {"frozen": bool(frozen)})

    def preset(self) -> str | None:
        return (self.store.get_setting("class.preset") or {}).get("link")

    def set_preset(self, link: str | None, assignment: dict | None = None) -> None:
        """The shared link, and the task it defines (app/service/assignment.py)."""
        self.store.put_setting("class.preset", {"link": link, "assignment": assignment} if link else {})

    def assignment(self) -> dict | None:
        """{dataset, features, loss, step_budget} of the pushed preset, or None."""
        return (self.store.get_setting("class.preset") or {}).get("assignment")

    def hidden_test(self) -> dict | None:
        """{"X": rows, "y": rows} or None; never sent to a client."""
        return self.store.get_setting("class.hidden_test") or None

    def set_hidden_test(self, X: list, y: list) -> None:
        # lists for the store's JSON, also when the API passed arrays (app/api/body.py)
        self.store.put_setting("class.hidden_test", {"X": np.asarray(X, np.float64).tolist(),
                                                     "y": np.asarray(y, np.float64).tolist()})

    def clear_hidden_test(self) -> None:
        self.store.put_setting("class.hidden_test", {})
