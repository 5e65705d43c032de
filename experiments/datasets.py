"""Logged campaigns as a `Minari <https://minari.farama.org>`_ dataset, the offline-RL format of the
Gymnasium ecosystem (``influmatch log --format minari``).

One episode per logged campaign (episode ``c`` is ``campaign_id`` ``c`` of the log, its ``seed`` the
campaign's reset seed), with Minari's layout:

* ``observations`` (T + 1, d) float32: the observation of every week and the one after the last
  decision (which the CSV/Parquet logs do not hold);
* ``actions`` (T,), ``rewards`` (T,) in thousands of USD, ``terminations`` and ``truncations`` (T,);
* ``infos``, each entry going with the observation of the same index (T + 1): ``action_mask``
  (T + 1, A) int8, the valid actions in that observation; ``propensity`` (T + 1,), the logging
  policy's probability of ``actions[t]`` (NaN at ``t = T``, where nothing was decided); ``step``.

The log generator records only the decisions, so :func:`minari_episodes` replays each campaign's
logged actions in the environment from its reset seed (the environment is deterministic given them)
and checks, decision by decision, that the replay saw the logged observation and earned the logged
reward; the final observation and how the campaign ended come from that replay.

Minari finds datasets by id under one root folder (``MINARI_DATASETS_PATH``);
:func:`write_minari_dataset` takes the root as an argument, builds the dataset in a temporary folder
there and renames it into place, so an existing dataset is replaced only when asked, and only once the
new one is complete. Needs ``minari`` and ``h5py`` (``pip install "minari[hdf5]"``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.files import remove_stale, replace_dir, temp_sibling
from experiments.ope.logs import LoggedData

__all__ = ["check_dataset_id", "check_root", "env_spec", "minari_episodes", "write_minari_dataset"]

#: The data format written (Minari's default; ``h5py`` reads it).
DATA_FORMAT = "hdf5"


def _minari() -> Any:
    try:
        import h5py  # noqa: F401 - Minari's hdf5 storage imports it lazily
        import minari
    except ImportError:
        raise ValueError(
            '--format minari: needs minari and h5py, which are not installed (pip install "minari[hdf5]")'
        ) from None
    return minari


def check_dataset_id(dataset_id: str) -> str:
    """``dataset_id`` if Minari accepts it (``namespace/name-v0``), else ``ValueError`` naming it."""
    from minari.dataset.minari_dataset import parse_dataset_id

    _minari()
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        raise ValueError(
            f"--dataset-id {dataset_id!r}: expected Minari's form [namespace/]name-v<version>, "
            "e.g. influmatch/greedy-v0"
        ) from None
    return dataset_id


def check_root(root: str | Path) -> Path:
    """``root`` if a Minari datasets root can be written there: a folder, or a new one whose nearest
    existing parent is a writable folder; else ``OSError`` naming it."""
    root = Path(root)
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"--out {root}: {existing} is a file; a Minari dataset needs a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {root}: {existing} is not writable")
    return root


def env_spec(env_options: Mapping[str, Any]) -> Any:
    """The ``gymnasium`` spec that makes the logs' environment (``minari``'s ``recover_environment``):
    the registered id of the options' dynamics with the options as keyword arguments; ``None`` when an
    option is not JSON (an in-memory pool), as Minari stores the spec as JSON."""
    import dataclasses

    import gymnasium as gym

    import envs

    options = dict(env_options)
    env_id = envs.ENV_ID_V0 if options.get("dynamics") == "v0" else envs.ENV_ID
    spec = gym.spec(env_id)
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **options})
    try:
        spec.to_json()
    except (TypeError, ValueError):
        return None
    return spec


def minari_episodes(env: Any, data: LoggedData, reset_seeds: Sequence[int]) -> list[Any]:
    """One ``minari`` ``EpisodeBuffer`` per logged campaign, replayed in ``env`` (see the module docstring).

    Parameters
    ----------
    env : gymnasium.Env
        The environment the logs were generated in (as built from the logs' ``env`` options); it is
        not stepped (a copy is).
    data : LoggedData
        The logs, campaigns ``0 .. C - 1``.
    reset_seeds : sequence of int
        Campaign ``c``'s reset seed (the metadata's ``campaign_seeds``).

    Raises
    ------
    ValueError
        If a replay does not see the logged observation or reward, or the campaign does not end where
        the log ends (the logs were not generated in this environment with these seeds).
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if len(reset_seeds) != data.n_campaigns:
        raise ValueError(f"reset_seeds: expected {data.n_campaigns} seeds, got {len(reset_seeds)}")
    replay = copy.deepcopy(env.unwrapped)
    starts = np.searchsorted(data.campaign, np.arange(data.n_campaigns + 1))
    episodes = []
    for c in range(data.n_campaigns):
        rows = np.arange(starts[c], starts[c + 1])
        obs, info = replay.reset(seed=int(reset_seeds[c]))
        observations, masks = [obs], [info["action_mask"]]
        terminations, truncations = [], []
        for i in rows:
            if not np.array_equal(obs.astype(np.float64), data.context[i]):
                raise ValueError(
                    f"campaign {c}, step {data.step[i]}: the replay's observation is not the logged one"
                )
            obs, reward, terminated, truncated, info = replay.step(int(data.action[i]))
            if float(reward) != data.reward[i]:
                raise ValueError(
                    f"campaign {c}, step {data.step[i]}: the replay's reward is not the logged one"
                )
            ended = terminated or truncated
            if ended != (i == rows[-1]):
                raise ValueError(f"campaign {c}, step {data.step[i]}: the replay's campaign ends elsewhere")
            observations.append(obs)
            masks.append(info["action_mask"])
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
        episodes.append(
            EpisodeBuffer(
                id=c,
                seed=int(reset_seeds[c]),
                observations=np.stack(observations).astype(np.float32),
                actions=data.action[rows].astype(np.int64),
                rewards=data.reward[rows].astype(np.float64),
                terminations=np.asarray(terminations),
                truncations=np.asarray(truncations),
                infos={
                    "action_mask": np.stack(masks).astype(np.int8),
                    "propensity": np.append(data.propensity[rows], np.nan),
                    "step": np.arange(len(rows) + 1, dtype=np.int64),
                },
            )
        )
    return episodes


