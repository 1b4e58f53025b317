"""A node's keys in its backup, sealed under a recovery passphrase.

``daiban init --passphrase-stdin`` (or ``daiban keys passphrase`` later) seals
the node's signing key, encryption key and lookup key under the passphrase
into one file in the home, ``keys/recovery.sealed`` (trust/keyfile.py: Argon2id,
then ChaCha20-Poly1305). The passphrase itself is kept nowhere. ``daiban
backup`` copies that file beside the database in a folder replica (Litestream
or snapshots) as ``daiban-keys.sealed``, and again whenever it changes; an
SFTP or S3 replica gets the database alone. ``daiban restore`` opens it with
the passphrase and puts the keys back, so the node carries on with its own
identity (sync/recovery.py)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node.home import LOOKUP_KEY
from daiban.trust import keyfile
from daiban.trust.crypto import ENC_KEY, SIGN_KEY, NodeKeys, fingerprint
from daiban.trust.files import write_secret

SEALED = "keys/recovery.sealed"  # in the home
REPLICA_NAME = "daiban-keys.sealed"  # beside the database in a folder replica
MIN_LENGTH = 10

# What the backup's copy of the keys is, as Keeper.check reports it.
KEPT = "kept"  # the key file is in the replica folder, current
NONE = "none"  # no passphrase set: the backup holds no keys
STALE = "stale"  # the passphrase was set for keys this node no longer has
REMOTE = "remote"  # an SFTP or S3 replica: keys are kept only in folder replicas
FAILED = "failed"  # the folder could not be written; the database backup goes on


class KeysError(DaibanError):
    code = "keys"


def check_passphrase(text: str) -> str:
    """A new recovery passphrase, normalised (NFC, no surrounding blanks);
    refused when it is too short to stand up to guessing."""
    value = unicodedata.normalize("NFC", text).strip()
    if len(value) < MIN_LENGTH:
        raise KeysError(
            _(
                "A recovery passphrase needs at least {n} characters (a few words are easiest to "
                "keep); nothing was changed."
            ).format(n=MIN_LENGTH),
            code="weak_passphrase",
        )
    return value


def is_set(home: Path) -> bool:
    return (home / SEALED).is_file()


def set_passphrase(home: Path, code: str, passphrase: str) -> Path:
    """Seal this node's keys under a (new) recovery passphrase into the home;
    a running backup copies the file into its replica folder."""
    value = check_passphrase(passphrase)
    keys = NodeKeys.load(home)
    data = keyfile.seal(
        value,
        code=code,
        fingerprint=fingerprint(keys.sign_public),
        sign=keys.sign.private_bytes_raw(),
        enc=keys.enc.private_bytes_raw(),
        lookup=(home / LOOKUP_KEY).read_bytes(),
    )
    write_secret(home / SEALED, data)
    return home / SEALED


# -- in the backup ---------------------------------------------------------------


class Keeper:
    """Keeps the home's key file in a folder replica, current. ``check`` looks
    (a stat while nothing changed), copies the file when it changed, and
    returns the new state when the state changed (else None)."""

    def __init__(self, home: Path, folder: Path | None) -> None:
        self.home = home
        self.folder = folder
        self.state: str | None = None
        self.detail = ""
        self._seen: tuple[int, int] | None = None

    def check(self) -> str | None:
        state = self._look()
        if state == self.state:
            return None
        self.state = state
        return state

    def _look(self) -> str:
        if self.folder is None:
            return REMOTE
        path = self.home / SEALED
        try:
            info = path.stat()
        except FileNotFoundError:
            self._seen = None
            return NONE
        mark = (info.st_mtime_ns, info.st_size)
        if mark == self._seen and self.state is not None:
            return self.state
        try:
            data = path.read_bytes()
            if keyfile.header(data)["fingerprint"] != fingerprint(NodeKeys.load(self.home).sign_public):
                state = STALE
            else:
                target = self.folder / REPLICA_NAME
                if not target.is_file() or target.read_bytes() != data:
                    write_secret(target, data)
                state = KEPT
        except (OSError, keyfile.KeyFileError) as exc:
            self.detail = getattr(exc, "strerror", None) or str(exc)
            self._seen = None  # try again at the next look
            return FAILED
        self._seen = mark
        return state


# -- restoring ---------------------------------------------------------------------


def in_replica(folder: Path | None) -> bytes | None:
    """The key file kept in a folder replica, if there is one."""
    if folder is None:
        return None
    path = folder / REPLICA_NAME
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError as exc:
        raise KeysError(
            _("Cannot read the keys kept in {folder}: {error}; nothing was restored.").format(
                folder=folder, error=exc.strerror or type(exc).__name__
            )
        ) from exc


@dataclass(frozen=True)
class Recovered:
    """Keys opened from a replica, not written anywhere yet."""

    opened: keyfile.Opened
    data: bytes


def open_kept(data: bytes, passphrase: str, url: str) -> Recovered:
    """Open the replica's key file with the passphrase; one clear refusal when
    it does not open. Writes nothing."""
    try:
        opened = keyfile.open_file(data, unicodedata.normalize("NFC", passphrase).strip())
    except keyfile.KeyFileError as exc:
        if exc.reason == "wrong_passphrase":
            raise KeysError(
                _(
                    "The recovery passphrase does not open the keys kept in {url}; nothing was "
                    "restored. Try again, or restore with --without-keys if it is lost (new keys; "
                    "enroll again)."
                ).format(url=url),
                code="wrong_passphrase",
            ) from exc
        if exc.reason == "unsupported":
            raise KeysError(
                _(
                    "The keys in {url} were kept by a later version of Daiban ({detail}); restore "
                    "with that version, or with --without-keys."
                ).format(url=url, detail=exc),
                code="keys_unsupported",
            ) from exc
        raise KeysError(
            _(
                "The key file in {url} is damaged ({detail}); nothing was restored. Restore with "
                "--without-keys (new keys; enroll again)."
            ).format(url=url, detail=exc),
            code="keys_damaged",
        ) from exc
    return Recovered(opened, data)


def install(home: Path, recovered: Recovered, code: str, certified: str | None = None) -> list[Path]:
    """Put recovered keys into a home (0600), with the key file itself, so the
    passphrase stays set. Refuses the keys of another node, and keys other
    than the ones the node's certificate names (``certified``: its signing
    key's fingerprint, when it is enrolled)."""
    opened = recovered.opened
    if opened.code != code:
        raise KeysError(
            _(
                "The keys kept beside this backup are those of node {other}, not of {code}; "
                "nothing was restored."
            ).format(other=opened.code, code=code),
            code="keys_of_another_node",
        )
    if certified is not None and opened.fingerprint != certified:
        raise KeysError(
            _(
                "The keys kept beside this backup are older than the node's certificate (the "
                "passphrase was not set again after the node got new keys); nothing was restored. "
                "Restore with --without-keys, then enroll again."
            ),
            code="keys_superseded",
        )
    written = []
    for relative, secret in (
        (SIGN_KEY, opened.sign),
        (ENC_KEY, opened.enc),
        (LOOKUP_KEY, opened.lookup),
        (SEALED, recovered.data),
    ):
        write_secret(home / relative, secret)
        written.append(home / relative)
    return written


def remove(paths: list[Path]) -> None:
    """Take back keys written by a restore that could not finish."""
    for path in paths:
        path.unlink(missing_ok=True)
