"""The hidden columns of the logs' influencers, as far as the logs tell them: a joint normal posterior
of every influencer's response quality and true engagement rate (:func:`hidden_posterior`), from the
priors the observables give, updated with the logged reach and engagements of the accepted offers.

Model-based evaluation (:mod:`experiments.ope.model_based`) builds its simulated markets from it: the
point market at the posterior mean (:meth:`HiddenPosterior.point`), the parameter draws with a joint
draw of both columns (:meth:`HiddenPosterior.draw`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from envs.calibration import Calibration
from envs.fit.offers import offer_observables
from envs.population import InfluencerPool, response_quality, typical_engagement

__all__ = ["MIN_EXPECTED_ENGAGEMENTS", "HiddenPosterior", "hidden_posterior", "quality_posterior"]


@dataclasses.dataclass(frozen=True)
class HiddenPosterior:
    """The joint normal posterior of every influencer's hidden ``(u, x)``: ``u`` the standardised
    response quality (quality ``exp(s u - s^2 / 2)``, ``s = response_quality_sd``), ``x`` the log true
    engagement rate relative to the typical one (true ER ``typical exp(x)``). Arrays of the pool's length:
    the means, the variances and the covariance."""

    mean_u: np.ndarray
    mean_x: np.ndarray
    var_u: np.ndarray
    var_x: np.ndarray
    cov_ux: np.ndarray
    typical: np.ndarray

    def point(self, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
        """(true engagement rate, response quality) of the point market: ``E[q]`` and ``E[q ER] / E[q]``,
        so the expected reach and engagements of every offer are the posterior's."""
        s = cal.response_quality_sd
        quality = np.exp(s * self.mean_u + s**2 * self.var_u / 2 - s**2 / 2)
        rate = self.typical * np.exp(self.mean_x + self.var_x / 2 + s * self.cov_ux)
        lo, hi = cal.engagement_rate_bounds
        return np.clip(rate, lo, hi), quality

    def draw(self, cal: Calibration, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(true engagement rate, response quality), one joint draw per influencer."""
        n = len(self.mean_u)
        a, b = rng.standard_normal(n), rng.standard_normal(n)
        sd_u = np.sqrt(self.var_u)
        slope = self.cov_ux / np.maximum(self.var_u, 1e-12)
        rest = np.sqrt(np.maximum(self.var_x - slope * self.cov_ux, 0.0))
        u = self.mean_u + sd_u * a
        x = self.mean_x + slope * (u - self.mean_u) + rest * b
        lo, hi = cal.engagement_rate_bounds
        return np.clip(self.typical * np.exp(x), lo, hi), response_quality(u, cal)


#: Fewest expected engagements (under the prior) for an offer's engagements to enter the posterior: the
#: log of a Poisson count is then close to normal (bias under 1/40), and the selection is on what was
#: known before the offer, not on its outcome.
MIN_EXPECTED_ENGAGEMENTS = 20.0


def _typical_price_of(pool: InfluencerPool, cal: Calibration) -> np.ndarray:
    """The list price the pool's observables predict (the price residual's reference)."""
    from envs.population import _typical_price

    return _typical_price(pool.followers, pool.platform, pool.engagement_rate, cal)


def _price_prior(pool: InfluencerPool, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and variance of ``u`` given the list price: ``N(rho z, 1 - rho^2)`` with ``z`` the
    price's standardised residual (:func:`envs.population.quality_given_price`); at the price floor the
    residual is censored (``z <= z_floor``), so the prior there is that of a truncated normal."""
    from scipy.stats import norm

    rho = cal.price_quality_correlation
    price_z = np.log(pool.price / _typical_price_of(pool, cal)) / cal.price_log_sd
    mean = rho * price_z
    var = np.full(len(pool), max(1.0 - rho**2, 1e-9))
    floor = pool.price <= cal.min_price * (1 + 1e-9)
    if floor.any():
        zf = price_z[floor]
        ratio = norm.pdf(zf) / np.maximum(norm.cdf(zf), 1e-300)  # E[z | z <= zf] = -ratio
        mean[floor] = -rho * ratio
        var[floor] += rho**2 * np.maximum(1.0 - zf * ratio - ratio**2, 0.0)
    return mean, var


