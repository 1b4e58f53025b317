"""The server's first look at a signed request (sync/server.py Senders): it
vouches only for a signature by the key it learnt for that child over a
counter above the last one seen, and sends everything else to the writer,
which decides (service.authenticate)."""

from __future__ import annotations

from daiban.sync import protocol
from daiban.sync.server import Senders
from daiban.trust.crypto import NodeKeys, b64

SERVER, CHILD, PATH, BODY = "370303", "370303101201", "/v1/push", b"\x78\x9c body"


def _headers(keys: NodeKeys, counter: int, body: bytes = BODY, code: str = CHILD) -> dict[str, str]:
    message = protocol.request_message("POST", PATH, body, counter, code, SERVER)
    return {
        protocol.H_NODE: code,
        protocol.H_COUNTER: str(counter),
        protocol.H_SIG: b64(keys.signature(message)),
    }


def test_vouches_only_for_a_learnt_key_and_a_counter_that_goes_up() -> None:
    keys, senders = NodeKeys.generate(), Senders()
    assert not senders.vouch(_headers(keys, 1), PATH, BODY, SERVER)  # never seen: the writer decides
    senders.learn(CHILD, keys.sign_public, 1)
    assert not senders.vouch(_headers(keys, 1), PATH, BODY, SERVER)  # a replay
    assert senders.vouch(_headers(keys, 2), PATH, BODY, SERVER)
    assert not senders.vouch(_headers(keys, 2), PATH, BODY, SERVER)  # replayed once vouched for
    assert senders.vouch(_headers(keys, 9), PATH, BODY, SERVER)


def test_refuses_to_vouch_for_other_bytes_keys_servers_and_forgotten_children() -> None:
    keys, other, senders = NodeKeys.generate(), NodeKeys.generate(), Senders()
    senders.learn(CHILD, keys.sign_public, 1)
    assert not senders.vouch(_headers(keys, 2), PATH, BODY + b"x", SERVER)  # tampered body
    assert not senders.vouch(_headers(other, 3), PATH, BODY, SERVER)  # another key (a new one, or forged)
    assert not senders.vouch(_headers(keys, 4), PATH, BODY, "370304")  # meant for another server
    assert not senders.vouch(_headers(keys, 5), "/v1/pull", BODY, SERVER)  # signed for another path
    sibling = "370303101202"
    assert not senders.vouch(_headers(keys, 6, code=sibling), PATH, BODY, SERVER)  # posing as a sibling
    bad = _headers(keys, 7)
    bad[protocol.H_COUNTER] = "+7"
    assert not senders.vouch(bad, PATH, BODY, SERVER)
    senders.forget(CHILD)  # the writer refused the child: revoked, moved away
    assert not senders.vouch(_headers(keys, 8), PATH, BODY, SERVER)


def test_a_new_key_replaces_the_old_one() -> None:
    old, new, senders = NodeKeys.generate(), NodeKeys.generate(), Senders()
    senders.learn(CHILD, old.sign_public, 5)
    senders.learn(CHILD, new.sign_public, 1)  # re-enrolled: its counter starts again
    assert not senders.vouch(_headers(old, 6), PATH, BODY, SERVER)
    assert senders.vouch(_headers(new, 2), PATH, BODY, SERVER)
