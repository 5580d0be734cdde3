"""A/B experiments: assignment, impression logging, attribution, statistics, report, CLI."""

import hashlib
import json
import math
import sqlite3
import sys
from collections import Counter

import numpy as np
import pytest

from conftest import cli
from edgerec import Experiment, Recommender
from edgerec.abtest import (Comparison, Rate, SampleRatio, chi2_sf, normal_sf, offline_replay, plot, ratio_variance,
                            report)
from edgerec.errors import EdgerecError, InputError
from edgerec.abconfig import load_config, parse_config, register, unit_hash
from edgerec.store import Store, experiments
from edgerec.store.schema import VERSION_1

HOUR = 3600.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def design(name="exp", shares=(0.5, 0.5), bundle="models/none", **extra):
    return {"name": name, "variants": [{"name": "AB"[i] if len(shares) <= 2 else f"V{i}",
                                        "bundle": bundle, "share": s} for i, s in enumerate(shares)],
            **extra}


# -- assignment ----------------------------------------------------------------------------

@pytest.mark.runtime
def test_assignment_is_deterministic_and_matches_the_shares():
    shares = (0.2, 0.3, 0.5)
    config = load_config(design("home", shares))
    users = [f"user-{i}" for i in range(100_000)]
    first = [config.variant_for(u).name for u in users]
    again = load_config(design("home", shares))
    assert first == [again.variant_for(u).name for u in users]
    counts = Counter(first)
    for i, share in enumerate(shares):
        assert abs(counts[f"V{i}"] / len(users) - share) <= 0.02, counts
    # The hash is sha256 of "salt:user" and nothing else, so machines and restarts agree.
    digest = hashlib.sha256(b"home:user-7").digest()
    assert unit_hash("home", "user-7") == int.from_bytes(digest[:8], "big") / 2 ** 64


@pytest.mark.runtime
def test_experiments_assign_independently_and_the_salt_decides():
    x, y = load_config(design("x")), load_config(design("y"))
    users = [f"u{i}" for i in range(100_000)]
    pairs = Counter((x.variant_for(u).name, y.variant_for(u).name) for u in users)
    for in_x in "AB":
        in_y_b = pairs[(in_x, "B")] / (pairs[(in_x, "A")] + pairs[(in_x, "B")])
        assert abs(in_y_b - 0.5) <= 0.02, pairs  # knowing X's variant says nothing about Y's
    same_salt = load_config(design("y", salt="x"))
    assert all(same_salt.variant_for(u).name == x.variant_for(u).name for u in users[:1000])


# -- config --------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    (lambda c: c["variants"][1].update(share=0.6), "variants: shares must sum to 1"),
    (lambda c: c["variants"][1].update(options={"diversityy": 0.3}), "variants[1].options.diversityy"),
    (lambda c: c["variants"][1].update(options={"diversity": 2}), "variants[1].options"),
    (lambda c: c["variants"][0].pop("bundle"), "variants[0].bundle"),
    (lambda c: c["variants"][0].update(weight=1), "variants[0].weight"),
    (lambda c: c.update(control="C"), "control"),
    (lambda c: c.update(window_hours=-1), "window_hours"),
    (lambda c: c.update(outcomes={"click": "click"}), "outcomes.click"),
    (lambda c: c.update(variants=c["variants"][:1]), "variants: must be a list of at least two"),
    (lambda c: c.pop("name"), "name"),
])
@pytest.mark.runtime
def test_bad_config_is_one_line_naming_file_and_field(tmp_path, change, field):
    config = design()
    change(config)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InputError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and field in message and "\n" not in message


