import numpy as np

from robot_stack.store.align import ObservationAssembler
from robot_stack.types import STATE_KEY, capture_ns_key, image_key

MS = 1_000_000


def _img(v):
    return np.full((4, 4, 3), v, dtype=np.uint8)


def test_picks_first_frame_at_or_after_the_state_stamp():
    a = ObservationAssembler(("front",), max_skew_ms=150)
    a.add_image("front", 90 * MS, _img(1), 91 * MS)  # before the control step: stale world
    a.add_state(100 * MS, np.arange(3), 101 * MS)
    a.add_image("front", 150 * MS, _img(2), 152 * MS)  # after the step: what the policy should see
    obs = a.observation(100 * MS)
    assert obs[image_key("front")][0, 0, 0] == 2
    assert obs[capture_ns_key("front")] == 150 * MS
    np.testing.assert_array_equal(obs[STATE_KEY], np.arange(3, dtype=np.float32))


def test_falls_back_to_newest_earlier_frame_within_skew():
    a = ObservationAssembler(("front",), max_skew_ms=50)
    a.add_image("front", 80 * MS, _img(1), 81 * MS)
    a.add_state(100 * MS, np.zeros(3), 101 * MS)
    assert a.observation(100 * MS)[image_key("front")][0, 0, 0] == 1


def test_missing_or_too_old_camera_gives_none():
    a = ObservationAssembler(("front", "wrist"), max_skew_ms=50)
    a.add_state(100 * MS, np.zeros(3), 101 * MS)
    a.add_image("front", 110 * MS, _img(1), 111 * MS)
    a.add_image("wrist", 10 * MS, _img(1), 11 * MS)  # 90 ms too old
    assert a.observation(100 * MS) is None
    assert a.observation(123 * MS) is None  # no state with that stamp


def test_horizon_prunes_old_samples_and_out_of_order_inserts_sorted():
    a = ObservationAssembler(("front",), max_skew_ms=50, horizon_s=1.0)
    for t in range(0, 3000, 100):
        a.add_state(t * MS, np.zeros(3), t * MS)
    a.add_image("front", 2950 * MS, _img(3), 0)
    a.add_image("front", 2910 * MS, _img(2), 0)  # late arrival
    assert a.observation(0) is None  # pruned
    assert a.observation(2900 * MS)[image_key("front")][0, 0, 0] == 2
    assert a.camera_has_frame_after(2900 * MS) and not a.camera_has_frame_after(3000 * MS)
