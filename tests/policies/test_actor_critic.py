"""actor_critic policy: units, shapes at batch 1, FiLM/one-hot/language conditioning, checkpoints, text encoders."""

import numpy as np
import pytest
import torch

from robot_stack.policies.actor_critic import CriticHeads, tanh_gaussian_log_prob
from robot_stack.policies.base import make_policy
from robot_stack.policies.checkpoint import load_policy, save_checkpoint
from robot_stack.policies.encoders import EncoderSpec, FiLM, ImageEncoder, SpatialLearnedEmbeddings
from robot_stack.policies.text_encoder import make_text_encoder

TINY = {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16, "image_size_px": 32,
        "actor_hidden_dims": [16], "critic_hidden_dims": [16, 16]}


def test_spatial_learned_embeddings_by_hand():
    sle = SpatialLearnedEmbeddings(channels=1, height=1, width=2, num_features=2)
    with torch.no_grad():
        sle.kernel.copy_(torch.tensor([[[[1.0, 0.0], [2.0, -1.0]]]]))   # K[c=0, h=0, w, f]
    x = torch.tensor([[[[3.0, 5.0]]]])                                     # (B=1, C=1, H=1, W=2)
    assert sle(x).tolist() == [[3 * 1 + 5 * 2, 3 * 0 + 5 * -1]]


def test_encoder_batch_one_and_film_identity_at_init():
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderSpec("resnet_tiny", 8, 4, 8, 16, 32), ("front",), cond_dim=3).eval()
    x = torch.rand(1, 3, 32, 32)
    z0 = enc({"front": x}, torch.zeros(1, 3))
    z1 = enc({"front": x}, torch.ones(1, 3))
    assert z0.shape == (1, 16) and torch.all(z0.abs() < 1)     # tanh bottleneck
    torch.testing.assert_close(z0, z1)                           # zero-initialised FiLM is the identity
    film = FiLM(2, 1)
    with torch.no_grad():
        film.proj.bias.copy_(torch.tensor([1.0, 0.5]))            # γ = 1, β = 0.5: x·2 + 0.5
    assert film(torch.ones(1, 1, 1, 1), torch.zeros(1, 2)).item() == pytest.approx(2.5)


def _per_head_reference(num_heads, latent, cond, act, hidden):
    """The critic written head by head with nn.Linear/LayerNorm (the layout checkpoints had before the heads were
    stacked): h_0 = ReLU(LN(W_0 [cond, a, z])), h_l = ReLU(LN(W_l [h_{l-1}, a, z])), Q = W_out h_L."""
    heads = torch.nn.ModuleList()
    for _ in range(num_heads):
        head, dims = torch.nn.Module(), [cond + act + latent] + [h + act + latent for h in hidden]
        head.layers = torch.nn.ModuleList(torch.nn.Linear(i, h) for i, h in zip(dims, hidden, strict=False))
        head.norms = torch.nn.ModuleList(torch.nn.LayerNorm(h) for h in hidden)
        head.out = torch.nn.Linear(hidden[-1] if hidden else dims[0], 1)
        for p in head.parameters():
            torch.nn.init.normal_(p)            # LayerNorm affine and biases non-trivial too
        heads.append(head)

    def q(z, c, a):
        n = a.shape[1]
        zz, cc = z.unsqueeze(1).expand(-1, n, -1), c.unsqueeze(1).expand(-1, n, -1)
        out = []
        for head in heads:
            x = torch.cat([cc, a, zz], -1)
            for i, (lin, ln) in enumerate(zip(head.layers, head.norms, strict=True)):
                x = torch.relu(ln(lin(x if i == 0 else torch.cat([x, a, zz], -1))))
            out.append(head.out(x).squeeze(-1))
        return torch.stack(out)
    return heads, q


