#!/usr/bin/env python3
"""Serve ReasoningGYM task families to a swarm node over the task plug-in protocol (version 1).

The node starts this script once and talks JSON lines over stdin/stdout, one answer line per request
line, in order (see `handle` for the ops). stdout carries nothing but answers; stderr is for logs.

    python3 scripts/reasoning_gym_plugin.py               # serve (what the node runs)
    python3 scripts/reasoning_gym_plugin.py --self-check  # every family and level; exit 1 on failure
    python3 scripts/reasoning_gym_plugin.py --dump        # fixed requests and answers, to diff across machines

Needs `pip install reasoning-gym==0.1.25` (TESTED_VERSION). Questions are a function of the package
version as well as of (family, difficulty, seed, index): every node of a swarm must run the same one.
"""

import contextlib
import decimal
import hashlib
import io
import json
import os
import struct
import sys
import time

PROTOCOL = 1
TESTED_VERSION = "0.1.25"
PREFIX = "rg/"
# One line for every family, so prompts differ from ReasoningGYM's only by this suffix.
ANSWER_INSTRUCTION = "Give your final answer inside <answer></answer> tags."
# An item whose own reference answer does not score 1.0 is replaced (see `generate`); this bounds the
# redraws. None of the nine families came near it in the self-check.
MAX_DRAWS = 16
U64 = 1 << 64

# Difficulty table: family -> (description, [config of level 0, 1, 2]). Level 1 is the SAPO paper's mix
# (its published dataset settings, minus seed and size) so results compare with the paper; level 0
# shrinks its size knobs for small models; level 2 raises them. bf has a single 1..3 knob, so there
# the SAPO setting (1) is level 0. The comment on each level 0 says why it is easy.
# bf's difficulty 3 is left out: the package runs its programs in a pure-Python interpreter, which
# took 0.46 s per item on average and up to 2.9 s, too slow for peers that regenerate to verify.
FAMILIES = {
    "base_conversion": ("Convert an integer between two bases", [
        # Bases <= 10 (no letter digits) and values <= 100: at most 7 binary digits to write.
        dict(min_base=2, max_base=10, min_value=0, max_value=100),
        dict(min_base=2, max_base=16, min_value=0, max_value=1000),
        dict(min_base=2, max_base=36, min_value=0, max_value=100_000),
    ]),
    "basic_arithmetic": ("Evaluate an integer expression (/ is floor division)", [
        # Two or three 1-2 digit terms, no division, parentheses or negation: one pass left to right.
        dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2, operators=["+", "-", "*"],
             allow_parentheses=False, allow_negation=False, format_style="natural", whitespace="single"),
        dict(min_terms=2, max_terms=6, min_digits=1, max_digits=4, operators=["+", "-", "*", "/"],
             allow_parentheses=True, allow_negation=True, format_style="natural", whitespace="single"),
        dict(min_terms=4, max_terms=8, min_digits=2, max_digits=5, operators=["+", "-", "*", "/"],
             allow_parentheses=True, allow_negation=True, format_style="natural", whitespace="single"),
    ]),
    "arc_1d": ("Infer a 1-D grid transformation from examples and apply it", [
        # Grids of 8-12 cells (8 is the package minimum): short rows make the rule easy to see.
        dict(min_size=8, max_size=12, num_train=3),
        dict(min_size=10, max_size=30, num_train=3),
        dict(min_size=25, max_size=50, num_train=3),
    ]),
    "bf": ("Predict the output of a Brainf*ck program", [
        # Difficulty 1 prints a fixed five-letter word: no loop to trace.
        dict(difficulty=1),
        dict(difficulty=2),  # a loop adding to a counter: 0.03 s per item on average, 0.4 s at most
    ]),
    "propositional_logic": ("Infer a valid conclusion from propositional premises", [
        # At most 3 variables, 3 premises and depth 2: truth tables of at most 8 rows.
        dict(min_vars=2, max_vars=3, min_statements=2, max_statements=3, min_complexity=1, max_complexity=2),
        dict(min_vars=2, max_vars=4, min_statements=2, max_statements=4, min_complexity=1, max_complexity=3),
        dict(min_vars=4, max_vars=6, min_statements=4, max_statements=6, min_complexity=2, max_complexity=4),
    ]),
    "fraction_simplification": ("Reduce a fraction to lowest terms", [
        # Plain a/b with parts <= 20 times a factor <= 10: numbers <= 200 and no LaTeX.
        dict(min_value=1, max_value=20, min_factor=2, max_factor=10, styles=["plain"]),
        dict(min_value=1, max_value=100, min_factor=2, max_factor=100, styles=["plain", "latex_frac", "latex_dfrac"]),
        dict(min_value=1, max_value=1000, min_factor=2, max_factor=1000,
             styles=["plain", "latex_frac", "latex_dfrac"]),
    ]),
    "decimal_arithmetic": ("Evaluate a decimal expression to a given precision", [
        # Two or three terms with 1-2 decimal places: few operations, short operands.
        dict(min_terms=2, max_terms=3, min_num_decimal_places=1, max_num_decimal_places=2, precision=5),
        dict(min_terms=2, max_terms=6, min_num_decimal_places=1, max_num_decimal_places=3, precision=5),
        dict(min_terms=4, max_terms=8, min_num_decimal_places=2, max_num_decimal_places=4, precision=8),
    ]),
    "calendar_arithmetic": ("Weekday, day-count and leap-year questions", [
        # Leap years and weekday shifts of <= 30 days from a named weekday: mod-7 sums, no calendar lookup.
        dict(year=2023, tasks=["is_leap_year", "weekday_offset"], offset_upper_bound=30, leap_year_range=200),
        dict(year=2023, tasks=["count_days", "weekday_of_date", "is_leap_year", "recurring_event_day"],
             offset_upper_bound=100, leap_year_range=200),
        dict(year=2023, tasks=None, offset_upper_bound=365, leap_year_range=400),  # None: all seven tasks
    ]),
    "binary_matrix": ("Manhattan distance to the nearest 0 for each cell of a 0/1 matrix (multi-line answer)", [
        # 3x3 to 5x5: at most 25 distances, on at most 5 short lines.
        dict(min_n=3, max_n=5, p_zero=0.25),
        dict(min_n=3, max_n=10, p_zero=0.25),
        dict(min_n=10, max_n=20, p_zero=0.1),
    ]),
}