def hidden_posterior(offers: pd.DataFrame, pool: InfluencerPool, cal: Calibration) -> HiddenPosterior:
    """The joint posterior of every influencer's hidden quality ``u`` and engagement rate ``x`` under
    ``cal`` (see :class:`HiddenPosterior`), normal by a linear-Gaussian update.

    Priors (independent given the observables): ``u`` from the list price (:func:`_price_prior`), ``x``
    from the observed engagement rate (:func:`envs.fit.offers.offer_observables`, ``N(quality_mean,
    quality_var)``). Each accepted offer with reach ``R > 0`` adds ``log R - log(R0 overlap) + s^2 / 2 =
    s u + e`` (``R0`` the reach the observables predict, ``e ~ N(0, reach_post_sd^2)``); each accepted offer
    expected (under the prior) to earn at least :data:`MIN_EXPECTED_ENGAGEMENTS` engagements adds
    ``log E - log K + s^2 / 2 = s u + x + e'`` (``K`` the engagements of a typical-rate, mean-quality
    influencer under ``cal``: audience, sponsored multiplier and fatigue, month, brand fit;
    ``var e' = engagement_post_sd^2 + 1 / E[E]``, the Poisson count's share). The engagements identify the
    product ``q x ER`` that an engagement campaign is paid for, and with the reach each apart.
    """
    from envs.outcomes import reach_rate

    s, noise, noise_e = cal.response_quality_sd, cal.reach_post_sd, cal.engagement_post_sd
    observed = offer_observables(pd.DataFrame({"influencer_id": pool.influencer_id}), pool, cal)
    typical = typical_engagement(pool.followers, pool.platform, cal)
    mean_u0, var_u0 = _price_prior(pool, cal)
    mean_x0 = np.asarray(observed.quality_mean, dtype=float)
    var_x0 = max(float(observed.quality_var), 1e-9)
    n = len(pool)
    # Precision matrix [[a, c], [c, b]] and the precision-weighted mean (pu, px).
    a, b, c = 1.0 / var_u0, np.full(n, 1.0 / var_x0), np.zeros(n)
    pu, px = mean_u0 / var_u0, mean_x0 / var_x0
    hired = offers[offers["accepted"] == 1] if len(offers) else offers
    where = pd.Index(pool.influencer_id.astype(str)).get_indexer(hired["influencer_id"].astype(str)) if len(hired) else np.zeros(0, int)  # fmt: skip
    if s > 0 and len(hired):
        keep = where >= 0
        i = where[keep]
        rows = hired[keep]
        rate = reach_rate(pool.followers[i], pool.platform[i], cal)
        if noise > 0:
            reach = rows["reach"].to_numpy(float)
            expected = (
                (1.0 - pool.fake_share[i]) * pool.followers[i] * rate * rows["overlap_factor"].to_numpy(float)
            )
            ok = reach > 0
            y = (np.log(np.where(ok, reach, 1.0) / expected) + s**2 / 2) * ok
            a = a + np.bincount(i, weights=ok * s**2 / noise**2, minlength=n)
            pu = pu + np.bincount(i, weights=y * s / noise**2, minlength=n)
        if "engagements" in rows and noise_e > 0:
            per_view = np.asarray(cal.engagement_per_view, dtype=bool)[pool.platform[i]]
            audience = pool.followers[i] * np.where(per_view, rate, 1.0)
            month = rows["month"].to_numpy().astype(np.int64)
            fit = rows["fit"].to_numpy(float)
            base = (
                typical[i]
                * audience
                * cal.sponsored_engagement_multiplier
                * np.exp(-cal.engagement_fatigue * rows["sponsored_load"].to_numpy(float))
                * cal.array("month_engagement")[month]
                * (cal.engagement_fit_base + cal.engagement_fit_slope * fit)
            )
            prior_mean = base * np.exp(mean_x0[i] + var_x0 / 2) * math.exp(noise_e**2 / 2)
            ok = prior_mean >= MIN_EXPECTED_ENGAGEMENTS
            count = np.maximum(rows["engagements"].to_numpy(float), 0.5)
            g = (np.log(count / base) + s**2 / 2) * ok
            w = ok / (noise_e**2 + 1.0 / np.maximum(prior_mean, 1.0))
            a = a + np.bincount(i, weights=w * s**2, minlength=n)
            b = b + np.bincount(i, weights=w, minlength=n)
            c = c + np.bincount(i, weights=w * s, minlength=n)
            pu = pu + np.bincount(i, weights=w * g * s, minlength=n)
            px = px + np.bincount(i, weights=w * g, minlength=n)
    det = a * b - c**2
    var_u, var_x, cov = b / det, a / det, -c / det
    return HiddenPosterior(
        mean_u=var_u * pu + cov * px, mean_x=cov * pu + var_x * px, var_u=var_u, var_x=var_x, cov_ux=cov,
        typical=typical,
    )  # fmt: skip


def quality_posterior(
    offers: pd.DataFrame, pool: InfluencerPool, cal: Calibration
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of every influencer's standardised hidden quality ``u``
    under ``cal``: the margin of :func:`hidden_posterior`."""
    posterior = hidden_posterior(offers, pool, cal)
    return posterior.mean_u, np.sqrt(posterior.var_u)
