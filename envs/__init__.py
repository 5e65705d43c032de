"""The simulated influencer market: calibration, population, campaigns, outcomes and the environment.

Importing this package registers two versions with gymnasium: ``influmatch/InfluencerMatching-v1``
(:data:`ENV_ID`, the default of every command: the calendar a campaign faces, see the env's Version
History) and ``influmatch/InfluencerMatching-v0`` (:data:`ENV_ID_V0`, earlier results byte for byte).
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "influmatch/InfluencerMatching-v1"
ENV_ID_V0 = "influmatch/InfluencerMatching-v0"

if ENV_ID_V0 not in registry:
    register(id=ENV_ID_V0, entry_point="envs.matching_env:InfluencerMatchingEnv", kwargs={"dynamics": "v0"})
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.matching_env:InfluencerMatchingEnv", kwargs={"dynamics": "v1"})

__all__ = ["ENV_ID", "ENV_ID_V0"]
