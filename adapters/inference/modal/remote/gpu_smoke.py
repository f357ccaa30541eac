"""Run the model smoke tests once and write a JSON report.

For a GPU machine that has torch, transformers, tokenizers, Pillow, numpy
(and torchvision) but no network: nothing is downloaded, the models are tiny
and built in code. From the repository root:

    python3 adapters/inference/modal/remote/gpu_smoke.py --out smoke-report.json
    FORESIGHT_SMOKE_DEVICE=cpu python3 adapters/inference/modal/remote/gpu_smoke.py

Exits 0 when every test passed (skips count as not passed: the exit code is 2
if anything was skipped, 1 if anything failed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "tokenizers", "PIL", "numpy", "torchvision"):
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as err:  # noqa: BLE001 - report whatever is wrong
            out[name] = f"missing ({type(err).__name__})"
    return out


def device_info() -> dict:
    info = {
        "FORESIGHT_SMOKE_DEVICE": os.environ.get("FORESIGHT_SMOKE_DEVICE", ""),
        "FORESIGHT_SMOKE_DTYPE": os.environ.get("FORESIGHT_SMOKE_DTYPE", ""),
    }
    try:
        import model_harness

        device, dtype = model_harness.device_and_dtype()
        info.update(device=str(device), dtype=str(dtype))
        import torch

        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
            info["max_memory_allocated_mib"] = None  # filled in after the run
    except Exception as err:  # noqa: BLE001
        info["error"] = f"{type(err).__name__}: {err}"
    return info


class _Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.perf_counter()
        super().startTest(test)

    def _record(self, test, outcome, detail=""):
        seconds = time.perf_counter() - self._started.get(test.id(), time.perf_counter())
        self.records.append({"test": test.id(), "outcome": outcome, "seconds": round(seconds, 3), "detail": detail})

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="smoke-report.json", help="where to write the JSON report")
    args = parser.parse_args(argv)

    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(), "device": device_info()}
    started = time.perf_counter()
    import test_model_smoke

    suite = unittest.defaultTestLoader.loadTestsFromModule(test_model_smoke)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result, stream=sys.stderr)
    result = runner.run(suite)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["tests"] = result.records
    report["measured"] = dict(test_model_smoke.REPORT)
    try:
        import torch

        if torch.cuda.is_available() and report["device"].get("device", "").startswith("cuda"):
            report["device"]["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:  # noqa: BLE001
        pass
    outcomes = [r["outcome"] for r in result.records]
    report["summary"] = {k: outcomes.count(k) for k in ("pass", "fail", "error", "skip")}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(f"gpu_smoke: {report['summary']} -> {args.out}")
    if report["summary"]["fail"] or report["summary"]["error"]:
        return 1
    return 2 if report["summary"]["skip"] else 0


if __name__ == "__main__":
    sys.exit(main())
