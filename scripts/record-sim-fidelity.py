#!/usr/bin/env python3
"""Record what the REAL qubesd answers to random but plausible Admin API call sequences, for
test/sdk/sim-fidelity.test.ts (which replays them against a fresh simulator).

With `--calls FILE` instead of `--seed`, the requests of FILE are recorded (probes of behaviour
that random sequences rarely reach: `test/fixtures/sim/fidelity/probes.txt`).

    QUBES_CORE_ADMIN_SRC=... QUBES_CORE_QREXEC_SRC=... \\
        scripts/record-sim-fidelity.py --seed 7001 --count 1000 --out test/fixtures/sim/fidelity/seed-7004.json.gz

It uses the differential fuzzer of the shared tools (`$QUBESD_TOOLS`, default
/work/shared/tools/qubesd/admin-api-fuzz.py): its call generator, its scenario set-up and its
reply normalisation. One fresh real qubesd is started (run-qubesd.sh) and stopped afterwards.
The output is gzip-compressed JSON when its name ends in .gz (some payloads are 64 KiB of one
character). Each call is stored with its request (placeholders `{uuid:NAME}` and `{disp:K}` unresolved, so
the test resolves them against the simulator) and qubesd's reply, normalised
(`[kind, exception type, message, payload]`). Calls listed in the existing fixture's `known`
map keep their note: they are the documented differences the test expects to stay different.
"""
import argparse
import gzip
import importlib.util
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile

TOOLS = pathlib.Path(os.environ.get("QUBESD_TOOLS", "/work/shared/tools/qubesd"))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class EventStream:
    """An open admin.Events connection; `drain()` returns the frames that arrived (as `subject\0event\0k\0v...`
    text, the empty key left off), waiting until none came for a moment (qubesd sends them from its event loop)."""

    def __init__(self, sock, raw):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(sock)
        self.s.sendall(raw)
        self.s.shutdown(socket.SHUT_WR)
        self.s.settimeout(0.3)
        self.buf = b""

    def drain(self):
        while True:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        frames = []
        while self.buf.startswith(b"1\0"):
            fields = []
            pos = 2
            done = False
            while True:
                nul = self.buf.find(b"\0", pos)
                if nul < 0:
                    break
                fields.append(self.buf[pos:nul])
                pos = nul + 1
                if len(fields) >= 3 and (len(fields) - 2) % 2 == 1 and fields[-1] == b"":
                    done = True
                    break
            if not done:
                break
            frames.append(b"\0".join(fields[:-1]).decode("utf-8", "replace"))
            self.buf = self.buf[pos:]
        return frames

    def close(self):
        self.s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--calls", help="instead of a seed: a file of requests, one a line, `\\0` for the NUL and `\\n` for a newline "
                                    "(placeholders {uuid:NAME}, {disp:K} and {token:K}, the K-th CloneFrom reply, allowed; # starts a comment line)")
    ap.add_argument("--events", action="store_true",
                    help="with --calls: the first request opens an event stream (admin.Events) kept open while the "
                         "others are sent; the frames that follow each call are recorded with it")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if (a.seed is None) == (a.calls is None):
        ap.error("give --seed or --calls")

    fuzz = load("admin_api_fuzz", TOOLS / "admin-api-fuzz.py")
    scen = fuzz.load_scenario()
    if a.calls:
        calls = []
        with open(a.calls, encoding="latin1") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    raw = line.replace("\\0", "\0").replace("\\n", "\n")
                    calls.append({"method": raw.split("+", 1)[0].split(" ", 1)[0], "raw": raw})
        a.count = len(calls)
    else:
        calls = fuzz.Gen(a.seed).calls(a.count)

    old_known = {}
    opener = gzip.open if a.out.endswith(".gz") else open
    if os.path.exists(a.out):
        with opener(a.out, "rt") as f:
            old_known = json.load(f).get("known", {})

    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    state = tempfile.mkdtemp(prefix="qubesd-record.")
    env["QUBESD_STATE_DIR"] = state
    log = open(os.path.join(state, "log"), "w")
    proc = subprocess.Popen([str(TOOLS / "run-qubesd.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        sock = os.path.join(state, "qubesd.sock")
        if not fuzz.wait_socket(sock, proc, 60):
            raise SystemExit("qubesd did not start; see " + os.path.join(state, "log"))
        setup = []
        orig_call = scen.call

        def recording_call(s, method, dest="dom0", arg="", payload=b""):
            setup.append(("%s+%s dom0 name %s\0" % (method, arg, dest)) + payload.decode("latin1"))
            return orig_call(s, method, dest, arg, payload)

        scen.call = recording_call
        scen.setup(sock)
        real = fuzz.Server("real", sock, state)
        out = []
        tokens = []  # replies of admin.vm.volume.CloneFrom, for {token:K}
        stream = None
        subscription = None
        if a.events:
            subscription = calls.pop(0)
            stream = EventStream(sock, real.raw(subscription))
            first_frames = stream.drain()
        for call in calls:
            sent = call
            if "{token:" in call.get("raw", ""):
                sent = dict(call, raw=re.sub(r"\{token:(\d+)\}",
                                             lambda m: tokens[int(m.group(1))] if int(m.group(1)) < len(tokens) else "notoken",
                                             call["raw"]))
            data = fuzz.send(sock, real.raw(sent))
            p = fuzz.parse(data)
            if call["method"] == "admin.vm.CreateDisposable":
                if p[0] == "ok" and fuzz.DISP_RE.fullmatch(p[3].strip()):
                    real.disps.append(p[3].strip())
                elif p[0] == "ok" and p[3].startswith("uuid:"):
                    real.refresh_uuids()
                    n = real.uuid_names.get(p[3][5:].strip())
                    if n:
                        real.disps.append(n)
            if call["method"] == "admin.vm.volume.CloneFrom" and p[0] == "ok":
                tokens.append(p[3].strip())
            reply = [p[0], p[1], real.normalise(call, p[2]), real.normalise(call, p[3])]
            req = {k: call[k] for k in ("method", "arg", "src", "dtype", "dest", "payload", "raw") if k in call}
            entry = {"request": req, "reply": reply}
            if stream is not None:
                entry["frames"] = [real.normalise(subscription, f) for f in stream.drain()]
            out.append(entry)
        if stream is not None:
            stream.close()
    finally:
        fuzz.stop(proc)
        subprocess.run(["rm", "-rf", state])
    doc = {
        "seed": a.seed,
        **({"calls_file": os.path.basename(a.calls)} if a.calls else {}),
        "count": a.count,
        "recorded_with": "the real qubesd (QubesOS/qubes-core-admin) under tools/qubesd/run-qubesd.sh",
        "setup": setup,
        **({"subscription": {"method": subscription["method"], "raw": subscription["raw"]},
            "first_frames": first_frames} if a.events else {}),
        "known": {k: v for k, v in old_known.items() if int(k) < len(out)},
        "calls": out,
    }
    with opener(a.out, "wt") as f:
        json.dump(doc, f, indent=0, ensure_ascii=True)
        f.write("\n")
    print("%s: %d calls, %d set-up calls" % (a.out, len(out), len(setup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