@pytest.mark.runtime
def test_toml_config_equals_json_and_bundles_are_relative_to_the_file(tmp_path):
    (tmp_path / "exp.toml").write_text(
        'name = "home"\nwindow_hours = 12\ncontrol = "B"\n[outcomes]\nclick = ["click", "like"]\n'
        '[[variants]]\nname = "A"\nbundle = "models/mf"\nshare = 0.5\n'
        '[[variants]]\nname = "B"\nbundle = "models/seq"\nshare = 0.5\n'
        '[variants.options]\ndiversity = 0.3\n')
    (tmp_path / "exp.json").write_text(json.dumps({
        "name": "home", "window_hours": 12, "control": "B", "outcomes": {"click": ["click", "like"]},
        "variants": [{"name": "A", "bundle": "models/mf", "share": 0.5},
                     {"name": "B", "bundle": "models/seq", "share": 0.5, "options": {"diversity": 0.3}}]}))
    toml, plain = load_config(tmp_path / "exp.toml"), load_config(tmp_path / "exp.json")
    assert toml.to_dict() == plain.to_dict()
    assert toml.variants[1].bundle == (tmp_path / "models" / "seq").resolve()
    assert toml.outcomes == {"click": ("click", "like"), "conversion": ("purchase",)}
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize("changed", [
    design("home", (0.4, 0.6)),                       # shares
    design("home", salt="home-v2"),                   # salt: every user would be re-hashed
    {**design("home"), "variants": [{"name": "A", "bundle": "models/none", "share": 0.5},
                                    {"name": "C", "bundle": "models/none", "share": 0.5}]},
], ids=["shares", "salt", "variant names"])
@pytest.mark.runtime
def test_changing_the_assignment_of_a_running_experiment_is_refused(tmp_path, changed):
    store = Store.open(tmp_path / "s.db")
    register(store, load_config(design("home")))
    register(store, load_config(design("home", window_hours=48)))  # attribution may change
    assert experiments.config(store, "home")["window_hours"] == 48
    with pytest.raises(InputError, match="already runs .* new name"):
        register(store, load_config(changed))
    stored = experiments.config(store, "home")
    assert stored["salt"] == "home" and [v["share"] for v in stored["variants"]] == [0.5, 0.5]


# -- store -------------------------------------------------------------------------------

def _v1_store(path, extra_sql=""):
    conn = sqlite3.connect(path)
    conn.executescript(VERSION_1 + extra_sql + "INSERT INTO meta VALUES ('schema_version', '1');"
                       "INSERT INTO events (user_id, item_id, event, weight, ts) "
                       "VALUES ('u1', 'i1', 'click', 2.0, 100.0);")
    conn.commit()
    conn.close()


def _schema(path):
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return version, tables
    finally:
        conn.close()


@pytest.mark.runtime
def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "v1.db"
    _v1_store(path)
    store = Store.open(path, create=False)
    assert store.history("u1") == ["i1"]
    experiments.add_impressions(store, [("x", "A", "r", "u1", "i1", 1, 50.0)])
    store.close()
    assert _schema(path) == ("2", {"meta", "items", "events", "experiments", "impressions", "item_popularity"})
    assert experiments.totals(Store.open(path, create=False), "x", HOUR, ["click"], [])[0].clicked == 1


@pytest.mark.runtime
def test_a_failed_upgrade_leaves_the_version_1_store_as_it_was(tmp_path):
    path = tmp_path / "v1.db"
    _v1_store(path, "CREATE VIEW impressions AS SELECT * FROM events;")  # cannot be indexed
    with pytest.raises(Exception, match="cannot upgrade"):
        Store.open(path, create=False)
    assert _schema(path) == ("1", {"meta", "items", "events"})


# -- attribution -----------------------------------------------------------------------------

