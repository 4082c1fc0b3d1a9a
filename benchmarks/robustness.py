"""Robustness evidence for issue 12: kills during saves, concurrent writers, damaged directories,
crafted pickles and a bounded load test of ``gemcaption serve`` on 127.0.0.1.

    .venv/bin/python benchmarks/robustness.py            # full run (<= 12 minutes on an idle machine)
    .venv/bin/python benchmarks/robustness.py --quick    # a few trials of each part (~1-3 minutes)

Prints a table and writes ``benchmarks/results/robustness.json`` and ``.md`` with the machine load.
Targets: 0 unloadable, 0 lost, 0 litter, 0 executed, 0 "other" exceptions, 0 non-JSON errors,
0 HTTP 500s, server RSS under 1.5 GB.

Kill trials reuse ``tests/kill_saves.py``: each saving process is forked from one "zygote" process
that imported TensorFlow and gemcaption once (importing TensorFlow per trial would take most of the
run), so every trial still kills a real process that is saving.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, table, write_results

TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))
from kill_saves import leftovers, random_delays  # noqa: E402

from gemcaption.persistence import COMPLETE_MARKER  # noqa: E402

PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}

# --------------------------------------------------------------------------------------------------
# what each saver builds: two versions of one object, told apart after a load

BUILDERS = """
import numpy as np
from pathlib import Path
from PIL import Image


def tiny_images(folder, count=6):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        rgb = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)][k % 6]
        path = folder / f"img{k}.png"
        if not path.exists():
            Image.new("RGB", (24, 24), rgb).save(path)
        paths.append(str(path))
    return paths


def toy_captioner(version):
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.decoders import build_decoder
    from gemcaption.captioning.vocabulary import Vocabulary

    captioner = Captioner("lstm", encoder="efficientnet_lite0", image_size=32, weights=None, embed_dim=8, ff_dim=8,
                          seq_len=5, seed=version)
    captioner.vocabulary = Vocabulary([f"word{version}", "shared"])
    captioner.decoder = build_decoder("lstm", vocab_size=len(captioner.vocabulary),
                                      **captioner.config.decoder.hyper_parameters())
    captioner.decoder((np.zeros((1, 1, 1280), "float32"), np.zeros((1, 1, 5), "int32")))
    captioner.history = {"version": version}
    return captioner


def classifier(classes):
    from gemcaption.classification import GemClassifier
    from gemcaption.classification.baselines import DescriptorClassifier

    rng = np.random.default_rng(classes)
    y = np.repeat(np.arange(classes), 4)
    x = rng.integers(0, 255, (len(y), 16, 16, 3)).astype(np.uint8)
    model = DescriptorClassifier("rf", features=("handcrafted",), image_size=16, n_estimators=5)
    model.fit(x, y, classes)
    result = GemClassifier(model)
    result.labels = ["Ruby", "Emerald", "Sapphire"][:classes]
    return result


TEXTS = ["a red ring", "a gold chain", "silver earrings", "a blue pendant", "a green bracelet", "pearl necklace"]


def embedder(version):
    from gemcaption.retrieval.embedders import TfidfSvdEmbedder

    return TfidfSvdEmbedder(dim=3).fit(TEXTS[:3] if version == 1 else TEXTS[2:])


def index(version, images):
    from fakes import FakeCaptioner
    from gemcaption.retrieval.retriever import Retriever

    return Retriever(FakeCaptioner(), progress=False).build(images[: 3 if version == 1 else 6])


def build(kind, version, workdir):
    if kind == "captioner":
        return toy_captioner(version)
    if kind == "classifier":
        return classifier(version + 1)
    if kind == "embedder":
        return embedder(version)
    return index(version, tiny_images(Path(workdir) / "images"))
"""

SAVER = """
import sys
kind, target, workdir, ready_file = sys.argv[1:]
versions = [build(kind, 1, workdir), build(kind, 2, workdir)]
versions[0].save(target)
open(ready_file, "w").close()
i = 1
while True:
    versions[i % 2].save(target)
    i += 1
