#!/usr/bin/env python3
"""Checks tests/peers/torch2_kernels.py against independent computations, with the venv's python:
  /opt/mbpo-peers/venv/bin/python tests/peers/check_torch2.py
- the ensemble's forward and loss equal the Debian peer's Ensemble (../shared/peers) on the same
  weights, and the bf16 autocast forward stays within a bf16 bound of fp32;
- the tanh-Gaussian log-density equals torch.distributions' (Normal + TanhTransform);
- the command line prints one JSON line per kernel with the keys bench.lua reads, parseable by its
  flat-JSON pattern (no commas or braces inside string values).
Ends with "N passed, N failed"; exit status 0 only when nothing failed.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch2_kernels as T2  # noqa: E402

SHARED = os.path.join(HERE, "..", "..", "..", "shared", "peers", "torch_mbpo_kernels.py")
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def ensemble_matches_shared():
    if not os.path.exists(SHARED):
        print("skip: %s not found" % SHARED)
        return
    spec = importlib.util.spec_from_file_location("shared_peer", SHARED)
    shared = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared)
    torch.manual_seed(3)
    members, n_in, n_out, width = 7, 14, 12, 32
    ours = T2.GaussianEnsemble(members, n_in, n_out, width)
    theirs = shared.Ensemble(members, n_in, n_out, width)
    with torch.no_grad():
        for w, b, tw, tb in zip(ours.weights, ours.biases, theirs.w, theirs.b):
            b.normal_()
            tw.copy_(w)
            tb.copy_(b)
        ours.max_logvar.copy_(torch.randn(1, n_out) * 0.3 + 0.5)
        ours.min_logvar.copy_(torch.randn(1, n_out) - 10)
        theirs.maxlv.copy_(ours.max_logvar)
        theirs.minlv.copy_(ours.min_logvar)
    check([tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.w],
          "weight shapes differ from the shared peer")
    x = torch.randn(members, 50, n_in)
    with torch.no_grad():
        mu, lv = ours.heads(ours.raw(x))
        tmu, tlv = theirs.forward(x)
        check(torch.allclose(mu, tmu, atol=1e-5, rtol=1e-5), "ensemble mean differs")
        check(torch.allclose(lv, tlv, atol=1e-5, rtol=1e-5), "ensemble log-variance differs")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            raw16 = ours.raw(x)
        check(raw16.dtype == torch.bfloat16, "autocast did not give bf16 matmuls")
        mu16, _ = ours.heads(raw16)
        rel = ((mu16 - mu).abs().max() / mu.abs().max()).item()
        check(rel < 0.05, "bf16 forward off fp32 by %.3g of max |mu|" % rel)


def tanh_gaussian_logp():
    torch.manual_seed(4)
    agent = T2.SacAgent(11, 3, 64, 256, T2.Settings("fp32", "eager"))
    s = torch.randn(256, 11)
    # the same draw twice: our sample, then the reference density of the same pre-tanh value
    torch.manual_seed(5)
    a, logp = agent.sample(s)
    mean, log_std = agent.policy(s).chunk(2, -1)
    log_std = log_std.clamp(-20, 2)
    torch.manual_seed(5)
    pre = mean + log_std.exp() * torch.randn_like(mean)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.transforms.TanhTransform()])
    ref = dist.log_prob(torch.tanh(pre).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1, keepdim=True)
    check(torch.allclose(a, torch.tanh(pre)), "action is not tanh of the Gaussian draw")
    # the reference goes through atanh of a float: compare where |a| is not saturated
    keep = (a.abs() < 0.99).all(-1)
    check(keep.sum() > 100, "too few unsaturated rows to compare")
    err = (logp[keep] - ref[keep]).abs().max().item()
    check(err < 2e-3, "log-density off torch.distributions by %.3g" % err)


def command_line():
    script = os.path.join(HERE, "torch2_kernels.py")
    for prec in ("fp32", "bf16"):
        out = subprocess.run([sys.executable, script, "--iters", "20", "--rows", "700", "--reps", "2",
                              "--precision", prec, "--kernels", "sac,train,predict,act"],
                             capture_output=True, text=True, check=False)
        check(out.returncode == 0, "torch2_kernels.py exit %d: %s" % (out.returncode, out.stderr[-300:]))
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        got = {}
        for ln in lines:
            r = json.loads(ln)
            got[r["kernel"]] = r
            # bench.lua's pattern: "key" : value up to the next comma or brace
            flat = dict(re.findall(r'"([^"]+)"\s*:\s*([^,}]+)', ln))
            check(len(flat) == len(r), "a value bench.lua cannot parse in %s" % ln)
        check(sorted(got) == ["act", "predict", "sac", "train"], "kernels printed: %s" % sorted(got))
        want = {"sac": "ms_per_update", "train": "ms_per_step", "predict": "ms", "act": "ms"}
        for k, key in want.items():
            r = got.get(k, {})
            check(isinstance(r.get(key), float) and r[key] > 0, "%s has no positive %s" % (k, key))
            check(r.get("precision") == prec and r.get("mode") == "eager", "%s precision/mode" % k)
            check(r.get("peer", "").startswith("torch 2."), "%s peer %s" % (k, r.get("peer")))
            check(r.get("obs") == 11 and r.get("act") == 3 and r.get("threads") == 1, "%s base keys" % k)
        check(got.get("predict", {}).get("rows") == 700, "predict rows")


ensemble_matches_shared()
tanh_gaussian_logp()
command_line()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