@pytest.mark.runtime
def test_attribution_on_a_hand_built_log_gives_the_known_counts(tmp_path):
    store = Store.open(tmp_path / "s.db")
    t = 10_000.0
    experiments.add_impressions(store, [
        ("x", "A", "r1", "u", "a", 1, t), ("x", "A", "r1", "u", "b", 2, t),
        ("x", "A", "r1", "u", "c", 3, t), ("x", "A", "r1", "u", "d", 4, t),
        ("x", "A", "r2", "u", "a", 1, t + 1000),  # a shown again: later outcomes go here
        ("x", "B", "r3", "w", "a", 1, t), ("x", "B", "r3", "w", "b", 2, t),
        ("y", "A", "r4", "u", "c", 1, t + 2 * HOUR),  # another experiment: not x's
    ])
    store.add_events([
        ("u", "a", "click", 2, t + 1500), ("u", "a", "click", 2, t + 1600),  # both -> r2's a, once
        ("u", "a", "purchase", 5, t + 1700),  # conversion of r2's a
        ("u", "b", "click", 2, t + HOUR),  # exactly the window's end: counts
        ("u", "c", "click", 2, t + HOUR + 1),  # one second late: not counted
        ("u", "d", "click", 2, t - 1),  # before the impression: not counted
        ("u", "e", "click", 2, t + 10),  # an item never shown
        ("u", "b", "view", 1, t + 10),  # not an outcome type
        ("v", "a", "click", 2, t + 10),  # a user never shown anything
        ("w", "a", "click", 2, t),  # at the impression's own time: counts
        ("w", "b", "purchase", 5, t + 20),  # conversion without a click
    ])
    totals = {v.variant: v for v in experiments.totals(store, "x", HOUR, ["click"], ["purchase"])}
    a, b = totals["A"], totals["B"]
    assert (a.users, a.impressions, a.clicked, a.converted) == (1, 5, 2, 1)
    assert (b.users, b.impressions, b.clicked, b.converted) == (1, 2, 1, 1)
    assert (a.sum_nn, a.sum_cc, a.sum_nc) == (25, 4, 10)
    # A longer window reaches c's late click; purchases may count as clicks too.
    wider = {v.variant: v for v in experiments.totals(store, "x", 2 * HOUR, ["click", "purchase"], [])}
    assert (wider["A"].clicked, wider["A"].converted, wider["B"].clicked) == (3, 0, 2)
    # Over time: r2 and the conversion fall in the later bucket.
    series = experiments.series(store, "x", HOUR, ["click"], ["purchase"], 1000)
    assert series == [("A", t, 4, 1, 1, 0), ("A", t + 1000, 1, 1, 0, 1), ("B", t, 2, 1, 1, 1)]


# -- statistics ----------------------------------------------------------------------------

@pytest.mark.runtime
def test_statistics_against_known_values():
    for df, x in [(1, 3.841458820694124), (2, 5.991464547107979), (3, 7.814727903251178),
                  (4, 9.487729036781154), (7, 14.067140449340169)]:
        assert chi2_sf(x, df) == pytest.approx(0.05, abs=1e-12)  # the 95% quantiles
    assert 2 * normal_sf(1.959963984540054) == pytest.approx(0.05)
    # One impression per user: the delta method is the binomial variance (with m - 1).
    r, m = 0.3, 1000
    assert ratio_variance(r, m, m, r * m, r * m, m) == pytest.approx(r * (1 - r) / (m - 1))
    # The lift interval excludes 0 exactly when the z-test rejects (Fieller's interval).
    rng = np.random.default_rng(0)
    for a, b, va, vb in zip(rng.uniform(.02, .1, 500), rng.uniform(.02, .1, 500),
                            rng.uniform(1e-6, 1e-4, 500), rng.uniform(1e-6, 1e-4, 500)):
        c = Comparison.of(Rate(a, 0, 1, va, 1.0), Rate(b, 0, 1, vb, 1.0))
        assert (c.low > 0 or c.high < 0) == c.significant
        assert c.low < c.lift < c.high
    fair, skewed = SampleRatio.of({"A": 5050, "B": 4950}, {"A": .5, "B": .5}), \
        SampleRatio.of({"A": 5200, "B": 4800}, {"A": .5, "B": .5})
    assert not fair.mismatch and fair.p_value > 0.3
    assert skewed.mismatch and skewed.chi2 == pytest.approx(16.0) and skewed.p_value < 1e-4