"""

ZYGOTE = """
import json, os, signal, sys
import keras, tensorflow  # imported, never run: a forked child starts its own thread pools
import gemcaption.captioning.captioner, gemcaption.captioning.decoders, gemcaption.classification
import gemcaption.classification.baselines, gemcaption.retrieval.embedders, gemcaption.retrieval.retriever
import fakes
exec(BUILDERS)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
print("ZYGOTE", flush=True)
for line in sys.stdin:
    argv = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sys.argv = ["saver", *argv]
        try:
            exec(SAVER)
        finally:
            os._exit(1)
    print(pid, flush=True)
"""


def _namespace() -> dict:
    namespace: dict = {}
    exec(BUILDERS, namespace)
    return namespace


def version_of(kind: str, target: Path, workdir: Path, namespace: dict):
    """Which version (0, 1 or 2) the directory holds after loading it; raises when it does not load."""
    if kind == "captioner":
        from gemcaption.captioning.captioner import Captioner

        return Captioner.load(target, feature_cache=False).history["version"]
    if kind == "classifier":
        from gemcaption.classification import GemClassifier

        return {2: 1, 3: 2}.get(len(GemClassifier.load(target).labels), "?")
    if kind == "embedder":
        from gemcaption.retrieval.embedders import load_embedder

        vocabulary = set(load_embedder(target).vocabulary)
        expected = {v: set(namespace["embedder"](v).vocabulary) for v in (1, 2)}
        return next((v for v, words in expected.items() if words == vocabulary), "?")
    from gemcaption.retrieval.retriever import Retriever

    return {3: 1, 6: 2}.get(len(Retriever.load(target, progress=False)), "?")


class Zygote:
    """A process that imported everything once and forks one saving child per request."""

    def __init__(self) -> None:
        code = f"BUILDERS = {BUILDERS!r}\nSAVER = {SAVER!r}\n" + ZYGOTE
        self.process = subprocess.Popen(
            [PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV
        )
        self.stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        self.stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        if self.stdout.readline().strip() != "ZYGOTE":
            raise RuntimeError("the zygote process did not start")

    def fork(self, *argv: str) -> int:
        self.stdin.write(json.dumps(list(argv)) + "\n")
        self.stdin.flush()
        return int(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def kill_trials(kind: str, trials: int, zygote: Zygote, work: Path, seed: int) -> dict:
    namespace = _namespace()
    target, ready = work / kind / "target", work / kind / "ready"
    target.parent.mkdir(parents=True, exist_ok=True)
    namespace["build"](kind, 1, str(work / kind)).save(target)
    counts: dict[str, Any] = {
        "saver": kind,
        "trials": 0,
        "interrupted": 0,
        "unloadable": 0,
        "lost": 0,
        "litter": 0,
        "errors": "",
    }
    started = time.perf_counter()
    high = 3.0 if kind == "captioner" else 0.5  # a captioner save takes seconds, most of it before staging
    for delay in random_delays(trials, seed=seed, high=high):
        ready.unlink(missing_ok=True)
        pid = zygote.fork(kind, str(target), str(work / kind), str(ready))
        deadline = time.time() + 120
        while not ready.exists() and time.time() < deadline and _alive(pid):
            time.sleep(0.02)
        if not ready.exists():
            os.kill(pid, signal.SIGKILL) if _alive(pid) else None
            counts["errors"] = f"saver {kind} never got ready"
            break
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.01)
        counts["trials"] += 1
        counts["interrupted"] += bool(leftovers(target))
        try:
            version = version_of(kind, target, work / kind, namespace)
        except Exception as exc:
            counts["unloadable"] += 1
            counts["errors"] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        counts["lost"] += version not in (1, 2)
        counts["litter"] += bool(leftovers(target))  # the load cleaned up what the kill left?
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


# --------------------------------------------------------------------------------------------------
# concurrent writers: two processes adding to one index through Retriever.edit

WRITER = """
import os, sys, time
from pathlib import Path
from fakes import FakeCaptioner
from gemcaption.retrieval.retriever import Retriever
barrier, index, *images = sys.argv[1:]
Path(barrier, str(os.getpid())).touch()
while len(list(Path(barrier).iterdir())) < 2:
    time.sleep(0.01)
with Retriever.edit(index, FakeCaptioner(), progress=False) as retriever:
    retriever.add(images)
