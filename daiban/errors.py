"""The few exceptions Daiban raises. Each message is a full sentence in the
active language, with a hint on how to recover where there is one: the message
is what an agent reads."""

from __future__ import annotations


class DaibanError(Exception):
    """A refused operation. The CLI prints the message on one line and exits 1."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class HomeError(DaibanError):
    """The node home is missing, not initialised, or already initialised."""

    code = "home"


class NotFound(DaibanError):
    """An application, item or file that does not exist."""

    code = "not_found"


class ValidationFailed(DaibanError):
    """Input that fails validation. Carries every problem found, so the
    resident is told everything at once (一次性告知)."""

    code = "invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        from daiban.i18n import join

        super().__init__(join([p.text for p in problems]))


class Problem:
    """One thing wrong with one field: the field's key and label, and the reason."""

    __slots__ = ("field", "label", "reason")

    def __init__(self, field: str, label: str, reason: str) -> None:
        self.field = field
        self.label = label
        self.reason = reason

    @property
    def text(self) -> str:
        from daiban.i18n import _

        if not self.label:
            return self.reason
        return _("{label}: {reason}").format(label=self.label, reason=self.reason)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "label": self.label, "reason": self.reason}

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Problem({self.field!r}, {self.reason!r})"


class TransitionRefused(DaibanError):
    """An event that the application's current state does not allow."""

    code = "transition"


class Conflict(DaibanError):
    """A duplicate: the same resident already has an open application for the
    item, or the same ledger was imported before."""

    code = "duplicate"


class LedgerRefused(DaibanError):
    """A ledger with refused rows; nothing from it was stored."""

    code = "ledger"

    def __init__(self, message: str, rows: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.rows = rows


def database_problem(exc: Exception) -> str:
    """One line for an SQLite error, for an agent: what happened and what to do."""
    from daiban.i18n import _

    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return _("the node's database is busy (another Daiban is writing); try again in a moment")
    if "disk is full" in text or "disk i/o" in text:
        return _("the disk is full or failing; nothing half-done was stored. Free space and try again")
    if "not a database" in text or "malformed" in text:
        return _("the node's database is damaged; ask the operator to restore it from its backup")
    if "readonly" in text or "unable to open" in text:
        return _("cannot write the node's database; check the folder's permissions")
    return _("database error ({detail}); nothing half-done was stored").format(detail=exc)
