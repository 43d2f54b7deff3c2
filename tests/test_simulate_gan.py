"""Tests of tutorial_kit.simulate.gan: the conditional WGAN-GP, its sampler, and its plots.

Data are tiny and synthetic (two groups with clearly different gene programmes and library
sizes); networks are small, so the whole file runs in seconds on one CPU core.
"""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import tutorial_kit as tk  # noqa: E402
from tutorial_kit import config, plotting  # noqa: E402
from tutorial_kit.simulate import gan as gan_mod  # noqa: E402
from tutorial_kit.simulate.gan import GANSimulator, diversity, fit_gan, gradient_penalty  # noqa: E402

N_GENES = 20
FAST = dict(epochs=40, batch_size=32, latent_dim=8, hidden=(32,), n_critic=2, lr=2e-3, device="cpu", progress=False)


def _toy(n_per_group: int = 60, seed: int = 0) -> ad.AnnData:
    """Two cell types: A expresses genes 0-9 at depth ~200, B expresses genes 10-19 at depth ~1,000."""
    rng = np.random.default_rng(seed)
    prog_a = np.r_[np.full(10, 0.09), np.full(10, 0.01)]
    prog_b = prog_a[::-1].copy()
    depth_a = rng.integers(150, 250, n_per_group)
    depth_b = rng.integers(800, 1200, n_per_group)
    counts = np.vstack(
        [rng.multinomial(d, prog_a) for d in depth_a] + [rng.multinomial(d, prog_b) for d in depth_b]
    )
    obs = pd.DataFrame(
        {
            "cell_type": ["A"] * n_per_group + ["B"] * n_per_group,
            "condition": (["control", "stimulated"] * n_per_group)[: 2 * n_per_group],
            "perturbation": "control",
        },
        index=[f"c{i}" for i in range(2 * n_per_group)],
    )
    adata = ad.AnnData(
        X=tk.data.schema.log1p_cp10k(counts),
        obs=obs,
        var=pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)]),
    )
    adata.layers["counts"] = sp.csr_matrix(counts.astype(np.int32))
    return adata


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny networks run fastest on one thread, and a busy 2-core machine makes two threads crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy() -> ad.AnnData:
    return _toy()


@pytest.fixture(scope="module")
def fitted(toy) -> GANSimulator:
    return fit_gan(toy, groupby="cell_type", seed=0, **FAST)


def _totals(adata: ad.AnnData) -> np.ndarray:
    return np.asarray(adata.layers["counts"].sum(axis=1)).ravel()


# --------------------------------------------------------------------------- output


def test_sample_schema_and_integer_counts(fitted, toy):
    sim = fitted.sample(seed=0)
    assert sim.shape == (toy.n_obs, N_GENES)
    assert list(sim.var_names) == list(toy.var_names)
    counts = sim.layers["counts"]
    assert sp.issparse(counts) and counts.dtype == np.int32 and counts.data.min() >= 0
    np.testing.assert_allclose(sim.X.toarray(), tk.data.schema.log1p_cp10k(counts).toarray(), rtol=1e-6)
    assert sim.obs["cell_type"].value_counts().to_dict() == {"A": 60, "B": 60}
    assert set(sim.obs["dataset"]) == {"simulated:gan"}
    assert set(sim.obs["perturbation"]) == {"control"}  # taken from the real cells of the group


def test_n_cells_total_and_mapping(fitted):
    assert fitted.sample(10, seed=0).n_obs == 10
    only_b = fitted.sample({"B": 7}, seed=0)
    assert only_b.obs["cell_type"].tolist() == ["B"] * 7


def test_library_sizes_are_drawn_from_the_real_group(fitted, toy):
    sim = fitted.sample(200, seed=3)
    real = _totals(toy)
    for group in ("A", "B"):
        real_g = set(real[(toy.obs["cell_type"] == group).to_numpy()].tolist())
        sim_g = _totals(sim)[(sim.obs["cell_type"] == group).to_numpy()]
        # multinomial draws keep the drawn library size exactly
        assert set(sim_g.tolist()) <= real_g
        assert len(set(sim_g.tolist())) > 10  # and several different ones are drawn
    assert fitted.library_sizes["A"].max() < fitted.library_sizes["B"].min()


