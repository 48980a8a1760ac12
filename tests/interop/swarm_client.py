"""Minimal client for the swarm rollout protocol, version 2.

Written from protocol/PROTOCOL.md alone (sections 1-9), without reading the Rust implementation,
for the interoperability test: it shares no code or assumptions with the crate it checks.
Dependencies: the standard library, `blake3` and `PyNaCl`.

    python3 swarm_client.py selftest [PROTOCOL.md]  check the section 9 test vector byte for byte
    python3 swarm_client.py serve                   answer JSON requests, one per line:
      {"op": "decode", "envelope": hex, "network": name}
        -> {"ok": true, "message_id", "signer", "bundle"} or {"ok": false, "error": section 7 reason}
      {"op": "sign", "seed": 64 hex, "bundle": {...}} -> {"envelope", "message_id", "author"}
      anything else -> {"error": "..."}
"""

import json
import struct
import sys
from pathlib import Path

import blake3
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

VERSION = 2
DOMAIN = b"swarm/rollout/v2"
HEADER_LEN = 42  # version u16 + signer bytes32 + payload length u64
SIGNATURE_LEN = 64

# Payload schema (section 3). A type is a primitive name, ("list", T), ("struct", fields)
# or ("enum", variants), where fields and variants are tuples of (name, type) pairs.
POLICY = ("struct", (("model_name", "str"), ("architecture_hash", "b32"),
                     ("tokenizer_hash", "b32"), ("policy_version", "u64")))
SAMPLING = ("struct", (("temperature", "f32"), ("top_p", "f32"),
                       ("top_k", "u32"), ("max_new_tokens", "u32")))
TASK = ("enum", (
    ("Procedural", ("struct", (("family", "str"), ("difficulty", "u32"),
                               ("seed", "u64"), ("index", "u64")))),
    ("Dataset", ("struct", (("dataset_hash", "b32"), ("row", "u64")))),
    ("Unlabeled", ("struct", (("prompt_hash", "b32"),))),
))
COMPLETION = ("struct", (("text", "str"), ("token_ids", ("list", "u32")),
                         ("logprobs", ("list", "f32")), ("reward", "f32"), ("truncated", "bool")))
BUNDLE = ("struct", (("network_id", "b32"), ("author", "b32"), ("sequence", "u64"),
                     ("created_at_ms", "u64"), ("policy", POLICY), ("sampling", SAMPLING),
                     ("task", TASK), ("prompt", "str"), ("completions", ("list", COMPLETION))))


class Malformed(ValueError):
    """Bytes that do not follow the layout of sections 1-3."""


