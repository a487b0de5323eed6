#!/usr/bin/env python3
"""Soak test: a real `dormouse serve` on loopback under concurrent clients and faults.

Clients (default 8) hold stateless chat conversations over two models, with a memory
budget that holds only one of them, through the OpenAI and Ollama APIs, streaming and
not, some with keep_alive 0. Alongside, a chaos thread lists sessions, ejects models,
cancels streams, and SIGKILLs and restarts the server (default twice). Afterwards:

- no transcript lost or merged: each client's last session holds exactly its
  conversation, and no two clients share a session;
- no 5xx (nor a refused connection) outside the kill windows;
- every reply equals the reply a fresh server computes from scratch for the same
  request (temperature 0: greedy);
- the server's RSS stayed under --max-rss-mib;
- a watchdog fails the run on any request in flight for over 60 s.

Every loop is bounded (turns per client and a deadline), so the run stops by itself.

Short run (the ctest `soak_short`):
  python3 scripts/soak.py --binary build/dormouse --seconds 40
Long run (figures for the notes):
  python3 scripts/soak.py --binary build/dormouse --seconds 600 --max-turns 400
--identical-first-turn gives every client of a model the same first turn, which checks
that identical conversations are not merged into one session.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

STUCK_SECONDS = 60
QUESTIONS = [
    "Where do dormice live?", "What do they eat?", "When do they sleep?",
    "Tell me a story about a tree.", "What is the colour of the sky?", "Count to five.",
    "Why is the grass green?", "Who lives in the forest?",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Server:
    """One `dormouse serve` process on a fixed port, restartable on the same data."""

    def __init__(self, args, data_dir, port, extra=()):
        self.args, self.data_dir, self.port, self.extra = args, data_dir, port, list(extra)
        self.proc = None
        self.log_path = os.path.join(data_dir, "server.log")

    def start(self):
        cmd = [self.args.binary, "serve", "--port", str(self.port), "--data-dir", self.data_dir,
               "-t", "1", "--max-queue", "64", "--http-threads", "32"] + self.extra
        for m in self.args.models:
            cmd += ["-m", m]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                status, _ = call(self.port, "GET", "/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)  # polling for readiness, not ordering
        raise RuntimeError("server did not become ready: " + self.log_tail())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]


def call(port, method, path, body=None, timeout=STUCK_SECONDS + 5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")
    finally:
        conn.close()


def chat_body(api, model, messages, max_tokens, keep_alive_zero):
    stream = api.endswith("_stream")
    if api.startswith("openai"):
        body = {"model": model, "messages": messages, "max_tokens": max_tokens,
                "temperature": 0, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body
    body = {"model": model, "messages": messages, "stream": stream,
            "options": {"temperature": 0, "num_predict": max_tokens}}
    if keep_alive_zero:
        body["keep_alive"] = 0
    return "/api/chat", body


def chat(port, api, body_path, body, cancel=False):
    """Sends one chat request; returns (status, text, dormouse fields). With cancel, reads
    the first piece of a stream and hangs up."""
    path, body = body_path, body
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STUCK_SECONDS + 5)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200 or not body["stream"]:
            data = r.read()
            j = json.loads(data) if data else {}
            if r.status != 200:
                return r.status, None, j
            if api.startswith("openai"):
                return 200, j["choices"][0]["message"]["content"], j["dormouse"]
            return 200, j["message"]["content"], j["dormouse"]
        text, fields = "", None
        for raw in r:
            line = raw.decode().strip()
            if not line:
                continue
            if api.startswith("openai"):
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                j = json.loads(line[6:])
                for c in j.get("choices", []):
                    text += c.get("delta", {}).get("content") or ""
                fields = j.get("dormouse", fields)
            else:
                j = json.loads(line)
                text += j.get("message", {}).get("content", "")
                if j.get("done"):
                    fields = j.get("dormouse")
            if cancel:
                return 499, None, None
        return 200, text, fields
    finally:
        conn.close()


class Soak:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.failures = []
        self.latencies = []
        self.requests = 0
        self.retried = 0
        self.budget_refusals = 0
        self.recomputed_differ = 0
        self.context_full = 0  # conversations that outgrew the context: a new one started
        self.kill_windows = []  # [t_kill, t_ready]
        self.inflight = {}
        self.next_id = 0
        self.turns = []  # (client, api, model, messages sent, reply, cached tokens)
        self.histories = {}
        self.session_of = {}
        self.max_rss = 0.0
        self.done = threading.Event()
        self.models = [os.path.splitext(os.path.basename(m))[0] for m in args.models]

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)

    def in_kill_window(self, start, end):
        with self.lock:
            return any(start <= ready + 1.0 and end >= k for k, ready in self.kill_windows)

    def killing(self):
        with self.lock:
            return bool(self.kill_windows) and self.kill_windows[-1][1] is None

    def tracked(self, what, fn):
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            self.inflight[rid] = (time.time(), what)
            self.requests += 1
        start = time.time()
        try:
            return fn()
        finally:
            with self.lock:
                del self.inflight[rid]
                self.latencies.append(time.time() - start)

    def watchdog(self):
        while not self.done.wait(1.0):
            now = time.time()
            with self.lock:
                stuck = [w for t, w in self.inflight.values() if now - t > STUCK_SECONDS]
            for w in stuck:
                self.fail(f"request stuck for over {STUCK_SECONDS} s: {w}")
            if stuck:
                self.server.kill()  # unblocks the stuck clients; the run has failed
                return
            self.max_rss = max(self.max_rss, rss_mib(self.server.proc.pid))

    def first_turn(self, client, conv):
        if self.args.identical_first_turn and conv == 0:
            return [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": QUESTIONS[0]}]
        return [{"role": "system",
                 "content": f"You are helper number {client} of {self.run_id}, conversation {conv}."},
                {"role": "user", "content": QUESTIONS[(client + conv) % len(QUESTIONS)]}]

    def client(self, client):
        a = self.args
        rng = random.Random(client * 7919 + a.seed)
        model = self.models[client % len(self.models)]
        conv = 0  # a client starts a new conversation when the model's context is full
        history = self.first_turn(client, conv)
        turns = 0
        while turns < self.args.max_turns and time.time() < self.deadline and not self.failures:
            api = rng.choice(["openai", "openai_stream", "ollama", "ollama_stream"])
            ka0 = api.startswith("ollama") and rng.random() < 0.15
            if rng.random() < 0.1:
                self.cancelled_stream(client, turns, model, rng)
            path, body = chat_body(api, model, history, self.args.max_tokens, ka0)
            start = time.time()
            try:
                status, text, fields = self.tracked(
                    f"client {client} turn {turns} {api}",
                    lambda: chat(self.args.port, api, path, body))
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, text, fields = -1, None, repr(e)
            end = time.time()
            if status == 200 and fields:
                self.record((client, conv), api, model, history, text, fields, ka0)
                history = history + [{"role": "assistant", "content": text},
                                     {"role": "user", "content": QUESTIONS[
                                         (client + turns + 1) % len(QUESTIONS)] + f" ({turns})"}]
                turns += 1
                continue
            if status == 503 and "memory budget" in json.dumps(fields) and not a.strict_budget:
                with self.lock:
                    self.budget_refusals += 1
                time.sleep(0.2)  # the other model is busy: retry the same turn
                continue
            if status == 413 and "context" in json.dumps(fields) and len(history) > 2:
                with self.lock:
                    self.context_full += 1
                conv += 1  # as a person would: the conversation outgrew the context
                history = self.first_turn(client, conv)
                continue
            if status == 429 or self.killing() or self.in_kill_window(start, end):
                with self.lock:
                    self.retried += 1
                time.sleep(0.2)  # back off before retrying the same turn
                continue
            self.fail(f"client {client} turn {turns} {api}: status {status}: {fields}")
            return

    def record(self, key, api, model, history, text, fields, ka0):
        """key: (client, conversation)."""
        with self.lock:
            self.turns.append((key, api, model, list(history), text, fields["cached_tokens"]))
            self.histories[key] = history + [{"role": "assistant", "content": text}]
            self.session_of[key] = fields["session_id"]

    def cancelled_stream(self, client, n, model, rng):
        api = rng.choice(["openai_stream", "ollama_stream"])
        msgs = [{"role": "user", "content": f"Scratch {client}.{n} of {self.run_id}: talk."}]
        path, body = chat_body(api, model, msgs, 64, False)
        try:
            self.tracked(f"client {client} cancel", lambda: chat(
                self.args.port, api, path, body, cancel=True))
        except (OSError, http.client.HTTPException, ValueError):
            pass  # a cancel racing a kill

    def chaos(self):
        rng = random.Random(self.args.seed)
        kill_at = [self.start + (i + 1) * self.args.seconds / (self.args.kills + 1)
                   for i in range(self.args.kills)]
        while time.time() < self.deadline and not self.failures:
            if kill_at and time.time() >= kill_at[0]:
                kill_at.pop(0)
                self.kill_and_restart()
                continue
            action = rng.choice(["sessions", "sessions", "eject"])
            try:
                if action == "sessions":
                    status, body = self.tracked("list sessions", lambda: call(
                        self.args.port, "GET", "/api/sessions"))
                else:
                    target = {"model": rng.choice(self.models),
                              "level": rng.choice(["warm", "cold"])}
                    status, body = self.tracked("eject", lambda: call(
                        self.args.port, "POST", "/api/eject", target))
                if status >= 500 and not self.killing():
                    self.fail(f"{action}: {status} {body}")
            except OSError as e:
                if not self.killing():
                    self.fail(f"{action}: {e!r}")
            self.done.wait(rng.uniform(0.5, 2.0))

    def kill_and_restart(self):
        with self.lock:
            self.kill_windows.append([time.time(), None])
        self.server.kill()
        self.kills += 1
        self.server.start()
        with self.lock:
            self.kill_windows[-1][1] = time.time()

    def check_transcripts(self):
        sids = {}
        for key, history in sorted(self.histories.items()):
            sid = self.session_of[key]
            if sid in sids:
                self.fail(f"conversations {sids[sid]} and {key} (client, number) share session {sid} (merged)")
            sids[sid] = key
            status, s = call(self.args.port, "GET", f"/api/sessions/{sid}")
            if status != 200:
                self.fail(f"conversation {key}: session {sid} is gone ({status}: {s})")
                continue
            got = [(m["role"], m["content"]) for m in s["messages"]]
            want = [(m["role"], m["content"]) for m in history]
            if got != want:
                self.fail(f"conversation {key}: session {sid} holds {len(got)} messages, the "
                          f"conversation has {len(want)}; first difference at "
                          f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
        status, listing = call(self.args.port, "GET", "/api/sessions")
        listed = {s["id"] for s in listing["sessions"]} if status == 200 else set()
        for sid, key in sids.items():
            if sid not in listed:
                self.fail(f"conversation {key}: session {sid} missing from /api/sessions")

    def check_from_scratch(self):
        """Replays every recorded turn on a fresh server, each client's turns in order.

        Default: the replay reuses rows as a quiet server would (the previous turn's), so
        a reply must be equal wherever the soak reused as many rows as the replay did;
        where the soak recomputed rows (a kill lost them) a difference is counted, not
        failed: prefill and decode round differently. --strict-scratch instead computes
        every turn with nothing cached (a cold eject and the session deleted between
        turns) and fails on any difference."""
        a = self.args
        data = tempfile.mkdtemp(prefix="dm_soak_replay_")
        replay = Server(a, data, free_port(), ["--parallel", "1"])
        replay.start()
        checked = 0
        # Conversations whose rows the soak and the replay computed along different paths
        # (one recomputed what the other had cached): from there on their rows differ in
        # rounding, so a later turn may differ even where both cached as many tokens.
        diverged = set()
        try:
            for client, api, model, messages, reply, cached in sorted(
                    self.turns, key=lambda t: (t[0], len(t[3]))):
                api = api.replace("_stream", "")
                path, body = chat_body(api, model, messages, a.max_tokens, False)
                status, text, fields = chat(replay.port, api, path, body)
                if status != 200:
                    self.fail(f"replay of client {client}: status {status}: {fields}")
                    continue
                checked += 1
                where = f"client {client} {api} turn {len(messages) // 2}"
                if a.strict_scratch:
                    call(replay.port, "DELETE", f"/api/sessions/{fields['session_id']}")
                    call(replay.port, "POST", "/api/eject",
                         {"model": model, "level": "cold", "force": True})
                same_path = client not in diverged and cached == fields["cached_tokens"]
                if cached != fields["cached_tokens"]:
                    diverged.add(client)
                if text == reply:
                    continue
                if a.strict_scratch or same_path:
                    self.fail(f"{where}: reply {reply!r} but from scratch {text!r} (cached "
                              f"{cached} vs {fields['cached_tokens']} tokens)")
                else:
                    self.recomputed_differ += 1
                    why = ("" if cached != fields["cached_tokens"] else
                           ", rows recomputed on an earlier turn")
                    print(f"  note: {where}: soak cached {cached} tokens, replay "
                          f"{fields['cached_tokens']}{why}; replies {reply!r} / {text!r}")
        finally:
            replay.stop()
            shutil.rmtree(data, ignore_errors=True)
        return checked

    def run(self):
        a = self.args
        self.run_id = f"soak-{os.getpid()}-{int(time.time())}"
        data = tempfile.mkdtemp(prefix="dm_soak_")
        self.server = Server(a, data, a.port, ["--memory-budget", a.memory_budget])
        self.kills = 0
        self.server.start()
        self.start = time.time()
        self.deadline = self.start + a.seconds
        watchdog = threading.Thread(target=self.watchdog, daemon=True)
        watchdog.start()
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(a.clients)]
        threads.append(threading.Thread(target=self.chaos))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - self.start
        checked = 0
        try:
            if not self.failures:
                self.check_transcripts()
        finally:
            self.done.set()
            self.server.stop()
        if not self.failures and not a.skip_replay:
            checked = self.check_from_scratch()
        if self.max_rss > a.max_rss_mib:
            self.fail(f"server RSS reached {self.max_rss:.0f} MiB (limit {a.max_rss_mib})")
        lat = sorted(self.latencies) or [0.0]
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        print(f"soak: {elapsed:.0f} s, {a.clients} clients, {len(self.models)} models, "
              f"budget {a.memory_budget}")
        print(f"  requests {self.requests} (retried in kill windows or on 429: {self.retried}), "
              f"turns {len(self.turns)}, kills {self.kills}")
        print(f"  503s for a memory budget held by the other (busy) model, retried: "
              f"{self.budget_refusals}")
        print(f"  conversations {len(self.histories)} ({self.context_full} outgrew the context "
              f"and were followed by a new one)")
        print(f"  turns checked from scratch {checked} (differing where the soak recomputed "
              f"rows: {self.recomputed_differ}), conversations checked {len(self.histories)}")
        print(f"  max RSS {self.max_rss:.0f} MiB, latency p50 {pct(0.5):.0f} ms, "
              f"p99 {pct(0.99):.0f} ms")
        if self.failures:
            print(f"  FAILED ({len(self.failures)}): see above; server log in {data}")
            print(self.server.log_tail(), file=sys.stderr)
            return 1
        if not self.turns:
            print("  FAILED: no turn completed")
            return 1
        shutil.rmtree(data, ignore_errors=True)
        print("  ok")
        return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(here, "..", "..", "shared", "models")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(here, "..", "build", "dormouse"))
    p.add_argument("--models", nargs="+", default=[
        os.path.join(shared, "stories260K.gguf"), os.path.join(shared, "qwen2-20m-q8_0.gguf")])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=40)
    p.add_argument("--max-turns", type=int, default=60, help="per client")
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--memory-budget", default="90M", help="holds only one of the two models")
    p.add_argument("--max-rss-mib", type=float, default=600)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--identical-first-turn", action="store_true")
    p.add_argument("--skip-replay", action="store_true")
    p.add_argument("--strict-scratch", action="store_true",
                   help="replay every turn with nothing cached; fails today where decode and "
                        "prefill round differently")
    p.add_argument("--strict-budget", action="store_true",
                   help="fail on a 503 for a memory budget held by a busy model (the server "
                        "answers so instead of waiting for the budget today)")
    args = p.parse_args()
    if args.port == 0:
        args.port = free_port()
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
