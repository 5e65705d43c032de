"""The simulated influencer market: calibration, population, campaigns, outcomes and the environment.

Importing this package registers two versions with gymnasium: ``influmatch/InfluencerMatching-v1``
(:data:`ENV_ID`, the default of every command: the calendar a campaign faces, see the env's Version
History) and ``influmatch/InfluencerMatching-v0`` (:data:`ENV_ID_V0`, earlier results byte for byte).

Worker processes started by ``spawn`` or ``forkserver`` (Stable-Baselines3's ``SubprocVecEnv``) import
the main module, so a script that imports ``envs`` at the top can pass the plain id; elsewhere (a
notebook, pytest) use gymnasium's ``"module:id"`` form, ``f"envs:{envs.ENV_ID}"``, which imports
``envs`` in the worker before looking the id up.
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "influmatch/InfluencerMatching-v1"
ENV_ID_V0 = "influmatch/InfluencerMatching-v0"

#: The native vector env of both ids (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``,
#: and make_vec's default mode when none is given).
VECTOR_ENTRY_POINT = "envs.vector:InfluencerMatchingVectorEnv"

for _id, _dynamics in ((ENV_ID_V0, "v0"), (ENV_ID, "v1")):
    if _id not in registry:
        register(
            id=_id,
            entry_point="envs.matching_env:InfluencerMatchingEnv",
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs={"dynamics": _dynamics},
        )

__all__ = ["ENV_ID", "ENV_ID_V0", "VECTOR_ENTRY_POINT"]