class RequestError(Exception):
    """A request the script cannot serve; its message goes back as {"error": ...}."""


rg = None  # the reasoning_gym module, once `load` has run
_datasets = {}


def load():
    global rg
    try:
        # Whatever the package prints on import must not reach the protocol stream.
        with contextlib.redirect_stdout(io.StringIO()):
            import reasoning_gym
    except ImportError as e:
        sys.exit(f"reasoning_gym_plugin: cannot import reasoning_gym ({e}); pip install reasoning-gym=={TESTED_VERSION}")
    rg = reasoning_gym
    if package_version() != TESTED_VERSION:
        print(f"reasoning_gym_plugin: reasoning-gym {package_version()} is installed, tested with "
              f"{TESTED_VERSION}; questions may differ from other nodes'", file=sys.stderr)


def package_version():
    try:
        from importlib.metadata import version
        return version("reasoning-gym")  # reasoning_gym.__version__ lags the release (0.1.19 in 0.1.25)
    except Exception:
        return getattr(rg, "__version__", "unknown")


def dumps(value):
    # Sorted keys, no NaN and ASCII only: the same bytes on every machine whatever its locale.
    return json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def u64(req, key):
    value = req.get(key)
    if type(value) is not int or not 0 <= value < U64:
        raise RequestError(f"{key} must be an unsigned 64-bit integer, got {value!r}")
    return value


def dataset(req):
    """The cached dataset of the request's family and difficulty."""
    family = req.get("family")
    name = family[len(PREFIX):] if isinstance(family, str) and family.startswith(PREFIX) else None
    if name not in FAMILIES:
        raise RequestError(f"unknown family {family!r}")
    levels = FAMILIES[name][1]
    difficulty = req.get("difficulty")
    if type(difficulty) is not int or not 0 <= difficulty < len(levels):
        raise RequestError(f"difficulty of {family} must be an integer in 0..={len(levels) - 1}, got {difficulty!r}")
    key = (name, difficulty)
    if key not in _datasets:
        # All nine draw item i from Random(seed + i) and keep no other state, so one object with seed 0
        # per level serves every item, and construction (cheap anyway) happens once.
        config = json.loads(json.dumps(levels[difficulty]))  # a private copy of the table's lists
        _datasets[key] = rg.create_dataset(name, seed=0, size=1, **config)
    return _datasets[key]