def simulate(store, name, ctr, seed, users=400, shares=(0.5, 0.5), drop=None, **extra):
    """Log an experiment by bulk writes: users in their hashed variant get 1 + Poisson(1)
    lists of 5 items; each user has their own click propensity (Beta, mean ``ctr[variant]``:
    strongly clustered, as real users are); a clicked item is bought with probability 0.2.
    ``drop``: (variant, fraction) of its users whose impressions are lost (a logging bug)."""
    config = parse_config(design(name, shares, **extra), "test", store.path.parent)
    register(store, config)
    rng = np.random.default_rng(seed)
    ids = [f"{name}-u{u}" for u in range(users)]
    variants = [config.variant_for(u).name for u in ids]
    mean = np.array([ctr[v] for v in variants])
    propensity = rng.beta(10 * mean, 10 * (1 - mean))
    kept = rng.random(users) >= (drop[1] if drop else 0)
    if drop:
        kept |= np.array(variants) != drop[0]
    lists = 1 + rng.poisson(1.0, users)
    impressions, events = [], []
    for u in np.flatnonzero(kept):
        user, variant = ids[u], variants[u]
        clicks = rng.random((lists[u], 5)) < propensity[u]
        bought = rng.random((lists[u], 5)) < 0.2
        for r in range(lists[u]):
            ts = 1_700_000_000.0 + u * 60 + r * 7200
            impressions += [(name, variant, f"{user}-{r}", user, f"i{r * 5 + p}", p + 1, ts)
                            for p in range(5)]
            for p in np.flatnonzero(clicks[r]):
                events.append((user, f"i{r * 5 + p}", "click", 2.0, ts + 30))
                if bought[r, p]:
                    events.append((user, f"i{r * 5 + p}", "purchase", 5.0, ts + 90))
    experiments.add_impressions(store, impressions)
    store.add_events(events)


@pytest.mark.runtime
def test_report_finds_a_truly_better_variant_significant(tmp_path):
    store = Store.open(tmp_path / "s.db")
    simulate(store, "better", {"A": 0.05, "B": 0.065}, seed=1, users=6000)
    result = report(store, "better")
    a, b = result.variants
    assert b.ctr_vs_control.significant and b.ctr_vs_control.p_value < 0.001
    assert b.ctr.value > a.ctr.value and b.ctr_vs_control.low > 0
    assert abs(b.ctr_vs_control.lift - 0.30) < 0.2  # the true lift, within ~3 standard errors
    assert a.ctr.low < a.ctr.value < a.ctr.high and a.ctr.design_effect > 1.2  # clustered users
    assert not result.srm.mismatch
    # Conversion: users with an attributed purchase over users (one trial per user), its
    # variance the binomial one with n - 1, all counted here from the log itself.
    converted = _converted_users(store, "better")
    for v in (a, b):
        assert v.conversions == converted[v.name] and v.conversion.value == converted[v.name] / v.users
    ca, cb = a.conversion.value, b.conversion.value
    se = math.sqrt(ca * (1 - ca) / (a.users - 1) + cb * (1 - cb) / (b.users - 1))
    conv = b.conversion_vs_control
    assert conv.lift == pytest.approx(cb / ca - 1) and conv.z == pytest.approx((cb - ca) / se)
    assert conv.p_value == pytest.approx(2 * normal_sf(abs(conv.z)))
    assert conv.significant and conv.low > 0 and a.conversion_vs_control is None
    text = result.render()
    assert "CTR (95% CI)" in text and " *" in text and "sample ratio" in text
    json.dumps(result.to_dict())


