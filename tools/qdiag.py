#!/usr/bin/python3
"""The critics of a run's checkpoint against what they estimate: min(Q1, Q2) on the real
buffer's (s, a) beside the discounted return those rows actually got (Monte Carlo, gamma
0.99; an episode ends at a terminal row or its 1000th step), the TD target's parts on real
and model rows, and how far the model's next states lie from the real ones. Reads the
checkpoint files directly (standard library and NumPy only, independent of mbpo).
  /usr/bin/python3 tools/qdiag.py RUN_DIR
The Monte Carlo return is that of the policies that collected the data and leaves out the
entropy term, so a Q/MC ratio near 1-2 is normal; tens means the critics have diverged."""
import json, struct, sys
import numpy as np

GAMMA = 0.99


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {"__metadata__": head.get("__metadata__", {})}
    types = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a: 8 + n + b], dtype=types[v["dtype"]]).reshape(v["shape"])
    return out


def mlp(p, sizes, x):
    """ReLU MLP with the flat layout of src/nn/mlp.c: per layer W [in x out] row-major, then b"""
    off, h = 0, x
    for l in range(len(sizes) - 1):
        i, o = sizes[l], sizes[l + 1]
        W = p[off: off + i * o].reshape(i, o)
        off += i * o
        h = h @ W + p[off: off + o]
        off += o
        if l < len(sizes) - 2:
            h = np.maximum(h, 0)
    return h


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ck = sys.argv[1].rstrip("/") + "/checkpoint/"
    ag = load(ck + "agent.safetensors")
    O, A = int(ag["config.obs"]), int(ag["config.act"])
    H = [int(ag[k]) for k in sorted(k for k in ag if k.startswith("config.hidden.#"))]
    qs, ps = [O + A] + H + [1], [O] + H + [2 * A]
    alpha = float(np.exp(float(ag["__metadata__"]["n:log_alpha"])))
    te = float(ag["__metadata__"]["n:config.target_entropy"])
    rng = np.random.default_rng(0)

    def split(X):
        return X[:, :O], X[:, O:O + A], X[:, O + A], X[:, O + A + 1: 2 * O + A + 1], X[:, -1]

    def q(key, S, Ac):
        x = np.hstack([S, Ac])
        return np.minimum(mlp(ag[key][0], qs, x), mlp(ag[key][1], qs, x))[:, 0]

    def sample(S):
        out = mlp(ag["pi"], ps, S)
        mean, ls = out[:, :A], np.clip(out[:, A:], -20, 2)
        e = rng.standard_normal(mean.shape)
        u = mean + np.exp(ls) * e
        lp = (-0.5 * e * e - ls - 0.5 * np.log(2 * np.pi)
              - 2 * (np.log(2) - u - np.logaddexp(0, -2 * u))).sum(1)
        return np.tanh(u), lp

    real = load(ck + "real_buffer.safetensors")["data"]
    model = load(ck + "model_buffer.safetensors")["data"]
    s, a, r, s2, dn = split(real)
    end, L = np.zeros(len(r), bool), 0
    for i in range(len(r)):
        L += 1
        if dn[i] > 0.5 or L == 1000:
            end[i], L = True, 0
    G, g = np.zeros(len(r)), 0.0
    for i in range(len(r) - 1, -1, -1):
        g = r[i] if end[i] else r[i] + GAMMA * g
        G[i] = g
    print("alpha %.4g, target entropy %g, real rows %d, model rows %d" % (alpha, te, len(r), len(model)))
    lo = min(5000, len(r))
    for name, sl in (("exploration rows", slice(0, lo)), ("later rows", slice(lo, len(r)))):
        if sl.stop > sl.start:
            qv, mc = q("q", s[sl], a[sl]), G[sl]
            print("%-16s Q(s,a) mean %8.1f   discounted return mean %8.1f   ratio %6.1f" %
                  (name, qv.mean(), mc.mean(), qv.mean() / mc.mean() if mc.mean() else float("nan")))
    ms, ma, mr, ms2, mdn = split(model[-min(len(model), 100000):])
    for name, (S, Ac, R, S2, D) in (("real", (s[-5000:], a[-5000:], r[-5000:], s2[-5000:], dn[-5000:])),
                                   ("model", (ms, ma, mr, ms2, mdn))):
        a2, lp2 = sample(S2)
        tq = q("q_target", S2, a2)
        y = R + GAMMA * (1 - D) * (tq - alpha * lp2)
        print("%-5s rows: reward %.2f, terminal %.3f, log pi(a'|s') %.2f, target Q(s',a') %.1f, "
              "y %.1f (sd %.1f), Q(s,a) %.1f" % (name, R.mean(), D.mean(), lp2.mean(), tq.mean(),
                                                 y.mean(), y.std(), q("q", S, Ac).mean()))
    mu, sd = s2.mean(0), s2.std(0) + 1e-6
    zr, zm = np.abs((s2 - mu) / sd).max(1), np.abs((ms2 - mu) / sd).max(1)
    print("largest |z| of a next state (real statistics): real median %.1f p99 %.1f, model median "
          "%.1f p99 %.1f" % (np.median(zr), np.percentile(zr, 99), np.median(zm), np.percentile(zm, 99)))


if __name__ == "__main__":
    main()