def item_index(family, difficulty, seed, index, draw):
    # The index handed to the dataset, i.e. its Random seed: a hash of the request's coordinates, so
    # seeds near each other (or index 10**9) cost nothing and give unrelated items. 63 bits keep the
    # metadata's source_index inside an i64 for the Rust side.
    h = hashlib.blake2b(digest_size=8, person=b"swarm-rg-v1")
    h.update(family.encode() + b"\0" + struct.pack("<IQQI", difficulty, seed, index, draw))
    return int.from_bytes(h.digest(), "little") >> 1


def oracle(entry):
    # propositional_logic has no single answer (entry["answer"] is None); its example conclusion is one.
    if entry["answer"] is not None:
        return str(entry["answer"])
    return str(entry["metadata"].get("example_answer", ""))


def score_entry(ds, payload, text):
    # The level's own dataset scores, not get_score_answer_fn's default-config one: decimal_arithmetic
    # takes its tolerance from the config. No scorer of the nine reads the question.
    entry = {"question": "", "answer": payload["answer"], "metadata": payload["metadata"]}
    # decimal_arithmetic sets the thread's Decimal precision while generating; a local context keeps
    # one item from changing how a later one is generated or scored.
    with decimal.localcontext():
        value = float(ds.score_answer(text, entry))
    return min(1.0, max(0.0, value)) if value == value else 0.0


def generate(req):
    ds = dataset(req)
    family, difficulty = req["family"], req["difficulty"]
    seed, index = u64(req, "seed"), u64(req, "index")
    for draw in range(MAX_DRAWS):
        with decimal.localcontext():
            entry = ds[item_index(family, difficulty, seed, index, draw)]
        # Round-trip through JSON now so scoring sees exactly what the node will send back
        # (tuples become lists); the reference answer goes along for display and self-checks.
        payload = json.loads(dumps({"answer": entry["answer"], "metadata": entry["metadata"],
                                    "oracle": oracle(entry)}))
        # Keep only items whose reference answer earns full marks. The package's own scorer rejects a few
        # of its items: propositional_logic may fall back to an unchecked one-variable "conclusion", and
        # base_conversion writes 0 as "" in bases other than 2 and 16 (about 1 item in 200 of each).
        if score_entry(ds, payload, payload["oracle"]) == 1.0:
            return {"prompt": entry["question"].rstrip() + "\n\n" + ANSWER_INSTRUCTION, "answer": payload}
    raise RequestError(f"no item of {family} at difficulty {difficulty} scores its own answer 1.0")


def score(req):
    ds = dataset(req)
    payload = req.get("answer")
    if not isinstance(payload, dict) or not isinstance(payload.get("metadata"), dict) or "answer" not in payload:
        raise RequestError("answer must be the object generate returned")
    extracted = req.get("extracted")
    if extracted is None:
        return {"score": 0.0}
    if not isinstance(extracted, str):
        raise RequestError("extracted must be a string or null")
    return {"score": score_entry(ds, payload, extracted)}


def hello(req):
    if req.get("protocol") != PROTOCOL:
        raise RequestError(f"unsupported protocol {req.get('protocol')!r}; this script speaks {PROTOCOL}")
    return {"protocol": PROTOCOL, "families": [
        {"name": PREFIX + name, "description": desc, "max_difficulty": len(levels) - 1}
        for name, (desc, levels) in FAMILIES.items()]}


OPS = {"hello": hello, "generate": generate, "score": score}


def handle(line):
    """One request line in, one answer object out; never raises."""
    try:
        req = json.loads(line)
    except ValueError as e:
        return {"error": f"malformed JSON request: {e}"}
    if not isinstance(req, dict):
        return {"error": "request must be a JSON object"}
    op = req.get("op")
    if op not in OPS:
        return {"error": f"unknown op {op!r}"}
    try:
        return OPS[op](req)
    except RequestError as e:
        return {"error": f"{op}: {e}"}
    except Exception as e:  # a ReasoningGYM failure must not take the node's task server down
        return {"error": f"{op}: reasoning_gym raised {type(e).__name__}: {e}"}