def write_minari_dataset(
    root: str | Path,
    dataset_id: str,
    episodes: Sequence[Any],
    env: Any,
    *,
    env_options: Mapping[str, Any],
    algorithm_name: str,
    log_metadata: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as the Minari dataset ``dataset_id`` under the datasets root ``root``.

    ``minari.load_dataset(dataset_id)`` reads it with ``MINARI_DATASETS_PATH=root`` (or
    ``minari.MinariDataset(root / dataset_id / "data")`` without). The dataset's metadata holds the
    environment spec (``recover_environment()`` makes the environment), ``algorithm_name`` (the
    logging policy), and the log's own metadata as JSON under ``influmatch_logs``.

    Returns
    -------
    Path
        The dataset's folder, ``root / dataset_id``.

    Raises
    ------
    FileExistsError
        If the dataset exists and not ``overwrite``.
    """
    minari = _minari()
    check_dataset_id(dataset_id)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"--out {root}: a file of that name exists; a Minari dataset needs a folder")
    final = root / dataset_id
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"--out {root}: the Minari dataset {dataset_id} exists ({final}); choose another "
            "--dataset-id or pass --overwrite"
        )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"--out {root}: cannot create {final.parent} ({err.strerror or err})") from None
    remove_stale(final.parent, final.name)
    staging = temp_sibling(final, ".partial", directory=True)
    try:
        spec = env_spec(env_options)
        unwrapped = env.unwrapped
        with _datasets_path(staging.resolve()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari's nudges (author e-mail, eval env)
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                list(episodes),
                env=spec,
                observation_space=unwrapped.observation_space,
                action_space=unwrapped.action_space,
                algorithm_name=algorithm_name,
                author="influmatch",
                description=(
                    "Brand campaigns logged by influmatch (one episode per campaign); infos hold each "
                    "observation's action_mask and the logging policy's propensity of the action taken."
                ),
                data_format=DATA_FORMAT,
            )
            dataset.storage.update_metadata(
                {"influmatch_logs": json.dumps(dict(log_metadata), sort_keys=True)}
            )
        _copy_namespaces(staging, root)
        replace_dir(staging / dataset_id, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _copy_namespaces(staging: Path, root: Path) -> None:
    """Minari's namespace files (``namespace_metadata.json`` of each namespace level) that ``root``
    does not have yet."""
    for path in sorted(staging.rglob("namespace_metadata.json")):
        target = root / path.relative_to(staging)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


@contextlib.contextmanager
def _datasets_path(path: Path) -> Iterator[None]:
    """``MINARI_DATASETS_PATH`` set to ``path`` for the block (Minari reads its root only from there)."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before