"""


def concurrent_trials(trials: int, work: Path) -> dict:
    from fakes import FakeCaptioner

    from gemcaption.retrieval.retriever import Retriever

    images = _namespace()["tiny_images"](work / "concurrent" / "images", 6)
    counts: dict[str, Any] = {"trials": 0, "lost": 0, "unloadable": 0, "writer_failures": 0, "errors": ""}
    started = time.perf_counter()
    for trial in range(trials):
        index, barrier = work / "concurrent" / f"idx{trial}", work / "concurrent" / f"barrier{trial}"
        barrier.mkdir(parents=True)
        Retriever(FakeCaptioner(), progress=False).build(images[:2]).save(index)
        writers = [
            subprocess.Popen([PYTHON, "-c", WRITER, str(barrier), str(index), *part], env=ENV, stderr=subprocess.PIPE)
            for part in (images[2:4], images[4:6])
        ]
        for writer in writers:
            _, err = writer.communicate(timeout=300)
            if writer.returncode != 0:
                counts["writer_failures"] += 1
                counts["errors"] = err.decode(errors="replace").strip().splitlines()[-1][:200]
        counts["trials"] += 1
        try:
            loaded = Retriever.load(index, progress=False)
        except Exception as exc:
            counts["unloadable"] += 1
            counts["errors"] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        counts["lost"] += len(loaded) != 6
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


# --------------------------------------------------------------------------------------------------
# damaged directories and crafted pickles


def _mutations(path: Path, rng: random.Random):
    data = path.read_bytes()
    yield "truncate", data[: len(data) // 2]
    if data:
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 0xFF
        yield "bitflip", bytes(flipped)
    yield "zero", b"\0" * len(data)
    yield "delete", None


def fuzz(kinds: list[str], work: Path, per_file: int, seed: int) -> list[dict]:
    from gemcaption.errors import ModelError

    namespace, rng, rows = _namespace(), random.Random(seed), []
    for kind in kinds:
        original = work / "fuzz" / kind / "original"
        original.parent.mkdir(parents=True, exist_ok=True)
        namespace["build"](kind, 1, str(work / "fuzz" / kind)).save(original)
        counts: dict[str, Any] = {
            "kind": kind,
            "cases": 0,
            "clean_model_error": 0,
            "other_exception": 0,
            "silent_load": 0,
        }
        examples: list[str] = []
        # Every data file and the manifest. The COMPLETE marker is left alone: it holds no data (an
        # empty file the swap writes last), so a load that ignores its damage loses nothing.
        files = sorted(
            p.relative_to(original) for p in original.rglob("*") if p.is_file() and p.name != COMPLETE_MARKER
        )
        for relative in files:
            for _ in range(per_file):
                for name, content in _mutations(original / relative, rng):
                    copy = work / "fuzz" / kind / "case"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(original, copy)
                    if content is None:
                        (copy / relative).unlink()
                    else:
                        (copy / relative).write_bytes(content)
                    counts["cases"] += 1
                    try:
                        version_of(kind, copy, work / "fuzz" / kind, namespace)
                        counts["silent_load"] += 1
                        examples.append(f"silent: {name} {relative}")
                    except ModelError:
                        counts["clean_model_error"] += 1
                    except Exception as exc:
                        counts["other_exception"] += 1
                        examples.append(f"{type(exc).__name__}: {name} {relative}: {str(exc)[:80]}")
        counts["examples"] = examples[:6]
        rows.append(counts)
    return rows


class _Marker:
    """Unpickling this creates the marker file: proof that a load ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_pickles(work: Path) -> dict:
    """A crafted legacy .pth and a legacy estimator.joblib that would create a marker file if loaded."""
    import joblib

    from gemcaption.captioning.encoders import torch_checkpoint
    from gemcaption.captioning.encoders.efficientnet_lite0 import lite0_weights_from_file
    from gemcaption.classification import GemClassifier
    from gemcaption.classification.baselines import DescriptorClassifier

    folder = work / "pickles"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cases": 0, "executed": 0, "refused": 0, "errors": []}

    def attempt(name, load, marker):
        results["cases"] += 1
        try:
            load()
        except Exception as exc:
            results["refused"] += 1
            results["errors"].append(f"{name}: {type(exc).__name__}: {str(exc)[:100]}")
        results["executed"] += os.path.exists(marker)

    marker = str(folder / "pth.marker")
    pth = folder / "evil.pth"
    stream = io.BytesIO()
    item: object
    for item in (torch_checkpoint.LEGACY_MAGIC_NUMBER, torch_checkpoint.LEGACY_PROTOCOL_VERSION, {}, _Marker(marker)):
        pickle.dump(item, stream, protocol=2)
    pth.write_bytes(stream.getvalue())
    attempt("legacy .pth", lambda: lite0_weights_from_file(pth), marker)

    marker = str(folder / "joblib.marker")
    legacy = folder / "legacy-classifier"
    _namespace()["classifier"](2).save(legacy)
    forest = next(legacy.rglob("forest.npz"))  # swapped for a pickle, every manifest made consistent with it
    forest.unlink()
    joblib.dump(_Marker(marker), forest.with_name("estimator.joblib"))
    for manifest in sorted(legacy.rglob("manifest.json"), key=lambda m: -len(m.parts)):  # inner ones first
        content = json.loads(manifest.read_text())
        files = content.get("files", {})
        for name in list(files):
            renamed = name.replace("forest.npz", "estimator.joblib")
            del files[name]
            files[renamed] = hashlib.sha256((manifest.parent / renamed).read_bytes()).hexdigest()
        manifest.write_text(json.dumps(content))
    attempt("legacy estimator.joblib", lambda: GemClassifier.load(legacy), marker)
    attempt("legacy estimator.joblib, loaded directly", lambda: DescriptorClassifier.load(legacy / "model"), marker)
    with contextlib.suppress(Exception):  # control: the crafted file does run code when the user trusts it
        DescriptorClassifier.load(legacy / "model", trust=True)
    results["control_runs_with_trust"] = os.path.exists(marker)
    return results


