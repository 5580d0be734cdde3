"""The A/B report: attributed outcomes per variant, intervals, tests, and a plot.

Metrics (attribution, in SQL: ``edgerec.store.experiments.totals``): an outcome event goes to the
most recent impression of that item to that user in the experiment that precedes it by at
most the window; each outcome counts once, and an impression once per outcome kind.

* CTR = impressions with an attributed click-like outcome / impressions.
* conversion = users with an attributed conversion / users with an impression.

The user is the unit of randomisation, and one user's impressions are not independent
(some people click far more than others), so variances are computed over users: the delta
method for a ratio of per-user sums, var(C/N) = sum_i (c_i - r n_i)^2 / N^2 * m/(m-1)
(m users, n_i impressions, c_i clicked). With one impression per user this is the usual
binomial variance, so the test below is then the classic (unpooled) two-proportion z-test.

* 95% interval: Wilson score interval on the effective sample size N / design effect
  (design effect = delta-method variance / binomial variance, at least 1), so it never
  leaves [0, 1] and is never narrower than the binomial one.
* Lift of a variant against control: B/A - 1, with Fieller's 95% interval for the ratio
  (it excludes 0 exactly when the test below rejects). Significance: two-sided z-test of
  B - A with the user-level standard errors above, at alpha 0.05, each variant against
  control (no correction for several variants).
* Sample ratio mismatch: chi-square goodness of fit of users per variant against the
  configured shares (exact chi-square tail for integer degrees of freedom); p < 0.001
  flags it, meaning assignment or logging is broken and the results should not be read.

With ``offline=True`` the report adds an offline replay of each variant on the store's
logged events (``offline_replay``), so the online result is read next to it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import EdgerecError, InputError
from .abconfig import Config, Variant, stored_config
from .replay import iso, replay
from .store import Store, experiments
from .store.experiments import VariantTotals

ALPHA = 0.05
SRM_ALPHA = 0.001
Z95 = 1.959963984540054
METHOD = ("two-sided z-test on the difference of rates with user-level (delta method) "
          "standard errors; Wilson intervals on the effective sample size, Fieller for lifts")
# Plot time buckets: the first step giving at most MAX_BUCKETS points over the experiment.
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
MAX_BUCKETS = 60


# -- statistics -----------------------------------------------------------------------------

def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square with integer ``df``: the closed forms of the regularised
    upper incomplete gamma Q(df/2, x/2) (a finite sum for even df, erfc plus one for odd)."""
    if x <= 0:
        return 1.0
    h = x / 2.0
    if df % 2 == 0:
        return min(1.0, sum(math.exp(-h + i * math.log(h) - math.lgamma(i + 1)) for i in range(df // 2)))
    return min(1.0, math.erfc(math.sqrt(h)) + sum(
        math.exp(-h + (i - 0.5) * math.log(h) - math.lgamma(i + 0.5)) for i in range(1, (df + 1) // 2)))


def ratio_variance(r: float, users: int, total: float, sum_cc: float, sum_nc: float,
                   sum_nn: float) -> float:
    """Delta-method variance of r = sum(c) / sum(n) over ``users`` independent users."""
    if users < 2 or total <= 0:
        return math.nan
    return max(0.0, sum_cc - 2 * r * sum_nc + r * r * sum_nn) / total ** 2 * users / (users - 1)


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed over n trials."""
    if not n > 0:
        return math.nan, math.nan
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def fieller(a: float, b: float, va: float, vb: float, z: float = Z95) -> tuple[float | None, float | None]:
    """Fieller's 95% interval for b / a (independent estimates with variances va, vb).

    It holds 1 exactly when the z-test of b - a does not reject, so a lift interval never
    contradicts the test; (None, None) when a is not clearly above 0 (the interval is
    unbounded).
    """
    denom = a * a - z * z * va
    if not denom > 0:
        return None, None
    root = z * math.sqrt(max(0.0, a * a * vb + b * b * va - z * z * va * vb))
    return (a * b - root) / denom, (a * b + root) / denom


def design_effect(r: float, trials: float, variance: float) -> float:
    """How much the user-level variance exceeds the binomial one (at least 1)."""
    binomial = r * (1 - r) / trials if trials > 0 else 0.0
    if not binomial > 0 or not variance > 0:
        return 1.0
    return max(1.0, variance / binomial)


@dataclass
class Rate:
    """A rate with its user-level variance and 95% interval (None when nothing was shown)."""

    value: float | None
    low: float | None
    high: float | None
    variance: float | None
    design_effect: float

    @classmethod
    def of(cls, successes: float, trials: float, variance: float) -> "Rate":
        """The rate ``hits / n`` with its user-level variance and Wilson interval."""
        if not trials > 0:
            return cls(None, None, None, None, 1.0)
        r = successes / trials
        deff = design_effect(r, trials, variance)
        low, high = wilson(r, trials / deff)
        return cls(r, low, high, None if math.isnan(variance) else variance, deff)


@dataclass
class Comparison:
    """A variant against control: relative lift with 95% interval, z and p of B - A."""

    lift: float | None
    low: float | None
    high: float | None
    z: float | None
    p_value: float | None
    significant: bool

    @classmethod
    def of(cls, control: Rate, variant: Rate, alpha: float = ALPHA) -> "Comparison":
        """A variant's rate against control's: difference, lift with its interval, z-test."""
        a, b, va, vb = control.value, variant.value, control.variance, variant.variance
        if a is None or b is None or va is None or vb is None:
            return cls(None, None, None, None, None, False)
        se = math.sqrt(va + vb)
        z = (b - a) / se if se > 0 else None
        p = 2 * normal_sf(abs(z)) if z is not None else None
        lift = b / a - 1 if a > 0 else None
        low, high = fieller(a, b, va, vb)
        return cls(lift, None if low is None else low - 1, None if high is None else high - 1,
                   z, p, p is not None and p < alpha)


@dataclass
class SampleRatio:
    """Chi-square test of users per variant against the configured shares."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float | None
    df: int
    p_value: float | None
    mismatch: bool

    @classmethod
    def of(cls, observed: dict[str, int], shares: dict[str, float]) -> "SampleRatio":
        """Users per variant against the configured shares (chi-square goodness of fit)."""
        total = sum(observed.values())
        expected = {v: share * total for v, share in shares.items()}
        df = len(shares) - 1
        if total == 0:
            return cls(observed, expected, None, df, None, False)
        chi2 = sum((observed[v] - e) ** 2 / e for v, e in expected.items())
        p = chi2_sf(chi2, df)
        return cls(observed, expected, chi2, df, p, p < SRM_ALPHA)


# -- the report -----------------------------------------------------------------------------

@dataclass
class VariantResult:
    """One variant's row of the report: counts, rates, and the comparison with control."""

    name: str
    share: float
    bundle: str
    options: dict
    users: int
    impressions: int
    clicks: int  # impressions with an attributed click-like outcome
    conversions: int  # users with an attributed conversion
    ctr: Rate
    conversion: Rate
    ctr_vs_control: Comparison | None
    conversion_vs_control: Comparison | None


@dataclass
class Report:
    """An experiment's report: per-variant results, the sample ratio check, the method."""

    experiment: str
    control: str
    window_hours: float
    outcomes: dict[str, list[str]]
    variants: list[VariantResult]
    srm: SampleRatio
    series: dict[str, list[dict]]  # per variant: cumulative metrics at the end of each bucket
    offline: dict | None = None
    alpha: float = ALPHA
    method: str = METHOD
    definitions: dict = field(default_factory=lambda: {
        "ctr": "impressions with an attributed click-like outcome / impressions",
        "conversion": "users with an attributed conversion / users with an impression",
        "attribution": "the latest impression of the same item to the same user in this "
                       "experiment, at most window_hours before the outcome"})

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data (what ``ab report --json`` prints)."""
        return _finite(asdict(self))

    def render(self) -> str:
        """The report as a text table (what ``edgerec ab report`` prints)."""
        lines = [f"experiment {self.experiment}: control {self.control}, attribution window "
                 f"{self.window_hours:g} h, outcomes click={','.join(self.outcomes['click'])} "
                 f"conversion={','.join(self.outcomes['conversion'])}"]
        head = (f"{'variant':<10}{'share':>6}{'users':>9}{'impressions':>13}{'clicks':>9}  "
                f"{'CTR (95% CI)':<24}{'lift vs ' + self.control + ' (95% CI)':<28}{'p':>8}")
        lines += ["", head]
        for v in self.variants:
            lines.append(f"{v.name:<10}{v.share:>6.0%}{v.users:>9}{v.impressions:>13}{v.clicks:>9}  "
                         + _rate_cells(v.ctr, v.ctr_vs_control))
        lines += ["", f"{'variant':<10}{'users':>9}{'converted':>11}  {'conversion (95% CI)':<24}"
                      f"{'lift vs ' + self.control + ' (95% CI)':<28}{'p':>8}"]
        for v in self.variants:
            lines.append(f"{v.name:<10}{v.users:>9}{v.conversions:>11}  "
                         + _rate_cells(v.conversion, v.conversion_vs_control))
        lines += ["", f"test: {self.method}; * p < {self.alpha:g}, each variant against control"]
        srm = self.srm
        if srm.p_value is None:
            lines.append("sample ratio: no users yet")
        else:
            verdict = ("MISMATCH: users do not follow the configured shares; assignment or "
                       "logging is broken, do not trust the results" if srm.mismatch else "ok")
            lines.append(f"sample ratio: chi-square {srm.chi2:.2f}, {srm.df} df, p {srm.p_value:.3g} "
                         f"(flagged below {SRM_ALPHA:g}): {verdict}")
        if self.offline is not None:
            lines += ["", *_render_offline(self.offline)]
        return "\n".join(lines)


def _rate_cells(rate: Rate, comparison: Comparison | None) -> str:
    shown = "-" if rate.value is None else f"{rate.value:.2%} ({rate.low:.2%}-{rate.high:.2%})"
    cells = f"{shown:<24}"
    if comparison is None:
        return cells + "(control)"
    if comparison.lift is None:
        lift = "-"
    elif comparison.low is None:
        lift = f"{comparison.lift:+.1%} (unbounded)"
    else:
        lift = f"{comparison.lift:+.1%} ({comparison.low:+.1%} to {comparison.high:+.1%})"
    p = "-" if comparison.p_value is None else f"{comparison.p_value:.3g}"
    return cells + f"{lift:<28}{p:>8}" + (" *" if comparison.significant else "")


def _render_offline(offline: dict) -> list[str]:
    since = iso(offline["cutoff"]) + " UTC" if offline.get("cutoff") is not None else "?"
    if not offline.get("users"):
        return [f"offline replay: {offline['note']}"]
    k = offline["k"]
    lines = [f"offline replay on the users with events after {since} (the end of the newest "
             f"variant's training data; {offline['users']} users), ranked from their history "
             "before it",
             f"{'variant':<10}{f'ndcg@{k}':>10}{f'recall@{k}':>11}{f'hr@{k}':>8}  bundle"]
    for name, m in offline["variants"].items():
        lines.append(f"{name:<10}{m[f'ndcg@{k}']:>10.4f}{m[f'recall@{k}']:>11.4f}"
                     f"{m[f'hr@{k}']:>8.4f}  {m['bundle']}")
    return lines


def report(store: Store | str | Path, name: str, window_hours: float | None = None,
           offline: bool = False, k: int = 10, provider: str = "cpu") -> Report:
    """The report of experiment ``name`` from the store alone (its config is stored there).

    ``store`` is an open ``Store`` or a path. ``window_hours`` overrides the configured
    attribution window; ``offline`` adds ``offline_replay`` at cut-off ``k`` (its models
    run on ``provider``).
    """
    if not isinstance(store, Store):
        opened = Store.open(store, create=False)
        try:
            return report(opened, name, window_hours, offline, k, provider)
        finally:
            opened.close()
    config = stored_config(store, name)
    hours = config.window_hours if window_hours is None else float(window_hours)
    if not hours > 0:
        raise InputError(f"the attribution window (--window) must be a positive number of "
                         f"hours, not {window_hours!r}")
    query = (name, hours * 3600.0, config.outcomes["click"], config.outcomes["conversion"])
    totals = {t.variant: t for t in experiments.totals(store, *query)}
    results = {v.name: _variant_result(v, totals.get(v.name)) for v in config.variants}
    control = results[config.control]
    for result in results.values():
        if result is not control:
            result.ctr_vs_control = Comparison.of(control.ctr, result.ctr)
            result.conversion_vs_control = Comparison.of(control.conversion, result.conversion)
    srm = SampleRatio.of({v: r.users for v, r in results.items()},
                         {v.name: v.share for v in config.variants})
    return Report(name, config.control, hours, config.to_dict()["outcomes"],
                  list(results.values()), srm, _series(store, query, totals, results),
                  offline_replay(store, config, k, provider) if offline else None)


def _variant_result(variant: Variant, t: VariantTotals | None) -> VariantResult:
    users, imps, clicks, convs = (t.users, t.impressions, t.clicked, t.converted) if t else (0, 0, 0, 0)
    ctr = conversion = Rate.of(0, 0, math.nan)
    if t is not None:
        r = clicks / imps
        ctr = Rate.of(clicks, imps, ratio_variance(r, users, imps, t.sum_cc, t.sum_nc, t.sum_nn))
        c = convs / users  # one trial per user: n_i = 1, c_i = converted or not
        conversion = Rate.of(convs, users, ratio_variance(c, users, users, convs, convs, users))
    return VariantResult(variant.name, variant.share, str(variant.bundle), variant.options, users,
                         imps, clicks, convs, ctr, conversion, None, None)


def _series(store: Store, query: tuple, totals: dict[str, VariantTotals],
            results: dict[str, VariantResult]) -> dict[str, list[dict]]:
    """Cumulative CTR and conversion at the end of each time bucket, per variant.

    The intervals use each variant's final design effect (the per-user sums are not kept
    per bucket); outcomes count at the time of their impression, so the last window's
    worth of points is still rising as late outcomes arrive.
    """
    if not totals:
        return {}
    span = max(t.last_ts for t in totals.values()) - min(t.first_ts for t in totals.values())
    bucket = next((b for b in BUCKETS if span / b <= MAX_BUCKETS), BUCKETS[-1])
    out: dict[str, list[dict]] = {}
    sums = {}
    for variant, start, imps, clicks, users, convs in experiments.series(store, *query, bucket):
        n, c, m, v = sums.get(variant, (0, 0, 0, 0))
        n, c, m, v = sums[variant] = (n + imps, c + clicks, m + users, v + convs)
        point = {"t": start + bucket, "impressions": n, "clicks": c, "users": m, "conversions": v}
        for metric, hits, trials in (("ctr", c, n), ("conversion", v, m)):
            rate = hits / trials if trials else None
            low, high = wilson(rate, trials / getattr(results[variant], metric).design_effect) \
                if trials else (None, None)
            point.update({metric: rate, f"{metric}_low": low, f"{metric}_high": high})
        out.setdefault(variant, []).append(point)
    return out


# -- offline replay -------------------------------------------------------------------------

def offline_replay(store: Store, config: Config, k: int = 10, provider: str = "cpu") -> dict:
    """Each variant (its bundle and options) ranking what users did after every variant's
    training data, from the store as it was before (``edgerec.replay.replay``).

    Caveat: events logged during the experiment were partly caused by what a variant
    showed, which favours the variant that showed them; read it next to the online result.
    """
    return replay(store, {v.name: (v.bundle, v.options) for v in config.variants}, k, provider)


# -- plot -----------------------------------------------------------------------------------

def plot(report: Report, path: str | Path) -> Path:
    """Cumulative CTR and conversion over time per variant with 95% bands, as a PNG."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EdgerecError("plots need matplotlib: pip install 'edgerec[bench]'") from None
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, metric, label in ((axes[0], "ctr", "CTR"), (axes[1], "conversion", "conversion")):
        for name, points in report.series.items():
            shown = [p for p in points if p[metric] is not None]
            times = [datetime.fromtimestamp(p["t"], timezone.utc) for p in shown]
            line, = ax.plot(times, [p[metric] for p in shown], label=name, drawstyle="steps-post")
            ax.fill_between(times, [p[f"{metric}_low"] for p in shown],
                            [p[f"{metric}_high"] for p in shown], step="post", alpha=0.2,
                            color=line.get_color())
        ax.set_ylabel(f"cumulative {label}")
        ax.yaxis.set_major_formatter(lambda y, _: f"{y:.1%}")
        ax.grid(alpha=0.3)
    axes[0].legend(title="variant")
    axes[0].set_title(f"experiment {report.experiment}: cumulative rates with 95% intervals")
    axes[1].set_xlabel("time (UTC)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _finite(value):
    """NaN and infinities become None, so ``to_dict`` is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
