"""Benchmarks of the native vector env (:class:`envs.vector.InfluencerMatchingVectorEnv`), each a same-run
ratio in the record format of :mod:`experiments.bench.benchmarks`:

* :func:`bench_vector_env_steps`: env-steps/s of the vector env (N = 256 campaigns, 10,000 influencers,
  random valid actions, autoresets included) against a bare CartPole-v1 single-env loop; goal >= 2;
* :func:`bench_vector_vs_single`: the same against the single env's steps/s; goal >= 8;
* :func:`bench_vector_threads`: the same env-steps/s with ``num_threads=2`` against one thread, judged
  against what two busy processes get on this machine in the same run; goal >= 60 % of it (ours: the
  Python around the kernels stays on one thread, about a fifth of a step);
* :func:`bench_ppo_vector`: PPO training steps/s on the vector env (16 campaigns) against one env,
  the same hyperparameters otherwise (the same rollout of 8,192 steps: ``n_steps`` 512 per env against
  8,192); goal >= 2.

The loops alternate in chunks so each sees the same machine load; the best chunk of each counts.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from experiments.bench.benchmarks import _step_rate, parallel_capacity, record, skipped

__all__ = ["bench_ppo_vector", "bench_vector_env_steps", "bench_vector_threads", "bench_vector_vs_single"]

#: Campaigns of the vector env in the env-step benchmarks, and their pool's size.
N_ENVS, N_INFLUENCERS = 256, 10_000
#: Campaigns of the vector env in the PPO benchmark, and the rollout both PPO runs collect.
PPO_ENVS, PPO_ROLLOUT = 16, 8_192


def vector_step_rate(vec: Any, steps: int, seed: int) -> float:
    """Env-steps per second of ``vec`` (``steps`` vector steps) with uniformly random valid actions."""
    rng = np.random.default_rng(seed)
    _, info = vec.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        mask = info["action_mask"]
        # A uniformly random valid action per row: the argmax of uniforms on the valid actions.
        actions = np.argmax(rng.random(mask.shape) * mask, axis=1)
        _, _, _, _, info = vec.step(actions)
    return steps * vec.num_envs / (time.perf_counter() - start)


def _vector_env(num_threads: int = 1) -> Any:
    """The benchmarks' native vector env: N_ENVS campaigns on a pool of N_INFLUENCERS."""
    import gymnasium as gym

    import envs

    return gym.make_vec(envs.ENV_ID, num_envs=N_ENVS, vectorization_mode="vector_entry_point",
                        n_influencers=N_INFLUENCERS, num_threads=num_threads)  # fmt: skip


def _rates(quick: bool, reference: str) -> tuple[float, float, dict[str, Any]]:
    import gymnasium as gym

    import envs

    vec = _vector_env()
    if reference == "cartpole":
        other, masked = gym.make("CartPole-v1"), False
    else:
        other, masked = gym.make(envs.ENV_ID, n_influencers=N_INFLUENCERS), True
    vector_chunk, chunk, rounds = (20, 2_000, 2) if quick else (100, 10_000, 3)
    ours, theirs = [], []
    vector_step_rate(vec, 2, 0)  # compile and warm up
    for r in range(rounds):
        theirs.append(_step_rate(other, chunk, r, masked=masked))
        ours.append(vector_step_rate(vec, vector_chunk, r))
    return max(ours), max(theirs), {"num_envs": N_ENVS, "n_influencers": N_INFLUENCERS}


def bench_vector_env_steps(quick: bool) -> dict:
    """The vector env's env-steps/s against a bare CartPole-v1 step loop. Goal: 2x CartPole."""
    ours, cartpole, extra = _rates(quick, "cartpole")
    return record("vector_env_steps", ours, "env-steps/s", "gymnasium CartPole-v1 step loop", cartpole,
                  ours / cartpole, 2.0, **extra)  # fmt: skip


def bench_vector_vs_single(quick: bool) -> dict:
    """The vector env's env-steps/s against the single env's steps/s (same pool size, random valid
    actions, resets included). Goal: 8x."""
    ours, single, extra = _rates(quick, "single")
    return record("vector_vs_single", ours, "env-steps/s", "InfluencerMatching-v1 single-env step loop",
                  single, ours / single, 8.0, **extra)  # fmt: skip


def bench_vector_threads(quick: bool) -> dict:
    """The vector env's env-steps/s on two threads against one (the same campaigns, so the same numbers),
    judged against :func:`parallel_capacity` (the better of a probe before and one after). Goal: 60 %."""
    import numba

    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set from the environment at import
    if limit < 2:
        return skipped(
            "vector_threads", 0.6, f"numba has {limit} thread here (NUMBA_NUM_THREADS): nothing to share"
        )
    probe = 2_000_000 if quick else 20_000_000
    capacity = parallel_capacity(probe)
    vecs = {threads: _vector_env(threads) for threads in (1, 2)}
    chunk, rounds = (20, 2) if quick else (100, 3)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for vec in vecs.values():
        vector_step_rate(vec, 2, 0)  # compile and warm up
    for r in range(rounds):
        for threads, vec in vecs.items():
            rates[threads].append(vector_step_rate(vec, chunk, r))
    capacity = max(capacity, parallel_capacity(probe))
    one, two = max(rates[1]), max(rates[2])
    return record("vector_threads", two / one, "x the env-steps/s on 2 threads than 1",
                  "speed-up of two busy processes on this machine", capacity, two / one / capacity, 0.6,
                  env_steps_1_thread=one, env_steps_2_threads=two, num_envs=N_ENVS,
                  threading_layer=numba.threading_layer())  # fmt: skip


def _ppo_rate(n_envs: int, timesteps: int) -> float:
    import gymnasium as gym

    import envs
    from agents.sb3 import make_sb3

    env = gym.make(envs.ENV_ID, n_influencers=10_000)
    agent = make_sb3("ppo", env, seed=0, n_envs=n_envs, n_steps=PPO_ROLLOUT // n_envs)
    start = time.perf_counter()
    agent.learn(timesteps)
    return agent.num_timesteps / (time.perf_counter() - start)


def bench_ppo_vector(quick: bool) -> dict:
    """PPO's training steps/s (rollouts and updates) on the vector env against one env: the factory's
    hyperparameters, the same rollout size. Goal: 2x."""
    timesteps = PPO_ROLLOUT if quick else 3 * PPO_ROLLOUT
    rounds = 1 if quick else 2
    single, vector = [], []
    for _ in range(rounds):
        single.append(_ppo_rate(1, timesteps))
        vector.append(_ppo_rate(PPO_ENVS, timesteps))
    ours, reference = max(vector), max(single)
    return record("ppo_vector", ours, "training steps/s", "PPO on one env (DummyVecEnv), same rollout",
                  reference, ours / reference, 2.0, n_envs=PPO_ENVS, timesteps=timesteps)  # fmt: skip