def test_conditioning_separates_the_groups(fitted, toy):
    sim = fitted.sample(seed=1)
    real_mean = {g: np.asarray(toy.X[(toy.obs["cell_type"] == g).to_numpy()].mean(0)).ravel() for g in "AB"}
    for g, other in (("A", "B"), ("B", "A")):
        gen_mean = np.asarray(sim.X[(sim.obs["cell_type"] == g).to_numpy()].mean(0)).ravel()
        assert np.linalg.norm(gen_mean - real_mean[g]) < 0.5 * np.linalg.norm(gen_mean - real_mean[other])


def test_proportions_sum_to_one_and_follow_the_group(fitted):
    props = fitted.proportions(["A"] * 50 + ["B"] * 50, seed=0)
    np.testing.assert_allclose(props.sum(axis=1), 1.0)
    # A's programme is genes 0-9, B's genes 10-19
    assert props[:50, :10].sum(axis=1).mean() > 0.7
    assert props[50:, 10:].sum(axis=1).mean() > 0.7


def test_noise_scale_zero_collapses_each_group(fitted):
    collapsed = fitted.proportions(["A"] * 5 + ["B"] * 5, seed=0, noise_scale=0.0)
    np.testing.assert_allclose(collapsed[:5], np.repeat(collapsed[:1], 5, axis=0), rtol=1e-12)
    assert not np.allclose(collapsed[0], collapsed[5])  # the groups still differ
    free = fitted.proportions(["A"] * 5, seed=0)
    assert np.ptp(free, axis=0).max() > 1e-4  # with noise, cells of a group differ
    sim = fitted.sample({"A": 5}, seed=0, noise_scale=0.0)
    assert sim.n_obs == 5
    with pytest.raises(ValueError, match="noise_scale"):
        fitted.sample(seed=0, noise_scale=-1.0)


def test_history_one_finite_row_per_epoch(fitted):
    h = fitted.history
    assert list(h.columns) == ["epoch", "critic_loss", "generator_loss", "wasserstein", "gradient_penalty", "seconds"]
    assert h["epoch"].tolist() == list(range(1, FAST["epochs"] + 1))
    assert np.isfinite(h.to_numpy(dtype=float)).all()
    assert (h["seconds"] > 0).all() and (h["gradient_penalty"] >= 0).all()
    assert fitted.seconds_per_epoch == pytest.approx(float(h["seconds"].median()))
    # the critic loss is -W + gp_weight * penalty, averaged over the same steps
    np.testing.assert_allclose(h["critic_loss"], -h["wasserstein"] + 10.0 * h["gradient_penalty"], rtol=1e-4, atol=1e-4)


def test_attributes_and_repr(fitted, toy):
    assert fitted.groupby == ("cell_type",)
    assert fitted.group_sizes.to_dict() == {"A": 60, "B": 60}
    assert fitted.device == "cpu"
    assert all(p.device.type == "cpu" for p in fitted.generator.parameters())
    assert all(p.device.type == "cpu" for p in fitted.critic.parameters())
    assert "2 groups" in repr(fitted) and "cpu" in repr(fitted)


def test_two_keys_and_proportions_critic(toy):
    gan = fit_gan(toy, critic_input="proportions", **{**FAST, "epochs": 2})
    assert list(gan.group_sizes.index) == ["A | control", "A | stimulated", "B | control", "B | stimulated"]
    sim = gan.sample({"B | stimulated": 4}, seed=0)
    assert sim.obs[["cell_type", "condition"]].drop_duplicates().values.tolist() == [["B", "stimulated"]]


def test_epochs_default_from_config(toy, monkeypatch):
    monkeypatch.setitem(config.EPOCHS, "gan", {"ci": 2, "workshop": 3})
    with config.use_tier("workshop"):
        gan = fit_gan(toy, groupby="cell_type", **{k: v for k, v in FAST.items() if k != "epochs"})
    assert len(gan.history) == 3


