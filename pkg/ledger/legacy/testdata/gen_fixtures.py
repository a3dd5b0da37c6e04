#!/usr/bin/env python3
"""Generate the legacy-ledger fixtures for package legacy.

Run from this directory:  python3 gen_fixtures.py
Outputs (committed; tests only read them):
  valid.jsonl, valid_crlf.jsonl  ledgers written like Control Plane v2 did
  damaged_*.jsonl                damaged copies of valid.jsonl
  dumps_golden.json              [{"in": json text, "out": dumps text, or null if
                                 it cannot be UTF-8 encoded}], or {"in", "error": true}
                                 for text json.loads rejects
Output is deterministic (fixed seeds, fixed timestamps).
"""
import hashlib
import json
import math
import random
import struct


def entry_hash(e):
    return hashlib.sha256(
        json.dumps(e, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- the ledger, as the Python writer built it -------------------------------

METADATA = [
    {"score": 0.95, "weight": 1.0, "threshold": 0.5},
    {"tiny": 1e-05, "big": 1e16, "x": 123456789.123, "small": 0.0001, "e15": 1e15,
     "sum": 0.1 + 0.2, "huge": 1.7976931348623157e308, "denorm": 5e-324, "neg0": -0.0},
    {"bigint": 1234567890123456789012345678901234567890,
     "neg": -12345678901234567890123, "zero": 0, "hundred": 100.0},
    {"z": {"b": 1, "a": [{"y": 2, "x": 1}, []]}, "a": {"\u00e4": 1, "b": 2, "Z": 3},
     "\U0001F600": 1, "\uffff": 2, "\u00e9": 3, "e": 4, "": 5, "\u2028": 6},
    {"city": "Z\u00fcrich \u2014 na\u00efve caf\u00e9 \u65e5\u672c\u8a9e"},
    {"note": "\U0001F680 launched \U0001F600 \U00010348"},
    {"text": "line\u2028sep\u2029para"},
    {"ctl": "tab\there\nnew\rret\bback\fform\x00nul\x01soh\x1fus\x7fdel\x80c1"},
    {"html": "</script><b>&amp;</b> / \"quoted\" back\\slash 'single'"},
    {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")},
    {"dup": {"a": 2}},
    {"forms": [1e16, 1.0, 0, 100.0, 0.95, 10, 1e-07]},
    {"empty": {}, "list": [], "null": None, "t": True, "f": False, "nested": [[[]], {}]},
]

EVENTS = ["submission.received", "gate.evaluated", "decision.made", "prompt.used"]


def build(n=20):
    entries, prev = [], ""
    for i in range(n):
        e = {
            "id": "evt-%04d" % i,
            "timestamp": "2024-03-01T12:%02d:00Z" % i,
            "event_type": EVENTS[i % len(EVENTS)],
            "submission_id": "sub-%03d" % (i // 3),
            "decision": ["approve", "reject", "escalate"][i % 3],
            "reason": "rule %d matched" % i,
            "prompts_used": ["p-%d" % j for j in range(i % 4)],
            "metadata": METADATA[i % len(METADATA)],
            "previous_hash": prev,
        }
        e["entry_hash"] = entry_hash(e)  # dict order: entry_hash last, as written
        prev = e["entry_hash"]
        entries.append(e)
    return entries


# --- how each line is written: other key orders, spacing, literal forms ------

def plain(e):
    return json.dumps(e, ensure_ascii=False)


def ascii_escaped(e):  # \uXXXX escapes, emoji as surrogate pairs
    return json.dumps(e)


def reversed_compact(e):
    return json.dumps(dict(reversed(list(e.items()))), separators=(",", ":"),
                      ensure_ascii=False)


def spaced(e):
    return " \t" + json.dumps(e, separators=(" ,\t", " :  "), ensure_ascii=False) + "  \r"


def sorted_indented_one_line(e):
    return json.dumps(e, sort_keys=True, ensure_ascii=False)


def duplicates(e):
    # Earlier bogus values for keys at both depths; json.loads keeps the last.
    text = plain(e)
    text = text.replace('"dup": {"a": 2}', '"dup": {"a": [1, {"b": 0}], "a": 2}')
    head = '{"decision": "bogus", "entry_hash": "0000", "metadata": {"dup": 0}, '
    return head + text[1:]


def literal_forms(e):
    text = plain(e)
    text = text.replace('"forms": [1e+16, 1.0, 0, 100.0, 0.95, 10, 1e-07]',
                        '"forms": [1E16, 1.000, -0, 1E2, 9.5e-1, 10, 0.0000001]')
    assert "1E16" in text
    return text


def writer_for(i, e):
    if "forms" in e["metadata"]:
        return literal_forms
    if "dup" in e["metadata"]:
        return duplicates
    return [plain, ascii_escaped, reversed_compact, spaced, sorted_indented_one_line][i % 5]


def check_line(line, want):
    obj = json.loads(line)
    stored = obj.pop("entry_hash")
    assert stored == want, line
    assert entry_hash(obj) == want, line


def write(name, lines, newline="\n", final=True):
    data = newline.join(lines) + (newline if final else "")
    with open(name, "w", encoding="utf-8", newline="") as f:
        f.write(data)


def ledger_lines():
    entries = build()
    lines = []
    for i, e in enumerate(entries):
        line = writer_for(i, e)(e)
        check_line(line, e["entry_hash"])
        lines.append(line)
    return entries, lines


def damaged(entries, lines):
    out = {}

    # An edited field: HASH_MISMATCH at 5 only.
    l = list(lines)
    e = json.loads(l[5])
    e["decision"] = "approve" if e["decision"] != "approve" else "reject"
    l[5] = json.dumps(e, ensure_ascii=False)
    out["damaged_edited.jsonl"] = l

    # A deleted line: CHAIN_BROKEN at 7 (evt-0008).
    out["damaged_deleted.jsonl"] = lines[:7] + lines[8:]

    # entry_hash removed at 4: HASH_MISMATCH at 4, CHAIN_BROKEN at 5.
    l = list(lines)
    e = json.loads(l[4])
    del e["entry_hash"]
    l[4] = json.dumps(e, ensure_ascii=False)
    out["damaged_nohash.jsonl"] = l

    # A line replaced by non-JSON: MALFORMED at 6, CHAIN_BROKEN at 7.
    l = list(lines)
    l[6] = l[6][: len(l[6]) // 2]
    out["damaged_nonjson.jsonl"] = l

    # Junk inserted: a blank line (3), an array (9), invalid UTF-8 (13),
    # a bare string (16); each only MALFORMED, the chain skips them.
    b = [x.encode() for x in lines]
    b.insert(3, b"")
    b.insert(9, b"[1, 2]")
    b.insert(13, b'{"id": "evt-x", "bad": "\xff\xfe"}')
    b.insert(16, b'"just a string"')
    out["damaged_inserted.jsonl"] = b

    # Swapped lines 10 and 11: CHAIN_BROKEN at 10, 11 and 12.
    l = list(lines)
    l[10], l[11] = l[11], l[10]
    out["damaged_swapped.jsonl"] = l

    # previous_hash edited at 3: HASH_MISMATCH and CHAIN_BROKEN at 3.
    l = list(lines)
    e = json.loads(l[3])
    e["previous_hash"] = "f" * 64
    l[3] = json.dumps(e, ensure_ascii=False)
    out["damaged_prevhash.jsonl"] = l

    # First two lines lost: CHAIN_BROKEN at 0 only.
    out["damaged_head.jsonl"] = lines[2:]

    # Non-string entry_hash (and non-string id) at 2: HASH_MISMATCH at 2 with
    # ID "", CHAIN_BROKEN at 3. Uppercase entry_hash at 6 and the entries
    # after it rechained to that stored string: HASH_MISMATCH at 6 only.
    l = list(lines)
    e = json.loads(l[2])
    e["entry_hash"] = 12345
    e["id"] = 42
    l[2] = json.dumps(e)
    e6 = json.loads(l[6])
    e6["entry_hash"] = e6["entry_hash"].upper()
    l[6] = json.dumps(e6, ensure_ascii=False)
    prev = e6["entry_hash"]
    for j in range(7, len(l)):  # rechain the rest to the stored string
        e = json.loads(l[j])
        del e["entry_hash"]
        e["previous_hash"] = prev
        e["entry_hash"] = prev = entry_hash(e)
        l[j] = json.dumps(e, ensure_ascii=False)
    out["damaged_badhash.jsonl"] = l
    return out


def surrogate_ledger():
    # The old writer could not encode a lone surrogate; pretend a hash was
    # computed with surrogatepass. Expect HASH_MISMATCH at 1 only.
    lines, prev = [], ""
    for i, reason in enumerate(["ok", "bad \ud800 half", "ok again"]):
        e = {"id": "s-%d" % i, "reason": reason, "previous_hash": prev}
        e["entry_hash"] = hashlib.sha256(json.dumps(
            e, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
        prev = e["entry_hash"]
        lines.append(json.dumps(e))  # ensure_ascii: the file stays UTF-8
    return lines


# --- golden dumps cases ------------------------------------------------------

TRICKY = [
    '{"b": 1, "a": 2}', '{"a":1,"a":2}', '{"a": {"z": 1, "y": {"c": [3, {"k": 1, "j": 2}]}}}',
    '0.95', '1.0', '1e-05', '1e16', '1E16', '1e15', '123456789.123', '1e400', '-1e400',
    '1e-400', '-0', '-0.0', '0.0', '1E2', '1e2', '10', '-10', '0.1', '1e-4', '1e-5',
    '0.00001', '0.0001', '12345678901234567890123456789012345678901234567890',
    '-12345678901234567890123456789012345678901234567890', '5e-324', '2.2250738585072014e-308',
    '1.7976931348623157e308', '9007199254740993', '9007199254740993.0', '1e22', '1e21',
    '123456789012345678', '123456789012345678.0', '0.30000000000000004', '100.5e-2',
    '1.5e300', '4.35', '2.675', '1.00000000000000011102230246251565404236316680908203125',
    '0.000000000000000000000000000000000000000000001', '1' + '0' * 400 + '.0',
    'NaN', 'Infinity', '-Infinity', '[NaN, Infinity, -Infinity]', 'null', 'true', 'false',
    '[]', '{}', '[[], {}, [{}]]', ' [ 1 , 2 ] ', '"\\ud83d\\ude00"', '"\\ud800"',
    '"\\udc00\\ud800"', '"\\ud83d\\u0041"', '"\\ud83d"', '"a\\ud800\\ud83d\\ude00"',
    '"\\u2028\\u2029"', '"\u2028\u2029"', '"</script>&<>/"', '"\\/"', '"\\"\\\\"',
    '"\\n\\r\\t\\b\\f"', '"\\u0000\\u0001\\u001f\\u001F\\u007f\\u0080"', '"\x7f"',
    '"\\uFFFF\\uffff\\uFEFF"', '"caf\u00e9 \U0001F600 \u65e5"', '"\\u00e9\\u00E9"',
    '{"\U0001F600": 1, "\uffff": 2, "\u00e9": 3, "e": 4, "": 5, "E": 6, "\uff00": 7}',
    '{"\\ud83d\\ude00": 1, "\\ufb01": 2}', '{"k": "\\ud800"}', '{"\\udfff": 1}',
    '[1, 2.5, "x", null, true, {"a": [1E2]}]', '{"a":1,"b":{"c":2,"c":3},"a":4}',
]


def rand_float(rng):
    while True:
        f = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(f):
            break
    choice = rng.randrange(4)
    if choice == 1:  # a "nice" decimal
        f = round(rng.uniform(-1e6, 1e6), rng.randrange(8))
    elif choice == 2:  # near the repr switch points
        f = rng.choice([1, -1]) * rng.uniform(1, 10) * 10.0 ** rng.choice([-6, -5, -4, -3, 14, 15, 16, 17])
    s = rng.choice([repr(f), "%.17g" % f, "%.20e" % f, repr(f).upper()])
    if not any(c in s for c in ".eE"):
        s += ".0"
    return s


def rand_string(rng):
    pool = [(0x20, 0x7e), (0, 0x1f), (0x7f, 0xff), (0x100, 0x7ff), (0x800, 0xd7ff),
            (0xe000, 0xfffd), (0x10000, 0x10ffff), (0x2028, 0x2029)]
    chars = []
    for _ in range(rng.randrange(12)):
        lo, hi = rng.choice(pool)
        chars.append(chr(rng.randint(lo, hi)))
    s = "".join(chars)
    return json.dumps(s, ensure_ascii=rng.random() < 0.5)


def rand_value(rng, depth=0):
    k = rng.randrange(8 if depth < 3 else 5)
    if k == 0:
        return rand_float(rng)
    if k == 1:
        return str(rng.randint(-10 ** 30, 10 ** 30))
    if k == 2:
        return rand_string(rng)
    if k == 3:
        return rng.choice(["null", "true", "false", "NaN", "-Infinity"])
    if k == 4:
        return str(rng.randint(-1000, 1000))
    if k == 5 or k == 6:
        items = ["%s: %s" % (rand_string(rng), rand_value(rng, depth + 1))
                 for _ in range(rng.randrange(5))]
        return "{" + ", ".join(items) + "}"
    return "[" + ",".join(rand_value(rng, depth + 1) for _ in range(rng.randrange(5))) + "]"


MUTATIONS = list('{}[],:" \t\r\n\\/0123456789-+.eEuUabfnrtINaxy') + [
    "\\u", "\\ud83d", "\\ude00", "\\ud800", "NaN", "Infinity", "-Infinity", "true",
    "null", "\u2028", "\x00", "\x1f", "\x7f", "\u00e9", "\U0001F600", "\ufeff", "\u00a0"]


def mutate(rng, s):
    for _ in range(rng.randrange(1, 4)):
        p = rng.randrange(len(s) + 1)
        op = rng.randrange(3)
        if op == 0:
            s = s[:p] + rng.choice(MUTATIONS) + s[p:]
        elif op == 1:
            s = s[:p] + s[p + 1:]
        else:
            s = s[:p] + rng.choice(MUTATIONS) + s[p + 1:]
    return s


def golden():
    rng = random.Random(20240301)
    inputs = list(TRICKY)
    inputs += [rand_float(rng) for _ in range(3000)]
    inputs += [str(rng.randint(-10 ** rng.randrange(1, 60), 10 ** rng.randrange(1, 60)))
               for _ in range(200)]
    inputs += [rand_string(rng) for _ in range(300)]
    inputs += [rand_value(rng) for _ in range(500)]
    inputs += [mutate(rng, rand_value(rng)) for _ in range(1500)]
    cases = []
    for text in inputs:
        try:
            v = json.loads(text)
        except ValueError:
            cases.append({"in": text, "error": True})  # Python rejects it too
            continue
        out = json.dumps(v, sort_keys=True, ensure_ascii=False)
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:
            out = None
        cases.append({"in": text, "out": out})
    with open("dumps_golden.json", "w", encoding="ascii") as f:
        json.dump(cases, f, indent=0)
        f.write("\n")


def main():
    entries, lines = ledger_lines()
    write("valid.jsonl", lines)
    write("valid_crlf.jsonl", lines, newline="\r\n", final=False)
    for name, l in sorted(damaged(entries, lines).items()):
        if isinstance(l[0], bytes):
            with open(name, "wb") as f:
                f.write(b"\n".join(l) + b"\n")
        else:
            write(name, l)
    write("damaged_surrogate.jsonl", surrogate_ledger())
    golden()


if __name__ == "__main__":
    main()