@pytest.mark.parametrize("hidden", [(16, 8), (8,), ()])
def test_stacked_critic_heads_equal_the_per_head_network_and_load_its_checkpoints(hidden):
    torch.manual_seed(0)
    heads, reference = _per_head_reference(5, 6, 3, 4, hidden)
    holder = torch.nn.Module()
    holder.heads = CriticHeads(5, 6, 3, 4, hidden, final_scale=1e-2, layer_norm=True)
    holder.load_state_dict({f"heads.{k}": v for k, v in heads.state_dict().items()})   # old layout -> stacked
    z, c, a = torch.randn(7, 6), torch.randn(7, 3), torch.randn(7, 2, 4)
    q = holder.heads(z, c, a)
    assert q.shape == (5, 7, 2) and len(holder.heads) == 5
    torch.testing.assert_close(q, reference(z, c, a), rtol=1e-5, atol=1e-5)
    # Heads are independent: a gradient through head 2 only reaches head 2's slice of every stacked weight.
    q[2].sum().backward()
    for w in holder.heads.weights:
        assert w.grad[2].abs().sum() > 0 and w.grad[[0, 1, 3, 4]].abs().sum() == 0


def test_stacked_critic_heads_init_orthogonal_per_head_and_small_output():
    torch.manual_seed(0)
    m = CriticHeads(3, 6, 0, 4, (16, 16), final_scale=1e-2, layer_norm=False)
    for i in range(3):
        w = m.weights[0][i]                           # (in 10, out 16): rows orthogonal with gain sqrt(2)
        torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(10), atol=1e-5, rtol=0)
    assert not torch.allclose(m.weights[0][0], m.weights[0][1])        # heads initialised independently
    assert m.weights[-1].abs().max() <= 1e-2 + 1e-6
    assert m(torch.randn(2, 6), None, torch.randn(2, 3, 4)).shape == (3, 2, 3)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    u, mean, log_std = torch.tensor([[0.3, -0.7]]), torch.tensor([[0.1, 0.2]]), torch.tensor([[-0.5, 0.1]])
    normal = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    expected = (normal - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), expected)


@pytest.mark.parametrize("conditioning", ["onehot", "language"])
def test_policy_interface_and_checkpoint_roundtrip(tmp_path, normalizer, schema, obs, conditioning):
    torch.manual_seed(0)
    cfg = {**TINY, "conditioning": conditioning, "tasks": ["pick", "place"], "deploy_task": "place"}
    if conditioning == "language":
        enc = make_text_encoder({"name": "hashing", "dim": 12})
        cfg["task_embedding_dim"] = enc.dim
    policy = make_policy("actor_critic", cfg, normalizer).eval()
    if conditioning == "language":
        policy.task_embeddings.copy_(make_text_encoder({"name": "hashing", "dim": 12}).encode(["pick", "place"]))
    a = policy.select_action(obs)
    low, high = policy.action_bounds()
    assert a.shape == (7,) and np.all(a >= low - 1e-5) and np.all(a <= high + 1e-5)
    samples = policy.sample_actions(obs, 4)
    assert samples.shape == (4, 7) and policy.q_values(obs, samples).shape == (4,)
    # Units: physical -> [-1, 1] -> physical is the identity inside [q01, q99]; gripper 0/1 -> -1/+1.
    phys = torch.tensor(np.stack([low * 0.5 + high * 0.5, low]), dtype=torch.float32)
    norm_a = policy.to_policy_action(phys)
    assert norm_a[1, 6] == -1.0 and torch.all(norm_a.abs() <= 1)
    torch.testing.assert_close(policy.to_physical(norm_a)[:, :5], phys[:, :5], atol=1e-6, rtol=1e-5)
    # BC loss (actor-only) is finite and differentiable.
    batch = {k: torch.tensor(np.asarray(v)).unsqueeze(0).repeat(2, *[1] * np.asarray(v).ndim) for k, v in obs.items()}
    batch["action"] = phys
    loss, _ = policy.train().compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    path = save_checkpoint(policy.eval(), normalizer, schema, tmp_path / "ckpt", 1, step=3)
    loaded, manifest = load_policy(path, expected_schema=schema)
    np.testing.assert_allclose(loaded.select_action(obs), a, rtol=1e-5, atol=1e-6)
    assert manifest.policy_type == "actor_critic" and loaded.config.deploy_task == "place"