def serve():
    # Answers go to a private copy of fd 1; fd 1 itself then points at stderr so that C code cannot
    # reach the node either, and Python-level prints (bf's compiler prints dots) are dropped unless
    # SWARM_RG_VERBOSE is set. All of this happens before the package is imported.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr if os.environ.get("SWARM_RG_VERBOSE") else open(os.devnull, "w")
    load()
    stdin = sys.stdin.buffer  # bytes: a C locale must not break non-ASCII completions
    while True:
        raw = stdin.readline()
        if not raw:
            return 0
        try:
            answer = handle(raw.decode("utf-8").strip())
        except UnicodeDecodeError as e:
            answer = {"error": f"request is not UTF-8: {e}"}
        out.write(dumps(answer).encode("ascii") + b"\n")
        out.flush()


def call(req):
    with contextlib.redirect_stdout(io.StringIO()):
        return handle(json.dumps(req))


def dump():
    """The answers to a fixed request set, one line each, for diffing processes and machines."""
    for name, (_, levels) in FAMILIES.items():
        for difficulty in range(len(levels)):
            for seed in (0, 1, 2**63 + 5, U64 - 1):
                for index in (0, 1, 7, 10**9, U64 - 1):
                    req = {"op": "generate", "family": PREFIX + name, "difficulty": difficulty,
                           "seed": seed, "index": index}
                    print(dumps([req, call(req)]))
    return 0


def self_check():
    """Every family and level: determinism, order independence, scoring of right and wrong answers."""
    fail, rows, first = [], [], {}
    for name, (_, levels) in FAMILIES.items():
        for difficulty in range(len(levels)):
            times = []
            for seed in (1, 2**63 + 5):
                for index in list(range(6)) + [10**9]:
                    req = {"op": "generate", "family": PREFIX + name, "difficulty": difficulty,
                           "seed": seed, "index": index}
                    where = f"{name}/{difficulty} seed={seed} index={index}"
                    t0 = time.perf_counter()
                    got = call(req)
                    if "error" in got:
                        fail.append(f"{where}: {got['error']}")
                        continue
                    base = dict(req, op="score", answer=got["answer"], completion="")
                    right = call(dict(base, extracted=got["answer"]["oracle"]))
                    times.append(time.perf_counter() - t0)
                    first[dumps(req)] = dumps(got)
                    if dumps(call(req)) != dumps(got):
                        fail.append(f"{where}: a repeated request gave a different answer")
                    wrong = call(dict(base, extracted="definitely wrong"))
                    none = call(dict(base, extracted=None))
                    if right.get("score") != 1.0 or not wrong.get("score", 1.0) < 1.0 or none.get("score") != 0.0:
                        fail.append(f"{where}: scores right {right}, wrong {wrong}, null {none}")
            rows.append(f"  {PREFIX + name:<28} {difficulty}  generate+score mean "
                        f"{1000 * sum(times) / max(len(times), 1):7.2f} ms, max {1000 * max(times, default=0):7.2f} ms")
    # Generating again in reverse order catches state leaking from one item into the next.
    for req, answer in reversed(list(first.items())):
        if dumps(call(json.loads(req))) != answer:
            fail.append(f"{req}: changed when generated after other items")
    for bad in ('{"op":"generate","family":"rg/nope","difficulty":0,"seed":1,"index":0}',
                '{"op":"generate","family":"rg/bf","difficulty":2,"seed":1,"index":0}',
                '{"op":"generate","family":"rg/bf","difficulty":0,"seed":-1,"index":0}',
                '{"op":"fly"}', '{"op":', '[1]'):
        if "error" not in handle(bad):
            fail.append(f"{bad}: no error")
    if len(handle('{"op":"hello","protocol":1}').get("families", [])) != len(FAMILIES):
        fail.append("hello does not list every family")
    print(f"reasoning-gym {package_version()}, Python {sys.version.split()[0]}; 14 items per level:")
    print("\n".join(rows + ["FAIL " + msg for msg in fail]))
    print(f"self-check: {f'FAILED, {len(fail)} problem(s)' if fail else 'ok'}")
    return 1 if fail else 0


def main(argv):
    if not argv:
        return serve()
    if argv not in (["--self-check"], ["--dump"]):
        print(__doc__, file=sys.stderr)
        return 2
    load()
    return self_check() if argv == ["--self-check"] else dump()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