def test_device_default_follows_config(toy, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "cpu")
    gan = fit_gan(toy, groupby="cell_type", **{**FAST, "epochs": 1, "device": None})
    assert gan.device == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_requested_but_absent(toy):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fit_gan(toy, groupby="cell_type", **{**FAST, "device": "cuda"})


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_numbers(toy):
    opts = {**FAST, "epochs": 3}
    a = fit_gan(toy, groupby="cell_type", seed=5, **opts)
    b = fit_gan(toy, groupby="cell_type", seed=5, **opts)
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"), b.history.drop(columns="seconds"))
    sa, sb = a.sample(seed=2), b.sample(seed=2)
    assert (sa.layers["counts"] != sb.layers["counts"]).nnz == 0
    other_fit = fit_gan(toy, groupby="cell_type", seed=6, **opts).sample(seed=2)
    assert (sa.layers["counts"] != other_fit.layers["counts"]).nnz > 0
    assert (sa.layers["counts"] != a.sample(seed=3).layers["counts"]).nnz > 0


def test_global_torch_rng_untouched(toy):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_gan(toy, groupby="cell_type", **{**FAST, "epochs": 1})
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- gradient penalty


def _linear(w: torch.Tensor):
    return lambda x, code: x @ w


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 5, generator=gen), torch.randn(16, 5, generator=gen)
    w = torch.randn(5, generator=gen)
    w = w / w.norm()
    gp = gradient_penalty(_linear(w), real, fake, torch.zeros(16, 2), torch.rand(16, 1, generator=gen))
    assert float(gp.detach()) == pytest.approx(0.0, abs=1e-10)
    # gradient norm 3 everywhere: (3 - 1)^2 = 4
    gp3 = gradient_penalty(_linear(3 * w), real, fake, torch.zeros(16, 2), torch.rand(16, 1, generator=gen))
    assert float(gp3.detach()) == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_hand_computed_quadratic_critic():
    # critic(x) = ||x||^2 / 2 has gradient x_hat; x_hat = 0.25 * real + 0.75 * fake
    real = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    eps = torch.tensor([[0.25], [0.25]])
    gp = gradient_penalty(lambda x, c: 0.5 * (x**2).sum(1), real, fake, torch.zeros(2, 1), eps)
    # x_hat = (1, 0) and (0, 3): norms 1 and 3 -> ((0)^2 + (2)^2) / 2 = 2
    assert float(gp.detach()) == pytest.approx(2.0)


def test_gradient_penalty_keeps_the_graph():
    w = torch.tensor([2.0, 0.0], requires_grad=True)
    gp = gradient_penalty(lambda x, c: x @ w, torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3, 1), torch.rand(3, 1))
    gp.backward()
    assert w.grad is not None and float(w.grad[0]) == pytest.approx(2.0)  # d/dw0 of (|w0| - 1)^2 at 2


# --------------------------------------------------------------------------- diversity


def test_diversity_hand_computed_and_collapse():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    a = ad.AnnData(x, obs=pd.DataFrame({"cell_type": ["A", "A", "B", "B", "B"]}, index=list("abcde")))
    pca = tk.metrics.fit_pca(x, n_comps=2)
    d = diversity(a, groupby="cell_type", pca=pca)
    assert d.name == "diversity"
    assert d["A"] == pytest.approx(2.5)  # pairs (0,5,5,0) / 4, rotation keeps distances
    assert d["B"] == pytest.approx(0.0)  # three identical cells: a collapsed mode


def test_diversity_needs_a_fitted_pca(toy):
    with pytest.raises(ValueError, match="fitted PCA"):
        diversity(toy, groupby="cell_type", pca=None)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"n_critic": 0}, "n_critic"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": 64}, "hidden"),
        ({"hidden": (32, -1)}, "hidden layer width"),
        ({"gp_weight": -1.0}, "gp_weight"),
        ({"lr": 0.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"gp_weight": float("nan")}, "gp_weight"),
        ({"betas": 0.5}, "betas"),
        ({"betas": (0.5, "x")}, "betas"),
        ({"betas": (0.5,)}, "betas"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"critic_input": "logits"}, "critic_input"),
        ({"groupby": ()}, "groupby"),
    ],
)
def test_bad_options(toy, options, match):
    with pytest.raises(ValueError, match=match):
        fit_gan(toy, **{"groupby": "cell_type", **FAST, **options})


def test_log_normalized_data_rejected(toy):
    with pytest.raises(ValueError, match="non-integer"):
        fit_gan(toy, groupby="cell_type", layer=None, **FAST)
    no_counts = toy.copy()
    del no_counts.layers["counts"]
    with pytest.raises(ValueError, match="no 'counts' layer"):
        fit_gan(no_counts, groupby="cell_type", **FAST)