# --------------------------------------------------------------------------------------------------
# the server under load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _png(size: tuple[int, int], colour=(180, 40, 90)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = "gemcaptionbench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n5\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def server_load(work: Path, text_clients: int, text_queries: int, image_clients: int, image_queries: int) -> dict:
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.retrieval.retriever import Retriever

    namespace = _namespace()
    model, index = work / "server" / "model", work / "server" / "index"
    model.parent.mkdir(parents=True, exist_ok=True)
    namespace["toy_captioner"](1).save(model)
    images = namespace["tiny_images"](work / "server" / "images", 6)
    Retriever(Captioner.load(model, feature_cache=False), model_dir=model, progress=False).build(images).save(index)
    port = _free_port()
    log = open(work / "server" / "serve.log", "w")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [PYTHON, "-m", "gemcaption", "serve", "--index", str(index), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=ENV,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/api/info", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(
                        f"the server stopped: {(work / 'server' / 'serve.log').read_text()[-500:]}"
                    ) from None
                time.sleep(0.2)
        rss, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                rss.append(_rss_mb(server.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: dict[str, list] = {"text": [], "image": []}
        lock = threading.Lock()
        small, bomb = _png((48, 48)), _png((8000, 8000), (0, 0, 0))

        def request(kind: str, body: bytes, content_type: str) -> None:
            started = time.perf_counter()
            status, is_json = 0, False
            try:
                req = urllib.request.Request(url + "/api/search", data=body, headers={"Content-Type": content_type})
                with urllib.request.urlopen(req, timeout=120) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
            except OSError as error:
                status, payload = -1, str(error).encode()
            try:
                json.loads(payload)
                is_json = True
            except ValueError:
                pass
            with lock:
                results[kind].append((status, is_json, time.perf_counter() - started))

        def text_client(c: int) -> None:
            for q in range(text_queries):
                text = ["a red ring", "gold", "", "x" * 2000, "silver chain", "ñandú pendiente"][(c + q) % 6]
                request("text", json.dumps({"text": text, "k": 5}).encode(), "application/json")

        def image_client(c: int) -> None:
            for q in range(image_queries):
                body, content_type = _multipart(bomb if q == 0 else small, f"c{c}q{q}.png")
                request("image", body, content_type)

        threads = [threading.Thread(target=text_client, args=(c,)) for c in range(text_clients)]
        threads += [threading.Thread(target=image_client, args=(c,)) for c in range(image_clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    summary = {"wall_seconds": round(wall, 1), "max_rss_mb": round(max(rss or [0.0]), 1), "rss_samples": len(rss)}
    for kind, rows in results.items():
        latencies = sorted(t for _, _, t in rows)

        def pct(p, values=latencies):
            return round(1000 * values[min(len(values) - 1, int(p / 100 * len(values)))], 1) if values else None

        statuses: dict[str, int] = {}
        for status, _, _ in rows:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        summary[kind] = {
            "requests": len(rows),
            "statuses": statuses,
            "http_500": sum(s >= 500 for s, _, _ in rows),
            "non_json": sum(not j for _, j, _ in rows),
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
        }
    return summary


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few trials of each part (about a minute or three)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["kill", "concurrent", "fuzz", "server"])
    args = parser.parse_args()
    kill_n, concurrent_n, fuzz_n = (3, 2, 1) if args.quick else (20, 10, 2)
    load = (10, 20, 2, 5) if args.quick else (50, 200, 10, 20)
    kinds = ["captioner", "classifier", "embedder", "index"]
    payload: dict = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": args.quick,
        "machine_before": machine(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gemcaption-robustness-") as tmp:
        work = Path(tmp)
        if "kill" not in args.skip:
            zygote = Zygote()
            try:
                payload["kill_trials"] = [
                    kill_trials(k, kill_n, zygote, work, args.seed + i) for i, k in enumerate(kinds)
                ]
            finally:
                zygote.close()
            print(
                table(
                    payload["kill_trials"],
                    ["saver", "trials", "interrupted", "unloadable", "lost", "litter", "seconds", "errors"],
                ),
                file=sys.stderr,
            )
        if "concurrent" not in args.skip:
            payload["concurrent_writers"] = concurrent_trials(concurrent_n, work)
            print(payload["concurrent_writers"], file=sys.stderr)
        if "fuzz" not in args.skip:
            payload["fuzz"] = fuzz(kinds, work, fuzz_n, args.seed)
            payload["pickles"] = crafted_pickles(work)
            print(payload["fuzz"], payload["pickles"], file=sys.stderr)
        if "server" not in args.skip:
            payload["server"] = server_load(work, *load)
            payload["server"]["clients"] = {"text": f"{load[0]} x {load[1]}", "image": f"{load[2]} x {load[3]}"}
            print(payload["server"], file=sys.stderr)
    payload["seconds"] = round(time.perf_counter() - started, 1)
    payload["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    payload["machine_after"] = {"load_average_1m": round(os.getloadavg()[0], 2)}
    write_results("robustness", payload, markdown(payload))
    return 0


def markdown(payload: dict) -> str:
    parts = [
        f"# Robustness ({payload['command']}, {payload['seconds']} s, load "
        f"{payload['machine_before']['load_average_1m']} -> {payload['machine_after']['load_average_1m']})"
    ]
    if "kill_trials" in payload:
        parts += [
            "",
            "## Kill during save",
            table(payload["kill_trials"], ["saver", "trials", "interrupted", "unloadable", "lost", "litter"]),
        ]
    if "concurrent_writers" in payload:
        c = payload["concurrent_writers"]
        parts += ["", "## Concurrent writers", table([c], ["trials", "lost", "unloadable", "writer_failures"])]
    if "fuzz" in payload:
        parts += [
            "",
            "## Damaged directories",
            table(payload["fuzz"], ["kind", "cases", "clean_model_error", "other_exception", "silent_load"]),
        ]
        p = payload["pickles"]
        parts += ["", "## Crafted pickles", table([p], ["cases", "refused", "executed"])]
    if "server" in payload:
        s = payload["server"]
        rows = [
            {"queries": k, **{c: s[k][c] for c in ("requests", "http_500", "non_json", "p50_ms", "p95_ms", "p99_ms")}}
            for k in ("text", "image")
        ]
        parts += [
            "",
            f"## Server load (max RSS {s['max_rss_mb']} MB, {s['wall_seconds']} s)",
            table(rows, ["queries", "requests", "http_500", "non_json", "p50_ms", "p95_ms", "p99_ms"]),
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