def _converted_users(store, name) -> Counter:
    """Users per variant with a purchase after one of their impressions (the simulation buys
    60 s after the click, so always inside the window)."""
    rows = store.db.conn.execute(
        "SELECT DISTINCT i.variant, i.user_id FROM impressions i JOIN events e "
        "ON e.user_id = i.user_id AND e.item_id = i.item_id AND e.event = 'purchase' "
        "AND e.ts >= i.ts WHERE i.experiment = ?", (name,)).fetchall()
    return Counter(variant for variant, _ in rows)


@pytest.mark.runtime
def test_three_variants_are_each_compared_with_the_control(tmp_path):
    store = Store.open(tmp_path / "s.db")
    simulate(store, "three", {"V0": 0.05, "V1": 0.05, "V2": 0.08}, seed=4, users=6000,
             shares=(0.25, 0.25, 0.5), control="V1")
    result = report(store, "three")
    by = {v.name: v for v in result.variants}
    assert result.control == "V1" and by["V1"].ctr_vs_control is None
    for name in ("V0", "V2"):  # against the control, not against the variant before it
        assert by[name].ctr_vs_control.lift == pytest.approx(by[name].ctr.value / by["V1"].ctr.value - 1)
    assert by["V2"].ctr_vs_control.significant and by["V2"].ctr_vs_control.low > 0.2
    assert not by["V0"].ctr_vs_control.significant
    assert result.srm.df == 2 and not result.srm.mismatch
    assert sum(by[v].users for v in by) == 6000  # every simulated user saw lists
    assert by["V2"].users == pytest.approx(3000, abs=4 * math.sqrt(6000 * 0.25))
    lines = result.render().splitlines()
    assert sum(line.lstrip().startswith(("V0", "V1", "V2")) for line in lines) >= 3


@pytest.mark.runtime
def test_aa_experiments_are_significant_at_the_stated_rate(tmp_path):
    """200 A/A experiments: the user-level test is wrong about 5% of the time; the naive
    per-impression z-test on the same clustered data would be wrong far more often."""
    store = Store.open(tmp_path / "s.db")
    runs = 200
    for seed in range(runs):
        simulate(store, f"aa{seed}", {"A": 0.05, "B": 0.05}, seed=seed)
    false_positives = naive_false_positives = srm_flags = 0
    differences, reported_se = [], []
    for seed in range(runs):
        result = report(store, f"aa{seed}")
        a, b = result.variants
        false_positives += b.ctr_vs_control.significant
        differences.append(b.ctr.value - a.ctr.value)
        reported_se.append((b.ctr.value - a.ctr.value) / b.ctr_vs_control.z)
        srm_flags += result.srm.mismatch
        pooled = (a.clicks + b.clicks) / (a.impressions + b.impressions)
        z = (b.ctr.value - a.ctr.value) / math.sqrt(
            pooled * (1 - pooled) * (1 / a.impressions + 1 / b.impressions))
        naive_false_positives += 2 * normal_sf(abs(z)) < 0.05
    # 5% expected: 200 runs put 2%..8% within about two binomial standard deviations, so a
    # test that never rejects (an inflated variance) fails as surely as one that over-rejects.
    assert 0.02 <= false_positives / runs <= 0.08, false_positives
    # The reported standard error is the real spread of B - A over the runs (within the
    # ~5% sampling error of a standard deviation from 200 runs), not the binomial one.
    spread = np.std(differences, ddof=1)
    assert 0.85 <= spread / np.mean(reported_se) <= 1.15, (spread, np.mean(reported_se))
    assert naive_false_positives / runs > 0.08, naive_false_positives
    assert srm_flags <= 2  # alpha 0.001


@pytest.mark.runtime
def test_sample_ratio_mismatch_found_on_a_skewed_log_only(tmp_path):
    store = Store.open(tmp_path / "s.db")
    simulate(store, "fair", {"A": 0.05, "B": 0.05}, seed=3, users=4000, shares=(0.3, 0.7))
    simulate(store, "lossy", {"A": 0.05, "B": 0.05}, seed=3, users=4000, shares=(0.3, 0.7),
             drop=("B", 0.15))
    fair, lossy = report(store, "fair"), report(store, "lossy")
    assert not fair.srm.mismatch and fair.srm.df == 1
    assert lossy.srm.mismatch and lossy.srm.p_value < 0.001
    assert "MISMATCH" in lossy.render()