def test_missing_column(toy):
    with pytest.raises(ValueError, match="missing column"):
        fit_gan(toy, groupby=("cell_type", "donor"), **FAST)


def test_group_with_one_cell(toy):
    bad = toy.copy()
    bad.obs["cell_type"] = bad.obs["cell_type"].astype(str)
    bad.obs.iloc[0, bad.obs.columns.get_loc("cell_type")] = "lonely"
    with pytest.raises(ValueError, match="fewer than 2 cells"):
        fit_gan(bad, groupby="cell_type", **FAST)


def test_cells_without_counts(toy):
    bad = toy.copy()
    counts = bad.layers["counts"].toarray()
    counts[3] = 0
    bad.layers["counts"] = sp.csr_matrix(counts)
    with pytest.raises(ValueError, match="no counts"):
        fit_gan(bad, groupby="cell_type", **FAST)


def test_too_few_genes(toy):
    with pytest.raises(ValueError, match="at least 2 genes"):
        fit_gan(toy[:, :1].copy(), groupby="cell_type", **FAST)


def test_unknown_group_when_sampling(fitted):
    with pytest.raises(ValueError, match="not fitted on"):
        fitted.sample({"C": 3})
    with pytest.raises(ValueError, match="unknown group"):
        fitted.proportions(["C"])


# --------------------------------------------------------------------------- plots


def test_gan_history_plot(fitted):
    fig = plotting.gan_history(fitted.history)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    losses, distance = fig.axes
    labels = [ln.get_label() for ln in losses.get_lines() if not ln.get_label().startswith("_")]
    assert labels == ["critic loss", "generator loss"]
    np.testing.assert_allclose(losses.get_lines()[0].get_ydata(), fitted.history["critic_loss"])
    np.testing.assert_allclose(distance.get_lines()[0].get_ydata(), fitted.history["wasserstein"])
    assert "epoch" in losses.get_xlabel() and "Wasserstein" in distance.get_ylabel()
    with pytest.raises(ValueError, match="missing column"):
        plotting.gan_history(fitted.history.drop(columns="wasserstein"))


def test_embedding_overlay_plot(fitted, toy):
    sims = {"GAN": fitted.sample(seed=0), "GAN, 30 cells": fitted.sample(30, seed=1)}
    fig = plotting.embedding_overlay(toy, sims, color="cell_type")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [ax.get_title().split(" (")[0] for ax in fig.axes] == ["real", "GAN", "GAN, 30 cells"]
    points = [sum(len(c.get_offsets()) for c in ax.collections) for ax in fig.axes]
    assert points == [toy.n_obs, toy.n_obs, 30]
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()
    assert "PC1" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="genes"):
        plotting.embedding_overlay(toy, {"bad": toy[:, :5].copy()})


def test_diversity_comparison_plot():
    table = pd.DataFrame({"real": [10.0, 12.0], "GAN": [9.0, 4.0], "collapsed": [5.0, 3.0]}, index=["A", "B"])
    fig = plotting.diversity_comparison(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == sorted(table.to_numpy().ravel().tolist())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["real", "GAN", "collapsed"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B"]
    assert "diversity" in ax.get_xlabel()
    with pytest.raises(ValueError, match="non-empty"):
        plotting.diversity_comparison(pd.DataFrame())


def test_augmentation_results_plot():
    df = pd.DataFrame({"training set": ["real", "+ GAN", "+ GAN"], "recall": [0.4, 0.6, 0.8], "f1": [0.5, 0.7, 0.7]})
    fig = plotting.augmentation_results(df)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    recall_ax = fig.axes[0]
    assert [p.get_width() for p in recall_ax.patches] == pytest.approx([0.4, 0.7])  # bars are means
    dots = [ln.get_xdata().tolist() for ln in recall_ax.get_lines()]
    assert dots == [[0.4], [0.6, 0.8]]  # one dot per run
    assert [t.get_text() for t in recall_ax.get_yticklabels()] == ["real", "+ GAN"]
    assert "recall" in recall_ax.get_xlabel() and "f1" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="missing column"):
        plotting.augmentation_results(df.drop(columns="f1"))
    with pytest.raises(ValueError, match="empty"):
        plotting.augmentation_results(df.iloc[:0])