def test_text_encoders(tmp_path):
    enc = make_text_encoder({"name": "hashing", "dim": 32})
    e = enc.encode(["put the cube in the bowl", "put the cube in the bowl", "take the cube out of the bowl"])
    assert e.shape == (3, 32)
    torch.testing.assert_close(e[0], e[1])
    assert float(e[0] @ e[2]) < 0.99 and float(e[0].norm()) == pytest.approx(1.0)
    # A local directory that is not a full model (no config.json): safetensors word embeddings + vocab.txt, read as
    # a static word-embedding bag whether or not transformers is installed.
    from safetensors.torch import save_file

    vocab = ["[PAD]", "put", "cube", "bowl", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    table = torch.eye(5, 6)
    save_file({"embeddings.word_embeddings.weight": table}, str(tmp_path / "model.safetensors"))
    local = make_text_encoder({"name": "hf_local", "path": str(tmp_path)})
    assert local._backend == "static"
    out = local.encode(["put cubes"])
    # put -> row 1, cubes -> cube + ##s -> rows 2, 4: mean of three one-hot rows.
    torch.testing.assert_close(out[0], (table[1] + table[2] + table[4]) / 3)
    with pytest.raises(FileNotFoundError):
        make_text_encoder({"name": "hf_local", "path": str(tmp_path / "missing")})


def test_hf_local_text_encoder_runs_a_full_local_model(tmp_path):
    """A full HF directory (config.json + weights + tokenizer, here a tiny random BERT saved offline) runs through
    transformers: mean-pooled last hidden state, one row per text, different texts -> different rows."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "put", "take", "the", "cube", "in", "out", "of", "bowl"]
    (tmp_path / "vocab.txt").write_text("\n".join(words))
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    transformers.BertModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    enc = make_text_encoder({"name": "hf_local", "path": str(tmp_path)})
    assert enc._backend == "transformers" and enc.dim == 16
    e = enc.encode(["put the cube in the bowl", "take the cube out of the bowl"])
    assert e.shape == (2, 16) and torch.isfinite(e).all() and not torch.allclose(e[0], e[1])


def _state_policy(noise: float = 0.0, **extra):
    from robot_stack.policies.normalizer import Normalizer, ee_delta_bounds
    from robot_stack.types import ENV_STATE_KEY

    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.04, 0.04, (100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    norm = Normalizer.fit(actions, rng.normal(size=(100, 14)), env_states=rng.normal(size=(100, 16)),
                          action_bounds=ee_delta_bounds(0.05, 0.25))
    cfg = {"arch": "none", "cameras": [], "use_state": True, "use_environment_state": True, "latent_dim": 16,
           "actor_hidden_dims": [16], "critic_hidden_dims": [16], "low_dim_noise_std": noise, **extra}
    torch.manual_seed(0)
    policy = make_policy("actor_critic", cfg, norm)
    obs = {"observation.state": rng.normal(size=14).astype(np.float32),
           ENV_STATE_KEY: rng.normal(size=16).astype(np.float32)}
    return policy, obs


def test_state_mode_discrete_gripper_and_low_dim_noise():
    policy, obs = _state_policy(noise=0.5)
    assert "observation.environment_state" in policy.observation_keys()
    a = policy.select_action(obs)
    assert a.shape == (7,) and a[6] in (0.0, 1.0) and np.all(np.abs(a[:3]) <= 0.05 + 1e-6)
    samples = policy.sample_actions(obs, 64)
    assert set(np.unique(samples[:, 6])) <= {0.0, 1.0}         # a decision, never a fractional gripper
    batch = {k: torch.as_tensor(v).unsqueeze(0).repeat(4, 1) for k, v in obs.items()}
    policy.eval()
    o1, o2 = policy.prepare_obs(batch), policy.prepare_obs(batch)
    assert torch.equal(o1["state"], o2["state"])                # evaluation: no noise
    policy.train()
    o3 = policy.prepare_obs(batch)
    assert not torch.allclose(o3["state"], o1["state"]) and not torch.allclose(o3["env_state"], o1["env_state"])
    # The actor objective takes the exact expectation over the two gripper decisions.
    mean, log_std = policy.actor_dist(o1)
    loss, logp, q = policy.actor_objective(o1, mean, log_std, torch.tensor(0.1), policy.critic_latent(o1).detach())
    assert loss.shape == logp.shape == q.shape == (4,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert policy.actor_mean.weight.grad is not None


def test_fixed_action_dims_are_never_moved_and_carry_no_probability():
    """A reduced action space (roll, pitch held): every action the policy produces holds them at physical 0, data
    actions reach the critic the same way, log π and the entropy target count only the free dims."""
    from robot_stack.algos.base import make_algo

    policy, obs = _state_policy(fixed_action_dims=[3, 4])
    free, _ = _state_policy()
    with torch.no_grad():                     # a mean far from 0 on every dim: fixing must be what holds them
        policy.actor_mean.bias.fill_(2.0)
    assert policy.select_action(obs)[3:5].tolist() == [0.0, 0.0]
    samples = policy.sample_actions(obs, 32)
    assert np.all(samples[:, 3:5] == 0.0) and np.all(np.abs(samples[:, [0, 1, 2, 5]]) > 0)
    data = torch.tensor([[0.01, 0.02, -0.01, 0.1, -0.1, 0.05, 1.0]])
    assert policy.to_policy_action(data)[0, 3:5].tolist() == [0.0, 0.0]
    batch = {k: torch.as_tensor(v).unsqueeze(0).repeat(4, 1) for k, v in obs.items()}
    o = policy.prepare_obs(batch)
    mean, log_std = policy.actor_dist(o)
    a, logp = policy.sample_from(mean, log_std, 3)
    u = torch.atanh(a[:, 0, [0, 1, 2, 5]].clamp(-1 + 1e-6, 1 - 1e-6))
    arm_only = tanh_gaussian_log_prob(u, mean[:, [0, 1, 2, 5]], log_std[:, [0, 1, 2, 5]])
    g = a[:, 0, 6] > 0
    gripper = torch.where(g, torch.nn.functional.logsigmoid(mean[:, 6]), torch.nn.functional.logsigmoid(-mean[:, 6]))
    torch.testing.assert_close(logp[:, 0], arm_only + gripper, rtol=1e-4, atol=1e-3)
    assert policy.free_action_dim == 5 and free.free_action_dim == 7
    assert make_algo("rlpd", {"target_entropy_factor": 0.5}, policy).target_entropy == -2.5
    with pytest.raises(ValueError, match="not the gripper"):
        _state_policy(fixed_action_dims=[6])


def test_state_mode_refuses_inconsistent_configs():
    from robot_stack.policies.normalizer import Normalizer

    norm = Normalizer.fit(np.zeros((4, 7)), np.zeros((4, 14)))
    with pytest.raises(ValueError, match="reads no cameras"):
        make_policy("actor_critic", {"arch": "none", "cameras": ["front"], "use_state": True}, norm)
    with pytest.raises(ValueError, match="low-dimensional input"):
        make_policy("actor_critic", {"arch": "none", "cameras": []}, norm)


def test_condition_low_dim_encoder_feeds_the_task_to_the_state_encoder():
    """condition_low_dim_encoder: the one-hot enters the first layer of both state encoders, so the same state
    under two tasks gives two latents (without it the latent ignores the task; only the MLPs see it)."""
    tasks = ("put the cube in the bowl", "put the green block in the pot")
    for flag in (False, True):
        policy, obs = _state_policy(tasks=tasks, condition_low_dim_encoder=flag)
        assert policy.actor_encoder.proj.in_features == 30 + (2 if flag else 0)
        assert policy.critic.encoder.proj.in_features == policy.actor_encoder.proj.in_features
        policy.eval()
        batch = {k: torch.as_tensor(v).unsqueeze(0).repeat(2, 1) for k, v in obs.items()}
        batch["task_index"] = torch.tensor([0, 1])
        o = policy.prepare_obs(batch)
        z_actor = policy.actor_encoder(torch.cat([o["state"], o["env_state"]] + ([o["cond"]] if flag else []), -1))
        z_critic = policy.critic_latent(o)
        assert torch.allclose(z_critic[0], z_critic[1]) is (not flag)
        assert torch.allclose(z_actor[0], z_actor[1]) is (not flag)
        # The deployed task conditions select_action through the encoder too.
        policy.config.deploy_task = tasks[0]
        a0 = policy.select_action(obs)
        policy.config.deploy_task = tasks[1]
        assert a0.shape == policy.select_action(obs).shape == (7,)
