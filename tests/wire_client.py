"""A Daiban client written from docs/openapi.json and daiban/schemas/*.json
alone, as an outside developer would: it imports nothing from ``daiban``
(only the standard library, ``cryptography`` and ``jsonschema``).

It enrolls with a one-time code (the scrypt-stretched HMAC of *Enrollment*),
signs every request (*Authentication of push and pull*), verifies every
answer's ``X-Daiban-Answer-Signature`` against its parent's certified key
(*Signed answers*), builds and seals a ``filed`` envelope itself
(envelope.schema.json: canonical text, HPKE seal, inner and outer
signatures), pushes it and pulls what comes back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

CONTENT_TYPE = "application/vnd.daiban+json+zlib"
H_NODE, H_COUNTER, H_SIG = "X-Daiban-Node", "X-Daiban-Counter", "X-Daiban-Signature"
H_ANSWER = "X-Daiban-Answer-Signature"
MAX_POSITION = 2**53
MAX_COUNTER_JUMP = 2**32
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
LEVEL_LENGTHS = {"town": 9, "district": 6, "city": 4}
DAMM = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
]


class WireError(Exception):
    """An answer that did not verify or is out of bounds."""


# -- the documents' primitives ---------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, non-ASCII as itself, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(sign_public: bytes) -> str:
    digest = hashlib.sha256(sign_public).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def damm_digit(digits: str) -> str:
    interim = 0
    for d in digits:
        interim = DAMM[interim][int(d)]
    return str(interim)


def damm_valid(digits: str) -> bool:
    return damm_digit(digits) == "0"


def verify(public: bytes, signature: bytes, message: bytes) -> None:
    Ed25519PublicKey.from_public_bytes(public).verify(signature, message)  # raises InvalidSignature


def enroll_key(enroll_code: str, child: str) -> bytes:
    """*Enrollment*: scrypt(the 11 digits, "daiban-enroll|" + child, N 32768, r 8, p 1, 32 bytes)."""
    return hashlib.scrypt(
        enroll_code.encode("ascii"),
        salt=("daiban-enroll|" + child).encode(),
        n=32768,
        r=8,
        p=1,
        dklen=32,
        maxmem=64 * 1024 * 1024,
    )


def mac(key: bytes, value: dict[str, Any]) -> str:
    return hmac.new(key, canonical({k: v for k, v in value.items() if k != "mac"}), "sha256").hexdigest()


def request_message(path: str, body: bytes, counter: int, node: str, server: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["DAIBAN-REQUEST-1", "POST", path, digest, str(counter), node, server]).encode()


def answer_message(status: int, body: bytes, binding: str, server: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["DAIBAN-ANSWER-1", str(status), digest, binding, server]).encode()


def check_answer(
    public: bytes, header: str | None, status: int, body: bytes, binding: str, server: str
) -> None:
    if not header or len(header) != 86:
        raise WireError("the answer is not signed")
    try:
        verify(public, unb64(header), answer_message(status, body, binding, server))
    except Exception as exc:  # InvalidSignature, or a header that is not base64url
        raise WireError("the answer's signature does not verify") from exc


def verify_chain(chain: list[dict[str, Any]], root: str) -> dict[str, Any]:
    """envelope.schema.json $defs/chain: root first, each issued by the one before."""
    if not 1 <= len(chain) <= 4:
        raise WireError("a chain has 1 to 4 certificates")
    first = chain[0]
    if (
        first["issuer"] != first["code"]
        or first["role"] != "city"
        or fingerprint(unb64(first["sign"])) != root
    ):
        raise WireError("the chain does not start at the pinned root")
    parent = first
    for index, cert in enumerate(chain):
        if index and (cert["issuer"] != parent["code"] or not cert["code"].startswith(parent["code"])):
            raise WireError("broken chain or name constraint")
        unsigned = {k: v for k, v in cert.items() if k != "sig"}
        verify(unb64(parent["sign"]), unb64(cert["sig"]), canonical(unsigned))
        parent = cert
    return chain[-1]


def encode(value: Any) -> bytes:
    return zlib.compress(canonical(value))


def decode(body: bytes) -> Any:
    inflater = zlib.decompressobj()
    text = inflater.decompress(body, 32 * 1024 * 1024)
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise WireError("not one complete zlib stream")
    return json.loads(text)


# -- the client ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    signature: str | None
    data: Any


@dataclass
class Client:
    url: str
    code: str
    name: str
    sign: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    enc: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    counter: int = 0
    cursor: int = 0
    seq: int = 0
    tracking_counter: int = 0
    root: str = ""
    parent: str = ""
    parent_sign: bytes = b""
    chain: list[dict[str, Any]] = field(default_factory=list)
    offices: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    verified: int = 0  # answers whose signature verified

    @property
    def sign_public(self) -> bytes:
        return raw(self.sign.public_key())

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        request = urllib.request.Request(
            self.url.rstrip("/") + path,
            data=body,
            method="POST",
            headers={"Content-Type": CONTENT_TYPE, **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, resp.read(), resp.headers.get(H_ANSWER)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(), exc.headers.get(H_ANSWER)

    # -- enrollment ----------------------------------------------------------------------------

    def enroll(self, enroll_code: str, root: str | None = None) -> Answer:
        code = enroll_code.replace("-", "").replace(" ", "")
        if not (len(code) == 11 and code.isdigit() and damm_valid(code)):
            raise WireError("the enrollment code fails its check digit")
        key = enroll_key(code, self.code)
        request: dict[str, Any] = {
            "v": 1,
            "code": self.code,
            "name": self.name,
            "sign": b64(self.sign_public),
            "enc": b64(raw(self.enc.public_key())),
            "resume_seq": 0,
        }
        request["mac"] = mac(key, request)
        status, body, header = self._post("/v1/enroll", encode(request), {})
        data = decode(body)
        if status != 200:
            return Answer(status, body, header, data)  # unverifiable for a first enrollment: act on nothing
        if not hmac.compare_digest(mac(key, data), str(data.get("mac"))):
            raise WireError("the answer's mac does not match the enrollment code")
        pinned = root or data["root"]
        if data["root"] != pinned:
            raise WireError("another city root than the one expected")
        chain = data["chain"]
        leaf = verify_chain(chain, pinned)
        if leaf["code"] != self.code or unb64(leaf["sign"]) != self.sign_public or len(chain) < 2:
            raise WireError("the parent certified another node")
        parent = chain[-2]
        if parent["code"] != data["parent"]["code"]:
            raise WireError("the certificate before ours is not the parent's")
        check_answer(unb64(parent["sign"]), header, status, body, request["mac"], parent["code"])
        self.verified += 1
        self.root, self.chain, self.parent, self.parent_sign = (
            pinned,
            chain,
            parent["code"],
            unb64(parent["sign"]),
        )
        for office_chain in [*data["offices"], chain[:-1]]:
            try:
                office = verify_chain(office_chain, pinned)
            except (WireError, KeyError, ValueError):
                continue
            self.offices[office["code"]] = office
        if data.get("manifest"):
            self.manifest = json.loads(data["manifest"])
        return Answer(status, body, header, data)

    # -- signed requests -------------------------------------------------------------------------

    def request(self, path: str, value: Any) -> Answer:
        """A signed request; its answer once verified. A verified 409 moves
        the counter past the parent's, within bounds, and the request is sent again."""
        body = encode(value)
        for _attempt in range(3):
            self.counter += 1
            signature = b64(self.sign.sign(request_message(path, body, self.counter, self.code, self.parent)))
            headers = {H_NODE: self.code, H_COUNTER: str(self.counter), H_SIG: signature}
            status, answer, header = self._post(path, body, headers)
            check_answer(self.parent_sign, header, status, answer, signature, self.parent)
            self.verified += 1
            data = decode(answer)
            if status == 409 and data.get("code") == "replayed":
                theirs = data.get("counter")
                if (
                    not isinstance(theirs, int)
                    or isinstance(theirs, bool)
                    or not self.counter <= theirs <= min(self.counter + MAX_COUNTER_JUMP, MAX_POSITION)
                ):
                    raise WireError("a 409 counter out of bounds")
                self.counter = theirs
                continue
            return Answer(status, answer, header, data)
        raise WireError("the parent keeps refusing the counter")

    def push(self, envelopes: list[str]) -> Answer:
        return self.request("/v1/push", {"envelopes": envelopes, "certs": [self.chain]})

    def pull(self, limit: int = 1000) -> Answer:
        asked = self.cursor
        answer = self.request("/v1/pull", {"cursor": asked, "limit": limit})
        if answer.status == 200:
            data = answer.data
            got, position = data["envelopes"], data["cursor"]
            if len(got) > limit or (data["more"] and len(got) < limit):
                raise WireError("a page out of bounds")
            if (got and not asked < position <= MAX_POSITION) or (not got and position != asked):
                raise WireError("a cursor out of bounds")
            self.cursor = position
        return answer

    # -- envelopes -------------------------------------------------------------------------------

    def tracking(self) -> str:
        self.tracking_counter += 1
        body = self.code.ljust(12, "0") + f"{self.tracking_counter:07d}"
        return body + damm_digit(body)

    def envelope(
        self,
        kind: str,
        to: str,
        tracking: str | None,
        body: dict[str, Any],
        personal: dict[str, Any] | None = None,
        sealed_to: str | None = None,
    ) -> str:
        """One envelope's canonical text, signed, its personal part sealed to ``sealed_to``."""
        self.seq += 1
        envelope_id = os.urandom(16).hex()
        sealed = None
        if personal is not None and sealed_to is not None:
            inner_signed = {"id": envelope_id, "kind": kind, "tracking": tracking, "personal": personal}
            plaintext = canonical({"personal": personal, "sig": b64(self.sign.sign(canonical(inner_signed)))})
            office_enc = X25519PublicKey.from_public_bytes(unb64(self.offices[sealed_to]["enc"]))
            info = f"daiban/v1|{envelope_id}|{kind}".encode()
            sealed = b64(SUITE.encrypt(zlib.compress(plaintext), office_enc, info=info))
        envelope: dict[str, Any] = {
            "v": 1,
            "id": envelope_id,
            "origin": self.code,
            "seq": self.seq,
            "kind": kind,
            "to": to,
            "tracking": tracking,
            "actor": "outside client",
            "at": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
            "body": body,
            "sealed": sealed,
            "sealed_to": sealed_to if sealed is not None else None,
        }
        envelope["sig"] = b64(self.sign.sign(canonical(envelope)))
        return canonical(envelope).decode()

    def filed(
        self, item: dict[str, Any], applicant: dict[str, str], fields: dict[str, Any]
    ) -> tuple[str, str]:
        """A filing for a resident of this node's own division, to the item's
        office (the prefix of the division at the item's level); its tracking
        number and envelope text."""
        office = self.code[: LEVEL_LENGTHS[item["level"]]]
        tracking = self.tracking()
        name, id_number, phone = applicant["name"], applicant["id_number"], applicant["phone"]
        body = {
            "item": item["code"],
            "item_name": item["name"],
            "level": item["level"],
            "region": self.code,
            "office": office,
            "materials": [m["name"] for m in item["materials"]],
            "owed": [],
            "applicant": {
                "name": name[0] + "*" * (len(name) - 2) + name[-1] if len(name) > 1 else "*",
                "id_number": id_number[:4] + "*" * 10 + id_number[-4:],
                "phone": phone[:3] + "*" * (len(phone) - 7) + phone[-4:],
            },
        }
        personal = {"name": name, "id_number": id_number, "phone": phone, "fields": fields}
        return tracking, self.envelope("filed", office, tracking, body, personal, office)

    def check_envelope(self, text: str) -> dict[str, Any]:
        """An envelope from the parent: canonical, signed by its origin's certified key."""
        envelope = json.loads(text)
        if canonical(envelope).decode() != text:
            raise WireError("not canonical text")
        origin = self.offices.get(envelope["origin"])
        if origin is None:
            raise WireError(f"no certificate known for {envelope['origin']}")
        unsigned = {k: v for k, v in envelope.items() if k != "sig"}
        verify(unb64(origin["sign"]), unb64(envelope["sig"]), canonical(unsigned))
        return dict(envelope)
