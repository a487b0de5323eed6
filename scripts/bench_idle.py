#!/usr/bin/env python3
"""The idle scenario of ../shared/BENCHMARKS.md against `dormouse serve`.

Starts the server, sends a 1,500-word conversation to /v1/completions (max_tokens 1),
sends the next turn (same text plus a few words), stays idle until the keep-alive ejects
the model, sends the next turn again, then restarts the server on the same data dir and
sends one more. Prints RSS (total/anon/file, from /proc/PID/status) at each stage and
each turn's latency with how many prompt tokens were reused.

A benchmark, not a test: nothing is asserted. Python standard library only.

  scripts/bench_idle.py [--bin build/dormouse] [--model llama-58m-q8_0] [--keep-alive 5s]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("the a little dormouse slept in hazel tree while autumn wind turned leaves gold "
         "and red she dreamed of berries nuts seeds honey warm nest under old oak roots "
         "winter came snow covered forest quiet deep long night stars moon river ice "
         "friends badger fox owl hedgehog squirrel rabbit visited spring woke sun light "
         "grass flowers bees sang songs morning path stone bridge village baker bread "
         "children played laughed ran garden fence gate window door lamp book story").split()


def conversation_text(n_words, seed=7):
    rng = random.Random(seed)
    sentences, words = [], 0
    while words < n_words:
        k = rng.randint(6, 14)
        s = " ".join(rng.choice(WORDS) for _ in range(k))
        sentences.append(s[0].upper() + s[1:] + ".")
        words += k
    return " ".join(sentences)


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024.0  # kB -> MiB
    return out


def fmt_rss(pid):
    r = rss(pid)
    return f"{r['VmRSS']:.0f} MiB (anon {r['RssAnon']:.0f} / file {r['RssFile']:.0f})"


def post(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


class Server:
    def __init__(self, args, data_dir):
        cmd = [args.bin, "serve", "--port", "0", "--data-dir", data_dir, "-t", str(args.threads),
               "-c", str(args.ctx), "--keep-alive", args.keep_alive]
        cmd += ["-m", args.model] if args.model.endswith(".gguf") else ["--models-dir", args.models_dir]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            m = re.search(rb"listening on (http://\S+)", self.log.read())
            if m:
                self.url = m.group(1).decode()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        sys.exit("the server did not start:\n" + self.log.read().decode(errors="replace"))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def turn(server, model, prompt, label):
    t0 = time.perf_counter()
    r = post(server.url + "/v1/completions",
             {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0})
    dt = time.perf_counter() - t0
    u, d = r["usage"], r.get("dormouse", {})
    cached = u.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    how = "restored from snapshot, " if d.get("restored_from_snapshot") else ""
    extra = ""
    if d.get("load_seconds"):
        extra += "; model load %.3f s" % d["load_seconds"]
    if d.get("restore_seconds"):
        extra += "; restore %.1f ms" % (d["restore_seconds"] * 1000)
    print(f"{label:<28} {dt:8.3f} s   prompt {u['prompt_tokens']} tokens: {how}"
          f"{cached} reused, {u['prompt_tokens'] - cached} prefilled{extra}")
    print(f"{'':<28} RSS {fmt_rss(server.proc.pid)}")


def wait_ejected(server, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not get(server.url + "/api/ps")["models"]:
            return True
        time.sleep(0.2)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "dormouse"))
    p.add_argument("--models-dir", default=os.path.join(ROOT, "..", "shared", "models"))
    p.add_argument("--model", default="llama-58m-q8_0",
                   help="a name in --models-dir, or a .gguf path")
    p.add_argument("--words", type=int, default=1500)
    p.add_argument("--keep-alive", default="5s")
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    model = os.path.basename(args.model)[:-5] if args.model.endswith(".gguf") else args.model
    text = conversation_text(args.words)
    data_dir = tempfile.mkdtemp(prefix="dormouse-bench-")
    try:
        server = Server(args, data_dir)
        print(f"dormouse idle benchmark: {model}, {args.words} words, keep-alive {args.keep_alive}, "
              f"-c {args.ctx}, -t {args.threads}")
        print(f"{'server started':<28} RSS {fmt_rss(server.proc.pid)}")
        turn(server, model, text, "first turn (cold)")
        text += " The dormouse woke up."
        turn(server, model, text, "next turn (warm)")
        t0 = time.time()
        if not wait_ejected(server, 600):
            sys.exit("the model was not ejected; is --keep-alive short?")
        time.sleep(1.0)  # let the allocator settle after the eject
        label = "idle (ejected after %.1f s)" % (time.time() - t0)
        print(f"{label:<28} RSS {fmt_rss(server.proc.pid)}")
        text += " She looked around."
        turn(server, model, text, "next turn after idle")
        code = server.stop()
        print(f"{'restart':<28} (SIGTERM exit code {code})")
        server = Server(args, data_dir)
        print(f"{'server started again':<28} RSS {fmt_rss(server.proc.pid)}")
        text += " Spring had come."
        turn(server, model, text, "next turn after restart")
        server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
