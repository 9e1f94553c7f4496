"""Ensembles of DIP runs in antithetic pairs: who the members are, and the error of their average.

Member ``2p`` of an ensemble trains on ``y + a sigma z_p`` and member ``2p + 1`` on ``y - a sigma z_p``
(validated on ``y - (sigma/a) z_p`` and ``y + (sigma/a) z_p``); every member has its own
initialisation, input code and jitter, and its own stop. The result is the average of the members'
returned iterates. Member 0 trains exactly as the single run of the same seed; in an ensemble of two or more
each member returns an iterate a little after its own minimum (``StoppingConfig.ensemble_delay``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Member", "ensemble_mse", "ensemble_mse_uncertainty", "plan_members"]


@dataclass(frozen=True)
class Member:
    """One member of an ensemble.

    Attributes
    ----------
    index : int
        Position in the ensemble (0-based).
    seed : int
        Seed of its run (initialisation, input code, jitter; and ``z`` for the first of a pair).
    pair : int
        Its antithetic pair; both members of pair ``p`` use the ``z`` drawn from the seed of member ``2p``.
    sign : int
        +1: trains on ``y + a sigma z``; -1: on ``y - a sigma z``.
    """

    index: int
    seed: int
    pair: int
    sign: int


def member_seed(seed: int, index: int) -> int:
    """The seed of member ``index`` of an ensemble run with ``seed``: ``seed`` itself for member 0, else
    a draw of ``numpy.random.SeedSequence((seed, index))`` (independent streams, reproducible)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0])


def plan_members(members: int, seed: int) -> list[Member]:
    """The members of an ensemble of ``members`` runs: pairs ``(z_p, -z_p)``, the last one alone if odd.

    Parameters
    ----------
    members : int
        ``K >= 1``.
    seed : int
        The ensemble's seed (member 0 is the single run with this seed).

    Returns
    -------
    list of Member
    """
    if members < 1:
        raise ValueError("an ensemble needs at least one member")
    return [Member(index=j, seed=member_seed(seed, j), pair=j // 2, sign=1 if j % 2 == 0 else -1)
            for j in range(members)]


def ensemble_mse(member_mse: Sequence[float], images: Sequence[torch.Tensor]) -> float:
    """Mean squared error of the members' average from the members' own errors and their spread.

    For errors ``e_i = xhat_i - x`` and ``xbar = mean_i xhat_i`` the identity

    ``||xbar - x||^2 / N = mean_i ||xhat_i - x||^2 / N - mean_i ||xhat_i - xbar||^2 / N``

    holds exactly (the mean error's energy is the mean energy less the spread about the mean). The
    spread is observed; so an unbiased estimate of every member's error gives an unbiased estimate of
    the ensemble's, with no more than the members' estimation error.

    Parameters
    ----------
    member_mse : sequence of float
        ``||xhat_i - x||^2 / N`` (or estimates of it), one per member.
    images : sequence of torch.Tensor
        The members' ``xhat_i``, all of one shape.

    Returns
    -------
    float
    """
    if len(member_mse) != len(images) or not images:
        raise ValueError("need one error per member image, and at least one member")
    stack = torch.stack([image.double() for image in images])
    spread = float(((stack - stack.mean(dim=0)) ** 2).mean())
    return float(np.mean(member_mse)) - spread


def ensemble_mse_uncertainty(plan: Sequence[Member], noise_cross_sd: Sequence[float], error_cross_sd: Sequence[float],
                             energy_sd: Sequence[float], sigma_sd: Sequence[float]) -> float:
    """Standard deviation of :func:`ensemble_mse` built from the members' recorruption estimates.

    A member's estimate ``v_i - offset_i`` has four error terms (see
    :attr:`dipddpm.stopping.RecorruptionStopper.offset_uncertainty`). The cross term
    ``-2 s_i (sigma/a) mean(n z_p)`` (``s_i`` the member's sign) is equal and opposite in a complete
    antithetic pair and cancels exactly; the pairs' ``z_p`` are independent, so the unpaired members'
    terms add in quadrature. The error-noise term, the noise energy's fluctuation and the sigma error
    are taken as one error shared by all members (added linearly: the energy and sigma terms are the
    same ``n`` and sigma for every member; the error-noise terms are correlated through the shared
    ``n``, and adding them linearly is the cautious choice):

    ``sd = sqrt( sum_{i unpaired} c_i^2 / K^2 + mean(g_i)^2 + mean(f_i)^2 + mean(r_i)^2 )``.

    Parameters
    ----------
    plan : sequence of Member
        The members, as from :func:`plan_members`.
    noise_cross_sd, error_cross_sd, energy_sd, sigma_sd : sequence of float
        Per member: the standard deviations of the cross term (``c_i``), the error-noise term (``g_i``),
        the noise energy (``f_i``) and the sigma term (``r_i``).

    Returns
    -------
    float
    """
    count = len(plan)
    pairs: dict[int, list[int]] = {}
    for member in plan:
        pairs.setdefault(member.pair, []).append(member.sign)
    unpaired = [c for member, c in zip(plan, noise_cross_sd, strict=True) if sorted(pairs[member.pair]) != [-1, 1]]
    cross = math.sqrt(sum(c * c for c in unpaired)) / count
    shared = [float(np.mean(values)) for values in (error_cross_sd, energy_sd, sigma_sd)]
    return math.sqrt(cross ** 2 + sum(value ** 2 for value in shared))