# -- serving, logging, offline replay, CLI (with hand-built bundles) ------------------------

@pytest.fixture(scope="module")
def coarse(demo_store, tmp_path_factory):
    """A second hand-built bundle of the demo store, with fewer dimensions: another model."""
    from bundles import build_bundle

    return build_bundle(demo_store, tmp_path_factory.mktemp("coarse") / "svd", dim=6)


@pytest.fixture
def live(svd, coarse, tmp_path):
    """A copy of the demo store and a config comparing a bundle (A) with another one
    re-ranked for diversity (B): two bundles, so serving the wrong one shows."""
    path = tmp_path / "store.db"
    source, dest = sqlite3.connect(svd.store), sqlite3.connect(path)
    source.backup(dest)
    source.close()
    dest.close()
    config = tmp_path / "exp.json"
    config.write_text(json.dumps({
        "name": "div", "window_hours": 2,
        "variants": [{"name": "A", "bundle": str(svd.bundle), "share": 0.5},
                     {"name": "B", "bundle": str(coarse.bundle), "share": 0.5,
                      "options": {"diversity": 0.5}}]}))
    return path, config


@pytest.mark.runtime
def test_experiment_serves_each_variant_and_logs_impressions(live, svd, coarse):
    path, config = live
    # The oracle: each variant's own bundle opened directly, with the variant's options.
    expected = {"A": (svd.bundle, {}), "B": (coarse.bundle, {"diversity": 0.5})}
    with Experiment.open(config, path, provider="cpu") as exp:
        served = [exp.recommend(f"u{i}", n=5, ts=1e9 + i) for i in range(20)]
        assert {r.variant for r in served} == {"A", "B"}
        for name, (bundle, options) in expected.items():
            with Recommender.open(bundle, path, provider="cpu") as direct:
                for recs in (r for r in served if r.variant == name):
                    assert recs.variant == load_config(config).variant_for(recs.user_id).name
                    assert len(recs) == 5 and list(recs) == list(direct.recommend(recs.user_id, 5, **options))
        b_user = next(r.user_id for r in served if r.variant == "B")
        with Recommender.open(svd.bundle, path, provider="cpu") as other:  # the bundles differ
            assert list(other.recommend(b_user, 5, diversity=0.5)) != list(
                next(r for r in served if r.user_id == b_user))
        assert len({r.request_id for r in served}) == 20
        first = served[0]
        assert exp.record(first.user_id, first[2].item_id, "click", ts=1e9 + 60)
        assert exp.record(first.user_id, first[2].item_id, "purchase", ts=1e9 + 120)
        with pytest.raises(InputError, match="variant 'B' sets diversity"):
            exp.recommend(next(r.user_id for r in served if r.variant == "B"), diversity=0.1)
        result = exp.report()
    by_name = {v.name: v for v in result.variants}
    shown = by_name[first.variant]
    assert shown.impressions == 5 * sum(r.variant == first.variant for r in served)
    assert (shown.clicks, shown.conversions) == (1, 1)
    assert sum(v.users for v in result.variants) == 20
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT request_id, position, item_id, ts FROM impressions "
                            "WHERE user_id = ? ORDER BY id", (first.user_id,)).fetchall()
    assert rows == [(first.request_id, p, r.item_id, 1e9) for p, r in enumerate(first, 1)]


