#!/usr/bin/env python3
"""Modern PyTorch (2.x) CPU peer for the benchmarks: MBPO's compute kernels in fp32 or bf16 autocast.

The same shapes and the same work as ../shared/peers/torch_mbpo_kernels.py (the Debian PyTorch
1.13 peer), with the same command line and the same JSON lines, plus two switches:
  --precision fp32|bf16   bf16: forward passes under torch.autocast("cpu", torch.bfloat16), so the
                          matrix multiplications take bf16 operands (oneDNN); master weights, Adam,
                          losses and the sampling arithmetic stay fp32
  --mode eager|compile    compile: the loss functions (forward, and through AOTAutograd their
                          backward) and the rollout forward go through torch.compile; if compiling
                          fails the kernel runs eager and its JSON line says so in "note"
Kernels (--kernels, comma-separated; default sac,train,predict):
  sac      one SAC update (twin Q + targets, tanh-Gaussian policy, learned temperature), batch 256
  train    one ensemble training step (7 members, 4x200 swish, Gaussian NLL with learned
           log-variance bounds and per-layer weight decay), batch 256 per member
  predict  one ensemble forward over a 100 000-row rollout batch (rows split over the members)
  act      the policy's tanh-Gaussian action for 100 000 rows (median of --reps)
Needs the virtual environment that `make peer-deps` makes (PyTorch from PyPI):

  /opt/mbpo-peers/venv/bin/python tests/peers/torch2_kernels.py --obs 11 --act 3 --threads 1 \
      --precision bf16 --mode compile
"""
import argparse
import json
import os
import statistics
import time

# inductor compiles its C++ in worker processes: keep them to one on a small machine
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

HALF_LOG_2PI = 0.9189385332046727
LOG_2 = 0.6931471805599453


class Settings:
    """Precision and mode shared by all kernels; records why compile fell back to eager."""

    def __init__(self, precision, mode):
        self.precision = precision
        self.mode = mode

    def cast(self):
        """Context for forward passes: bf16 autocast or nothing."""
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def build(self, fn):
        return torch.compile(fn) if self.mode == "compile" else fn


def run_with_fallback(settings, make, warm):
    """make(settings) -> a callable doing one unit of work; warm(fn) runs its warm-up. Under
    --mode compile a failure while compiling (first calls) falls back to eager. Returns
    (fn, mode that ran, note or None)."""
    fn = make(settings)
    if settings.mode != "compile":
        warm(fn)
        return fn, "eager", None
    try:
        warm(fn)
        return fn, "compile", None
    except Exception as e:  # no compiler, unsupported op, ...: the peer still measures eager
        msg = "".join(c for c in str(e).splitlines()[0] if c not in '",{}\\')[:120] if str(e) else ""
        eager = Settings(settings.precision, "eager")
        fn = make(eager)
        warm(fn)
        return fn, "eager", "torch.compile failed (%s: %s); ran eager" % (type(e).__name__, msg)


def timed(fn, iters, rounds=5):
    """Runs fn iters times in `rounds` rounds; returns (mean seconds per call, median of the
    rounds' means)."""
    per_round = max(1, iters // rounds)
    means, total, n = [], 0.0, 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        dt = time.perf_counter() - t0
        means.append(dt / per_round)
        total += dt
        n += per_round
    return total / n, statistics.median(means)


# ---- SAC ---------------------------------------------------------------------------------------

def three_layer(n_in, n_out, width):
    """The SAC networks: two ReLU hidden layers of `width`, linear output."""
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, n_out))