class Rejected(Exception):
    """An envelope failing a check of section 7; `reason` is the section 7 name."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def blake(data):
    return blake3.blake3(data).digest()


def network_id(name):
    return blake(name.encode("utf-8"))


def topic(name):
    return f"/swarm/{name}/rollouts/{VERSION}"


def message_id(message):
    return blake(message)[:20]


def signing_input(payload):
    return DOMAIN + blake(payload)


# ---- encoding: JSON-shaped values to bytes ----

def _check(ok, what, value):
    if not ok:
        raise ValueError(f"expected {what}, got {value!r}"[:300])
    return value


def _uint(value, size):
    _check(type(value) is int and 0 <= value < 1 << (8 * size), f"a u{8 * size}", value)
    return value.to_bytes(size, "little")


def _fields(value, fields):
    names = [name for name, _ in fields]
    _check(isinstance(value, dict) and set(value) == set(names), f"exactly the keys {names}",
           sorted(value) if isinstance(value, dict) else value)
    return [(value[name], typ) for name, typ in fields]


def encode(typ, value):
    if typ in ("u32", "u64"):
        return _uint(value, 4 if typ == "u32" else 8)
    if typ == "f32":
        return struct.pack("<f", _check(type(value) in (int, float), "a number", value))
    if typ == "bool":
        return b"\x01" if _check(type(value) is bool, "a bool", value) else b"\x00"
    if typ == "b32":
        raw = bytes.fromhex(_check(isinstance(value, str), "a hex string", value))
        _check(len(raw) == 32, "32 bytes", value)
        return raw
    if typ == "str":
        raw = _check(isinstance(value, str), "a string", value).encode("utf-8")
        return _uint(len(raw), 8) + raw
    kind, arg = typ
    if kind == "list":
        _check(isinstance(value, list), "a list", value)
        return _uint(len(value), 8) + b"".join(encode(arg, item) for item in value)
    if kind == "struct":
        return b"".join(encode(t, v) for v, t in _fields(value, arg))
    # enum: {"Variant": {fields}}
    names = [name for name, _ in arg]
    _check(isinstance(value, dict) and len(value) == 1 and next(iter(value)) in names,
           f"one key of {names}", value)
    (name, inner), = value.items()
    index = names.index(name)
    return _uint(index, 4) + encode(arg[index][1], inner)


# ---- decoding: bytes to JSON-shaped values, consuming input exactly ----

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n > self.remaining():
            raise Malformed(f"need {n} bytes at offset {self.pos}, have {self.remaining()}")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def uint(self, size):
        return int.from_bytes(self.take(size), "little")


def decode(typ, r):
    if typ in ("u32", "u64"):
        return r.uint(4 if typ == "u32" else 8)
    if typ == "f32":
        return struct.unpack("<f", r.take(4))[0]
    if typ == "bool":
        byte = r.take(1)[0]
        if byte > 1:
            raise Malformed(f"bool byte {byte:#04x} at offset {r.pos - 1}")
        return byte == 1
    if typ == "b32":
        return r.take(32).hex()
    if typ == "str":
        n = r.uint(8)  # take() checks n against the bytes remaining before slicing
        try:
            return r.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise Malformed(f"invalid UTF-8: {e}") from None
    kind, arg = typ
    if kind == "list":
        n = r.uint(8)
        if n > r.remaining():  # every element takes at least one byte
            raise Malformed(f"list of {n} elements with {r.remaining()} bytes left")
        return [decode(arg, r) for _ in range(n)]
    if kind == "struct":
        return {name: decode(t, r) for name, t in arg}
    index = r.uint(4)
    if index >= len(arg):
        raise Malformed(f"unknown enum variant {index}")
    name, inner = arg[index]
    return {name: decode(inner, r)}


def decode_exact(typ, data):
    r = Reader(data)
    value = decode(typ, r)
    if r.remaining():
        raise Malformed(f"{r.remaining()} trailing bytes")
    return value


# ---- envelope and signing (sections 2 and 4) ----

def seal(seed, bundle):
    """Sign `bundle` (author replaced by the seed's public key); return (envelope, public key)."""
    key = SigningKey(seed)
    public = key.verify_key.encode()
    payload = encode(BUNDLE, dict(bundle, author=public.hex()))
    signature = key.sign(signing_input(payload)).signature
    header = _uint(VERSION, 2) + public + _uint(len(payload), 8)
    return header + payload + signature, public


def open_envelope(envelope, network):
    """Section 7 checks 2-8; return (signer, bundle) or raise Rejected."""
    if len(envelope) < 2:
        raise Rejected("malformed_envelope")
    if int.from_bytes(envelope[:2], "little") != VERSION:
        raise Rejected("unsupported_version")
    if len(envelope) < HEADER_LEN:
        raise Rejected("malformed_envelope")
    signer = envelope[2:34]
    n = int.from_bytes(envelope[34:42], "little")
    if len(envelope) != HEADER_LEN + n + SIGNATURE_LEN:
        raise Rejected("malformed_envelope")
    payload, signature = envelope[HEADER_LEN:HEADER_LEN + n], envelope[HEADER_LEN + n:]
    try:  # libsodium: canonical S, R and key not of small order, cofactorless equation
        VerifyKey(signer).verify(signing_input(payload), signature)
    except BadSignatureError:
        raise Rejected("bad_signature") from None
    try:
        bundle = decode_exact(BUNDLE, payload)
    except Malformed:
        raise Rejected("malformed_payload") from None
    if bundle["author"] != signer.hex():
        raise Rejected("author_mismatch")
    if bundle["network_id"] != network_id(network).hex():
        raise Rejected("wrong_network")
    return signer, bundle


# ---- selftest against the section 9 test vector ----

def read_vector(text):
    block = text.split("<!-- test-vector:begin -->")[1].split("<!-- test-vector:end -->")[0]
    vector = {}
    for line in block.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("```"):
            vector[parts[0]] = vector.get(parts[0], "") + parts[1]
    return vector


def vector_bundle(name, author):
    """The bundle section 9 describes in words."""
    return {
        "network_id": network_id(name).hex(), "author": author.hex(),
        "sequence": 1, "created_at_ms": 1700000000000,
        "policy": {"model_name": "tiny-policy", "architecture_hash": "11" * 32,
                   "tokenizer_hash": "22" * 32, "policy_version": 12},
        "sampling": {"temperature": 1.0, "top_p": 0.9375, "top_k": 50, "max_new_tokens": 16},
        "task": {"Procedural": {"family": "basic_arithmetic", "difficulty": 1,
                                "seed": 42, "index": 0}},
        "prompt": "What is 2 + 3?",
        "completions": [{"text": "5", "token_ids": [20, 151643], "logprobs": [-0.5, -0.125],
                         "reward": 1.0, "truncated": False}],
    }


def _outcome(function, *args):
    """The exception class name or rejection reason `function` raises, else "accepted"."""
    try:
        function(*args)
    except Rejected as e:
        return e.reason
    except Malformed:
        return "Malformed"
    return "accepted"


def selftest(path):
    vector = read_vector(Path(path).read_text(encoding="utf-8"))
    name, seed = "swarm-vector", bytes(range(32))
    public = SigningKey(seed).verify_key.encode()
    built = vector_bundle(name, public)
    envelope, _ = seal(seed, built)
    payload = envelope[HEADER_LEN:-SIGNATURE_LEN]
    signer, decoded = open_envelope(envelope, name)
    task_at = payload.index(b"basic_arithmetic") - 12  # variant index, then the family's length
    count_at = payload.index(b"What is 2 + 3?") + 14  # completions count
    bad_payloads = {
        "trailing byte": payload + b"\x00",
        "truncated": payload[:-1],
        "bool 02": payload[:-1] + b"\x02",
        "enum index 3": payload[:task_at] + _uint(3, 4) + payload[task_at + 4:],
        "invalid UTF-8": payload.replace(b"What", b"\xffhat"),
        "2^40 completions": payload[:count_at] + _uint(1 << 40, 8) + payload[count_at + 8:],
    }
    flipped = envelope[:-1] + bytes([envelope[-1] ^ 1])
    checks = [
        ("seed", seed.hex(), vector.get("seed")),
        ("public_key", public.hex(), vector.get("public_key")),
        ("network_name", name, vector.get("network_name")),
        ("network_id", network_id(name).hex(), vector.get("network_id")),
        ("topic", topic(name), vector.get("topic")),
        ("payload", payload.hex(), vector.get("payload")),
        ("payload_blake3", blake(payload).hex(), vector.get("payload_blake3")),
        ("signing_input", signing_input(payload).hex(), vector.get("signing_input")),
        ("signature", envelope[-SIGNATURE_LEN:].hex(), vector.get("signature")),
        ("envelope", envelope.hex(), "".join(vector.get(k, "") for k in
                                             ("envelope_header", "payload", "signature"))),
        ("envelope length", len(envelope), 417),
        ("message_id", message_id(envelope).hex(), vector.get("message_id")),
        ("decoded signer", signer.hex(), public.hex()),
        ("decoded bundle", decoded, built),
        ("re-encoded payload", encode(BUNDLE, decoded).hex(), payload.hex()),
        ("flipped signature bit", _outcome(open_envelope, flipped, name), "bad_signature"),
        ("trailing envelope byte", _outcome(open_envelope, envelope + b"\x00", name),
         "malformed_envelope"),
        ("version 3", _outcome(open_envelope, b"\x03" + envelope[1:], name), "unsupported_version"),
        ("other network", _outcome(open_envelope, envelope, "other"), "wrong_network"),
    ] + [(f"payload with {what}", _outcome(decode_exact, BUNDLE, bad), "Malformed")
         for what, bad in bad_payloads.items()]
    failed = [(what, got, want) for what, got, want in checks if got != want]
    for what, got, want in failed:
        print(f"selftest FAILED {what}:\n  got      {got}\n  expected {want}")
    if failed:
        return 1
    print(f"selftest ok: {len(checks)} checks")
    return 0


# ---- serve: JSON requests on stdin, one response line each on stdout ----

def handle(request):
    """Answer one request (the shapes are in the module docstring)."""
    _check(isinstance(request, dict), "a JSON object", request)
    op = request.get("op")
    if op == "decode":
        network = _check(isinstance(request["network"], str), "a string", request["network"])
        envelope = bytes.fromhex(_check(isinstance(request["envelope"], str), "a hex string",
                                        request["envelope"]))
        try:
            signer, bundle = open_envelope(envelope, network)
        except Rejected as e:
            return {"ok": False, "error": e.reason}
        return {"ok": True, "message_id": message_id(envelope).hex(), "signer": signer.hex(),
                "bundle": bundle}
    if op == "sign":
        seed = encode("b32", request["seed"])
        _check(isinstance(request["bundle"], dict), "a bundle object", request["bundle"])
        envelope, public = seal(seed, request["bundle"])
        return {"envelope": envelope.hex(), "message_id": message_id(envelope).hex(),
                "author": public.hex()}
    raise ValueError(f"unknown op {op!r}")


def serve():
    for line in sys.stdin.buffer:
        try:  # non-finite floats are not JSON: such a bundle is answered with an error
            response = json.dumps(handle(json.loads(line)), allow_nan=False)
        except Exception as e:  # a malformed request must never end the loop
            response = json.dumps({"error": f"{type(e).__name__}: {e}"})
        sys.stdout.write(response + "\n")
        sys.stdout.flush()


def main(argv):
    if len(argv) in (2, 3) and argv[1] == "selftest":
        default = Path(__file__).resolve().parents[2] / "protocol" / "PROTOCOL.md"
        return selftest(argv[2] if len(argv) == 3 else default)
    if argv[1:] == ["serve"]:
        serve()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
