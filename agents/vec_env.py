"""The native vector env (:class:`envs.vector.InfluencerMatchingVectorEnv`) as a Stable-Baselines3
``VecEnv``, so PPO, A2C, DQN and sb3-contrib's MaskablePPO train on N campaigns stepped in one
compiled call.

SB3's conventions: ``reset()`` returns the observations only (the infos are in ``reset_infos``);
``step_wait()`` returns observations, ``float32`` rewards, dones and one info dict per sub-env; a
campaign that ended is reset in the same step (the vector env runs with
``AutoresetMode.SAME_STEP``), its last observation in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` true when the campaign ran out of weeks rather than of affordable
influencers (on every step, as ``DummyVecEnv`` does). ``seed(s)`` seeds sub-env ``i`` with ``s + i`` at the next reset, as ``DummyVecEnv``
does, so the same seed gives the same campaigns as ``DummyVecEnv`` of single envs.

Masks: ``env_method("action_masks")`` (what sb3-contrib's ``get_action_masks`` calls) returns each
sub-env's valid actions, from one batched array; ``get_attr("action_masks")`` exists, so MaskablePPO
finds masking supported. Attributes the sub-envs share (``action_names``, ``feature_names``,
``wait_action``, ...) come from the vector env's single env; ``campaign``, ``budget_left`` and
``week`` are per sub-env.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs.matching_env import NO_OFFER, InfluencerMatchingEnv
from envs.vector import InfluencerMatchingVectorEnv

__all__ = ["InfluencerMatchingVecEnv"]

#: Methods of the single env answered for every sub-env from one batched call of the vector env.
_BATCHED_METHODS = ("action_masks", "expected_rewards")
#: Attributes that differ between sub-envs: the vector env's batched property of the same name.
_PER_ENV_ATTRIBUTES = ("campaign", "budget_left", "week")


class InfluencerMatchingVecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` over :class:`~envs.vector.InfluencerMatchingVectorEnv`.

    Parameters
    ----------
    num_envs : int
        Campaigns stepped together.
    env : InfluencerMatchingEnv, optional
        A single env whose market (pool, segmentation, options) the campaigns share; built from
        ``options`` when omitted.
    **options
        Options of :class:`~envs.matching_env.InfluencerMatchingEnv` (when ``env`` is omitted).
    """

    def __init__(self, num_envs: int, env: InfluencerMatchingEnv | None = None, **options: Any) -> None:
        if env is not None and options:
            raise ValueError(f"options: give either env or options, not both (got {sorted(options)})")
        self.vector_env = (
            InfluencerMatchingVectorEnv.from_env(env, num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
            if env is not None
            else InfluencerMatchingVectorEnv(num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **options)
        )
        venv = self.vector_env
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.vector_env.reset(seed=seeds)
        self.reset_infos = self._split(info, np.ones(self.num_envs, dtype=bool))
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_async must be called before step_wait")
        obs, reward, terminated, truncated, info = self.vector_env.step(self._actions)
        self._actions = None
        done = terminated | truncated
        everyone = np.ones(self.num_envs, dtype=bool)
        infos = self._split(info, everyone)
        if done.any():
            final = self._split(info["final_info"], done)
            for i in np.flatnonzero(done):
                self.reset_infos[i] = infos[i]
                infos[i] = final[i]
                infos[i]["terminal_observation"] = info["final_obs"][i]
        for step_info, cut in zip(infos, (truncated & ~terminated).tolist(), strict=True):
            step_info["TimeLimit.truncated"] = cut  # as DummyVecEnv: on every step
        return obs, reward.astype(np.float32), done, infos

    @staticmethod
    def _split(info: dict[str, Any], rows: np.ndarray) -> list[dict[str, Any]]:
        """One info dict per sub-env (the single env's layout) for ``rows``; empty dicts elsewhere."""
        outcome = info["outcome"]
        columns = {key: outcome[key].tolist() for key in NO_OFFER}
        masks, expected = info["action_mask"], info["expected_rewards"]
        infos: list[dict[str, Any]] = []
        for i, selected in enumerate(rows.tolist()):
            if not selected:
                infos.append({})
                continue
            infos.append(
                {
                    "outcome": {key: column[i] for key, column in columns.items()},
                    "action_mask": masks[i],
                    "expected_rewards": expected[i],
                }
            )
        return infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        rows = self._rows(indices)
        if attr_name in _PER_ENV_ATTRIBUTES:
            values = getattr(self.vector_env, f"{attr_name}s" if attr_name == "campaign" else attr_name)
            return [values[i] for i in rows]
        if attr_name in _BATCHED_METHODS:
            return [getattr(self.vector_env, attr_name)] * len(rows)
        return [getattr(self.vector_env.env, attr_name)] * len(rows)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(
            f"set_attr({attr_name!r}): the sub-envs share one market and cannot be changed one by one"
        )

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        rows = self._rows(indices)
        if method_name in _BATCHED_METHODS:
            batched = getattr(self.vector_env, method_name)(*method_args, **method_kwargs)
            return [batched[i] for i in rows]
        raise AttributeError(
            f"env_method({method_name!r}): the vector env answers only {list(_BATCHED_METHODS)} per sub-env"
        )

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._rows(indices))

    def action_masks(self) -> np.ndarray:
        """Valid actions of every sub-env, ``(num_envs, n_actions)``."""
        return self.vector_env.action_masks()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.vector_env.render() if self.vector_env.render_mode == "rgb_array" else None
        return list(frames) if frames is not None else [None] * self.num_envs

    def _rows(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices if True] if isinstance(indices, Iterable) else [int(indices)]