class SacAgent:
    def __init__(self, obs_dim, act_dim, width, batch, settings):
        self.act_dim = act_dim
        self.settings = settings
        n_q = obs_dim + act_dim
        self.critics = [three_layer(n_q, 1, width) for _ in range(2)]
        self.targets = [three_layer(n_q, 1, width) for _ in range(2)]
        for c, t in zip(self.critics, self.targets):
            t.load_state_dict(c.state_dict())
            t.requires_grad_(False)
        self.policy = three_layer(obs_dim, 2 * act_dim, width)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.critic_params = [p for c in self.critics for p in c.parameters()]
        self.target_params = [p for t in self.targets for p in t.parameters()]
        self.q_opt = torch.optim.Adam(self.critic_params, lr=3e-4)
        self.pi_opt = torch.optim.Adam(self.policy.parameters(), lr=3e-4)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=3e-4)
        # one fixed replay batch, as the Debian peer uses
        self.obs = torch.randn(batch, obs_dim)
        self.obs2 = torch.randn(batch, obs_dim)
        self.a = torch.rand(batch, act_dim) * 2 - 1
        self.rew = torch.randn(batch, 1)
        self.done = torch.zeros(batch, 1)

    def sample(self, s):
        """tanh-Gaussian action and its log-density (log-std clipped to [-20, 2])."""
        with self.settings.cast():
            out = self.policy(s)
        mean, log_std = out.float().chunk(2, dim=-1)
        log_std = torch.clamp(log_std, -20.0, 2.0)
        std = torch.exp(log_std)
        pre = mean + std * torch.randn_like(mean)
        gauss = -0.5 * ((pre - mean) / std).square() - log_std - HALF_LOG_2PI
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        squash = 2.0 * (LOG_2 - pre - F.softplus(-2.0 * pre))
        logp = gauss.sum(-1, keepdim=True) - squash.sum(-1, keepdim=True)
        return torch.tanh(pre), logp

    def q_pair(self, nets, s, a):
        sa = torch.cat((s, a), dim=1)
        with self.settings.cast():
            q1, q2 = nets[0](sa), nets[1](sa)
        return q1.float(), q2.float()

    def critic_loss(self, alpha):
        with torch.no_grad():
            a2, logp2 = self.sample(self.obs2)
            t1, t2 = self.q_pair(self.targets, self.obs2, a2)
            backup = self.rew + 0.99 * (1.0 - self.done) * (torch.minimum(t1, t2) - alpha * logp2)
        q1, q2 = self.q_pair(self.critics, self.obs, self.a)
        return F.mse_loss(q1, backup) + F.mse_loss(q2, backup)

    def policy_loss(self, alpha):
        a_new, logp = self.sample(self.obs)
        q1, q2 = self.q_pair(self.critics, self.obs, a_new)
        return (alpha * logp - torch.minimum(q1, q2)).mean(), logp.detach()

    def make_update(self, settings):
        self.settings = settings
        critic_loss = settings.build(self.critic_loss)
        policy_loss = settings.build(self.policy_loss)

        def update():
            alpha = self.log_alpha.detach().exp()
            loss_q = critic_loss(alpha)
            self.q_opt.zero_grad()
            loss_q.backward()
            self.q_opt.step()
            loss_pi, logp = policy_loss(alpha)
            self.pi_opt.zero_grad()
            loss_pi.backward()
            self.pi_opt.step()
            loss_alpha = -(self.log_alpha * (logp - self.act_dim)).mean()
            self.alpha_opt.zero_grad()
            loss_alpha.backward()
            self.alpha_opt.step()
            with torch.no_grad():  # Polyak averaging, tau = 0.005
                torch._foreach_mul_(self.target_params, 0.995)
                torch._foreach_add_(self.target_params, self.critic_params, alpha=0.005)
        return update


def bench_sac(obs_dim, act_dim, width, batch, iters, settings):
    agent = SacAgent(obs_dim, act_dim, width, batch, settings)
    warm_n = max(10, iters // 10)

    def warm(fn):
        for _ in range(warm_n):
            fn()
    update, mode, note = run_with_fallback(settings, agent.make_update, warm)
    mean, median = timed(update, iters)
    r = {"kernel": "sac", "ms_per_update": mean * 1e3, "updates_per_s": 1 / mean,
         "median_ms": median * 1e3, "mode": mode}
    if note:
        r["note"] = note
    return r


def bench_act(obs_dim, act_dim, width, rows, reps, settings):
    policy = three_layer(obs_dim, 2 * act_dim, width)
    x = torch.randn(rows, obs_dim)

    def make(st):
        def act():
            with st.cast():
                out = policy(x)
            mean, log_std = out.float().chunk(2, dim=-1)
            std = torch.exp(torch.clamp(log_std, -20.0, 2.0))
            return torch.tanh(mean + std * torch.randn_like(mean))
        return st.build(act)

    with torch.no_grad():
        fn, mode, note = run_with_fallback(settings, make, lambda f: [f() for _ in range(2)])
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    r = {"kernel": "act", "rows": rows, "ms": statistics.median(times) * 1e3, "mode": mode}
    if note:
        r["note"] = note
    return r


# ---- the model ensemble ------------------------------------------------------------------------

class GaussianEnsemble(nn.Module):
    """`members` independent MLPs in batched weights: 4 swish layers of `width`, then a mean and
    a log-variance head; the log-variance is softly bounded by learned max/min rows."""

    def __init__(self, members, n_in, n_out, width):
        super().__init__()
        dims = [n_in, width, width, width, width, 2 * n_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            self.weights.append(nn.Parameter(torch.randn(members, fan_in, fan_out) / (2 * fan_in ** 0.5)))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, fan_out)))
        self.max_logvar = nn.Parameter(torch.full((1, n_out), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, n_out), -10.0))
        self.n_out = n_out

    def raw(self, x):
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = F.silu(h)
        return h

    def heads(self, out):
        out = out.float()
        mean, logvar = out[..., :self.n_out], out[..., self.n_out:]
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar


def bench_ensemble(obs_dim, act_dim, width, batch, iters, rows, reps, settings, want):
    members, n_in, n_out = 7, obs_dim + act_dim, obs_dim + 1
    ens = GaussianEnsemble(members, n_in, n_out, width)
    opt = torch.optim.Adam(ens.parameters(), lr=1e-3)
    decays = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    x = torch.randn(members, batch, n_in)
    y = torch.randn(members, batch, n_out)
    results = []

    def make_step(st):
        def loss_fn():
            with st.cast():
                out = ens.raw(x)
            mean, logvar = ens.heads(out)
            # Gaussian NLL without the constant, averaged per member, summed over members
            nll = ((mean - y).square() * torch.exp(-logvar)).mean(dim=(1, 2)).sum()
            nll = nll + logvar.mean(dim=(1, 2)).sum()
            bounds = 0.01 * (ens.max_logvar.sum() - ens.min_logvar.sum())
            decay = sum(c * 0.5 * w.square().sum() for c, w in zip(decays, ens.weights))
            return nll + bounds + decay
        compiled = st.build(loss_fn)

        def step():
            loss = compiled()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    if "train" in want:
        n = max(5, iters // 10)
        step, mode, note = run_with_fallback(settings, make_step,
                                             lambda f: [f() for _ in range(n)])
        mean, median = timed(step, iters)
        r = {"kernel": "train", "ms_per_step": mean * 1e3, "rows_per_s": members * batch / mean,
             "median_ms": median * 1e3, "mode": mode}
        if note:
            r["note"] = note
        results.append(r)

    if "predict" in want:
        xr = torch.randn(members, rows // members, n_in)

        def make_predict(st):
            def predict():
                with st.cast():
                    out = ens.raw(xr)
                mean, logvar = ens.heads(out)
                return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            return st.build(predict)

        with torch.no_grad():
            fn, mode, note = run_with_fallback(settings, make_predict, lambda f: [f() for _ in range(2)])
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        r = {"kernel": "predict", "rows": rows, "ms": sum(times) / len(times) * 1e3,
             "rows_per_s": rows / (sum(times) / len(times)), "median_ms": statistics.median(times) * 1e3,
             "mode": mode}
        if note:
            r["note"] = note
        results.append(r)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--obs", type=int, default=11)
    ap.add_argument("--act", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--model-hidden", type=int, default=200)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of predict and act")
    ap.add_argument("--kernels", default="sac,train,predict", help="from sac,train,predict,act")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--mode", choices=("eager", "compile"), default="eager")
    args = ap.parse_args()
    kernels = [k for k in args.kernels.split(",") if k]
    unknown = [k for k in kernels if k not in ("sac", "train", "predict", "act")]
    if unknown:
        ap.error("unknown kernel %s (from sac,train,predict,act)" % ",".join(unknown))

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    settings = Settings(args.precision, args.mode)
    base = {"peer": "torch " + torch.__version__, "threads": args.threads, "obs": args.obs,
            "act": args.act, "precision": args.precision,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}

    def emit(r):
        print(json.dumps({**base, **r}), flush=True)

    if "sac" in kernels:
        emit(bench_sac(args.obs, args.act, 256, 256, args.iters, settings))
    if "train" in kernels or "predict" in kernels:
        for r in bench_ensemble(args.obs, args.act, args.model_hidden, 256, args.iters // 2,
                                args.rows, args.reps, settings, kernels):
            emit(r)
    if "act" in kernels:
        emit(bench_act(args.obs, args.act, 256, args.rows, args.reps, settings))


if __name__ == "__main__":
    main()