@pytest.mark.runtime
def test_offline_replay_scores_each_variant_on_later_events(live, svd):
    path, config = live
    with Experiment.open(config, path, provider="cpu") as exp:
        empty = offline_replay(exp.store, exp.config)
        assert empty["users"] == 0 and "nothing to replay" in empty["note"]
        # Five users go on to interact with exactly what variant A recommends them now.
        last = json.loads((svd.bundle / "manifest.json").read_text())["training"]["data"]["last_ts"]
        plain = {u: exp.recommender("A").recommend(u, 10) for u in ["u1", "u2", "u3", "u4", "u5"]}
        exp.record_many((u, r.item_id, "click", None, last + 100 + rank)
                        for u, recs in plain.items() for rank, r in enumerate(recs))
        replay = offline_replay(exp.store, exp.config)
    assert replay["users"] == 5 and replay["cutoff"] == last
    assert replay["variants"]["A"]["ndcg@10"] == pytest.approx(1.0)
    assert replay["variants"]["A"]["recall@10"] == pytest.approx(1.0)
    assert replay["variants"]["B"]["ndcg@10"] < 1.0  # diversity re-ranks some away


@pytest.mark.runtime
def test_cli_assign_recommend_report_and_plot(live, tmp_path):
    path, config = live
    users = [f"u{i}" for i in range(6)]
    out = cli("ab", "assign", config, *users)
    assert out.returncode == 0, out.stderr
    expected = load_config(config)
    assert out.stdout.split() == [w for u in users for w in (u, expected.variant_for(u).name)]
    for user in users:
        out = cli("ab", "recommend", path, config, user, "-n", "4", "--json", "--provider", "cpu")
        assert out.returncode == 0, out.stderr
        served = json.loads(out.stdout)
        assert served["variant"] == expected.variant_for(user).name and len(served["items"]) == 4
    out = cli("ab", "report", path, "div", "--offline", "--window", "1")
    assert out.returncode == 0, out.stderr
    assert "CTR (95% CI)" in out.stdout and "sample ratio" in out.stdout
    assert "offline replay: no events after" in out.stdout
    clicked = served["items"][0]["item_id"]
    assert cli("record", path, users[-1], clicked).returncode == 0  # the last user clicks
    data = json.loads(cli("ab", "report", path, "div", "--json", "--offline").stdout)
    assert data["experiment"] == "div" and sum(v["impressions"] for v in data["variants"]) == 24
    assert sum(v["clicks"] for v in data["variants"]) == 1
    assert data["offline"]["users"] == 1 and set(data["offline"]["variants"]) == {"A", "B"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(design(shares=(0.5, 0.6))))
    out = cli("ab", "assign", bad, "u1")
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith(f"Error: {bad}: variants: shares must sum to 1")
    out = cli("ab", "report", path, "nope")
    assert out.returncode == 1 and "no experiment named 'nope'" in out.stderr


def _needs_matplotlib():
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the bench extra: "
                                             "pip install -e '.[bench]'; `make test` installs it)")


def test_cli_report_plot(live, tmp_path):
    _needs_matplotlib()
    path, config = live
    with Experiment.open(config, path, provider="cpu") as exp:
        exp.recommend("u1", n=4, ts=1e9)
    png = tmp_path / "plots" / "div.png"
    out = cli("ab", "report", path, "div", "--plot", png)
    assert out.returncode == 0, out.stderr
    assert f"plot: {png}" in out.stdout and png.read_bytes()[:8] == PNG_MAGIC


def test_plot_from_python(tmp_path, monkeypatch):
    store = Store.open(tmp_path / "s.db")
    simulate(store, "p", {"A": 0.05, "B": 0.08}, seed=0, users=300)
    result = report(tmp_path / "s.db", "p")
    assert set(result.series) == {"A", "B"} and result.series["A"][-1]["impressions"] == \
        result.variants[0].impressions
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # not installed
    with pytest.raises(EdgerecError, match=r"pip install 'edgerec\[bench\]'"):
        plot(result, tmp_path / "q.png")
    monkeypatch.undo()
    _needs_matplotlib()
    assert plot(result, tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC
