#!/usr/bin/env python3
"""Loads scale data into a running Postern through its admin APIs (used by bench/scale).

* alternative partners: N distinct Pids (P0000001...), agency 016, scheme DUNS, ids 100000001...
  (the bench's own partners 123456789 and 987654321 lie outside that range);
* authorized users: M users (scale-user-0000001 -> P0000001, ...) plus the bench client id -> ACME;
  both streamed as JSON to curl, `POST /admin/v1/partner-directory/import` in chunks;
* service keys: `POST /admin/v1/service-instances/{name}/keys` one by one (instances of
  --keys-per-instance keys each), over keep-alive connections, until the count or the time
  budget is reached.

Progress goes to stderr; a JSON summary to --summary.
"""

import argparse
import base64
import http.client
import json
import subprocess
import sys
import threading
import time

ALT_BASE = 100_000_001


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def alt_entries(n):
    for i in range(1, n + 1):
        yield '{"Agency":"016","Scheme":"DUNS","Id":"%d","Pid":"P%07d"}' % (ALT_BASE + i - 1, i)


def user_entries(n, client_id):
    for i in range(1, n + 1):
        yield '{"User":"scale-user-%07d","Pid":"P%07d"}' % (i, i)
    if client_id:
        yield json.dumps({"User": client_id, "Pid": "ACME"})


def chunks(entries, size):
    chunk = []
    for e in entries:
        chunk.append(e)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_chunk(a, field, chunk):
    """Streams one import document to curl; returns the server's answer (dict) and seconds."""
    url = f"{a.url}/admin/v1/partner-directory/import"
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-u", f"admin:{a.password}",
           "-H", "Content-Type: application/json", "-H", "Expect:", "--data-binary", "@-", url]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(b'{"%s":[' % field.encode())
    for i in range(0, len(chunk), 10_000):
        piece = ",".join(chunk[i:i + 10_000])
        p.stdin.write((("," if i else "") + piece).encode())
    p.stdin.write(b"]}")
    p.stdin.close()
    out = p.stdout.read().decode(errors="replace")
    p.wait()
    secs = time.monotonic() - t0
    body, _, code = out.rpartition("\n")
    if code != "200":
        raise SystemExit(f"import answered {code or 'nothing'}: {body[:500]}")
    return json.loads(body), secs


def load_directory(a, field, entries, total):
    t0 = time.monotonic()
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    done = 0
    for chunk in chunks(entries, a.chunk):
        answer, secs = import_chunk(a, field, chunk)
        for k in counts:
            counts[k] += int(answer.get(k, 0))
        done += len(chunk)
        log(f"  {field}: {done:,}/{total:,} ({secs:.1f} s for {len(chunk):,}; "
            f"created {answer.get('created')}, unchanged {answer.get('unchanged')})")
    return {"entries": done, "seconds": round(time.monotonic() - t0, 1), **counts}


class Admin:
    """One keep-alive connection to the admin API."""

    def __init__(self, a):
        host, port = a.url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        token = base64.b64encode(f"admin:{a.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def post(self, path, doc):
        self.conn.request("POST", path, json.dumps(doc), self.headers)
        r = self.conn.getresponse()
        body = r.read()
        return r.status, body


def load_keys(a):
    """Creates instances and keys until a.keys or the budget; returns counts and rates."""
    instances = (a.keys + a.keys_per_instance - 1) // a.keys_per_instance
    t0 = time.monotonic()
    deadline = t0 + a.key_budget
    lock = threading.Lock()
    state = {"keys": 0, "instances": 0, "errors": [], "stop": False, "marks": []}
    next_instance = iter(range(1, instances + 1))

    def worker():
        admin = Admin(a)
        while True:
            with lock:
                if state["stop"]:
                    return
                i = next(next_instance, None)
            if i is None:
                return
            name = f"scale-{i:05d}"
            st, body = admin.post("/admin/v1/service-instances",
                                  {"name": name, "plan": "integration-flow",
                                   "parameters": {"roles": ["BenchSend"]}})
            if st != 201:
                with lock:
                    state["errors"].append(f"instance {name}: {st} {body[:200]!r}")
                    state["stop"] = True
                return
            with lock:
                state["instances"] += 1
            for k in range(1, a.keys_per_instance + 1):
                if time.monotonic() > deadline:
                    with lock:
                        state["stop"] = True
                    return
                st, body = admin.post(f"/admin/v1/service-instances/{name}/keys", {"name": f"k{k}"})
                if st != 201:
                    with lock:
                        state["errors"].append(f"key {name}/k{k}: {st} {body[:200]!r}")
                        state["stop"] = True
                    return
                with lock:
                    state["keys"] += 1
                    n = state["keys"]
                    if n % 1000 == 0:
                        state["marks"].append((n, time.monotonic() - t0))
                        prev = state["marks"][-2][1] if len(state["marks"]) > 1 else 0.0
                        log(f"  keys: {n:,} ({time.monotonic() - t0:.0f} s; last 1,000 in "
                            f"{state['marks'][-1][1] - prev:.1f} s)")

    threads = [threading.Thread(target=worker) for _ in range(a.key_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    marks = state["marks"]
    first = marks[0][1] if marks else None
    last = (marks[-1][1] - marks[-2][1]) if len(marks) > 1 else first
    for e in state["errors"]:
        log(f"  error: {e}")
    return {"wanted": a.keys, "keys": state["keys"], "instances": state["instances"],
            "seconds": round(secs, 1), "budget_hit": state["keys"] < a.keys and not state["errors"],
            "first_1000_s": None if first is None else round(first, 1),
            "last_1000_s": None if last is None else round(last, 1),
            "errors": state["errors"][:5]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="Postern's base URL, http://127.0.0.1:PORT")
    p.add_argument("--password", required=True, help="the admin password")
    p.add_argument("--client-id", default="", help="also authorize this user for partner ACME")
    p.add_argument("--partners", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--keys-per-instance", type=int, default=100)
    p.add_argument("--key-threads", type=int, default=2)
    p.add_argument("--key-budget", type=float, default=600, help="seconds for creating keys")
    p.add_argument("--chunk", type=int, default=100_000, help="entries per import request")
    p.add_argument("--summary", required=True, help="write the JSON summary here")
    a = p.parse_args()

    summary = {}
    log(f"importing {a.partners:,} alternative partners in chunks of {a.chunk:,}")
    summary["partners"] = load_directory(a, "alternativePartners", alt_entries(a.partners), a.partners)
    log(f"importing {a.users:,} authorized users (+ the bench client id)")
    summary["users"] = load_directory(a, "authorizedUsers", user_entries(a.users, a.client_id),
                                      a.users + (1 if a.client_id else 0))
    if a.keys > 0:
        log(f"creating {a.keys:,} service keys ({a.keys_per_instance} per instance, "
            f"{a.key_threads} connections, budget {a.key_budget:.0f} s)")
        summary["keys"] = load_keys(a)
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
