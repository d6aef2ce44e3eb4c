"""The timeseries plugin: real CSV and .npy files, every error, and anymodal's contract checks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_modality
from anymodal_timeseries.io import write_csv
from anymodal_timeseries.synthetic import SHAPES

RNG = np.random.default_rng(0)
SERIES = RNG.normal(size=(50, 3)).round(4)  # [T=50, C=3], exactly representable in CSV


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good and bad series files, written for real."""
    root = tmp_path_factory.mktemp("timeseries")
    write_csv(root / "header.csv", SERIES, header=["x", "y", "z"])
    write_csv(root / "plain.csv", SERIES)
    np.save(root / "good.npy", SERIES.astype(np.float32))
    np.save(root / "mono.npy", SERIES[:, 0])
    (root / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    (root / "text_cell.csv").write_text("1,2,3\n4,five,6\n")
    (root / "nan.csv").write_text("1,2,3\n4,nan,6\n")
    (root / "blank_cell.csv").write_text("1,2,3\n4,,6\n")
    (root / "header_only.csv").write_text("a,b,c\n")
    (root / "empty.csv").write_text("")
    write_csv(root / "two_channels.csv", SERIES[:, :2])
    nan = SERIES.copy()
    nan[7, 2] = np.nan
    np.save(root / "nan.npy", nan)
    inf = SERIES.copy()
    inf[3, 0] = np.inf
    np.save(root / "inf.npy", inf)
    np.save(root / "empty.npy", np.zeros((0, 3)))
    np.save(root / "four_channels.npy", RNG.normal(size=(20, 4)))
    np.save(root / "cube.npy", RNG.normal(size=(2, 20, 3)))
    np.save(root / "strings.npy", np.array([["a", "b", "c"]]))
    (root / "corrupt.npy").write_bytes(b"\x93NUMPY this is not a real header" * 4)
    (root / "series.txt").write_text("1,2,3\n")
    return root


def _problem(path: Path, spec: anymodal.ModalitySpec | None = None) -> str:
    spec = spec or anymodal.get_modality("timeseries")
    with pytest.raises(anymodal.DataError) as info:
        spec.load(path)
    assert str(path) in str(info.value), "a DataError must name the file"
    return info.value.problem


# -- loading ----------------------------------------------------------------------------


def test_csv_with_and_without_header_and_npy_read_the_same_series(files: Path) -> None:
    spec = anymodal.get_modality("timeseries")
    expected = torch.tensor(SERIES, dtype=torch.float32)
    for name in ("header.csv", "plain.csv", "good.npy"):
        raw = spec.load(files / name)
        assert raw.dtype == torch.float32 and raw.shape == (50, 3), name
        torch.testing.assert_close(raw, expected, msg=name)
    torch.testing.assert_close(spec.load(str(files / "plain.csv")), expected)  # str paths too
    torch.testing.assert_close(spec.load(SERIES), expected)  # and in-memory arrays
    torch.testing.assert_close(spec.load(torch.from_numpy(SERIES)), expected)


def test_file_bytes_are_read_like_files(files: Path) -> None:
    spec = anymodal.get_modality("timeseries")
    expected = torch.tensor(SERIES, dtype=torch.float32)
    for name in ("header.csv", "good.npy"):
        torch.testing.assert_close(spec.load((files / name).read_bytes()), expected, msg=name)
    for data, words in [((files / "ragged.csv").read_bytes(), "ragged rows"),
                        ((files / "corrupt.npy").read_bytes(), "not a readable .npy"),
                        (b"\xff\xfe\x00garbage", "neither .npy data nor UTF-8"),
                        (b"", "empty")]:
        with pytest.raises(anymodal.DataError, match=words) as info:
            spec.load(data)
        assert "bytes>" in str(info.value)


def test_single_channel_series_may_be_one_dimensional(files: Path) -> None:
    mono = anymodal.get_modality("timeseries", channels=1)
    assert mono.load(files / "mono.npy").shape == (50, 1)
    assert "channels" in _problem(files / "mono.npy")  # 1-D is [T, 1], not 3 channels


@pytest.mark.parametrize(("name", "words"), [
    ("missing.csv", ["not found"]),
    ("ragged.csv", ["line 3", "2 columns", "ragged"]),
    ("text_cell.csv", ["line 2", "column 2", "'five'", "not a number"]),
    ("blank_cell.csv", ["line 2", "column 2", "not a number"]),
    ("nan.csv", ["NaN", "time step 1, channel 1"]),
    ("header_only.csv", ["empty"]),
    ("empty.csv", ["empty"]),
    ("two_channels.csv", ["2 channels", "channels=3"]),
    ("nan.npy", ["NaN", "time step 7, channel 2"]),
    ("inf.npy", ["infinite", "time step 3, channel 0"]),
    ("empty.npy", ["empty", "0 time steps"]),
    ("four_channels.npy", ["4 channels", "channels=3"]),
    ("cube.npy", ["(2, 20, 3)", "[time, channels]"]),
    ("strings.npy", ["expected numbers"]),
    ("corrupt.npy", ["not a readable .npy"]),
    ("series.txt", ["unsupported file type", ".txt"]),
])
def test_every_bad_file_is_a_data_error_naming_it(files: Path, name: str,
                                                  words: list[str]) -> None:
    problem = _problem(files / name)
    for word in words:
        assert word in problem, f"{name}: {word!r} not in {problem!r}"


def test_a_folder_and_an_unknown_object_are_data_errors(files: Path) -> None:
    assert "is not a file" in _problem(files)
    with pytest.raises(anymodal.DataError, match="expected a path"):
        anymodal.get_modality("timeseries").load(42)


def test_modality_contract_with_bad_sources(files: Path) -> None:
    bad = [files / n for n in ("missing.csv", "ragged.csv", "text_cell.csv", "nan.npy",
                               "empty.npy", "four_channels.npy", "corrupt.npy")]
    check_modality(anymodal.get_modality("timeseries"), bad_sources=bad)
    check_modality(anymodal.get_modality("timeseries", channels=1, length=16, num_classes=9),
                   bad_sources=[str(files / "good.npy")])


# -- transform and collate --------------------------------------------------------------


def test_eval_crop_is_the_standardised_centre_and_train_crops_vary(files: Path) -> None:
    spec = anymodal.get_modality("timeseries", length=20)
    raw = spec.load(files / "good.npy")
    item = spec.transform(raw, False)
    assert item["series"].shape == (20, 3) and item["mask"].all()
    whole = (raw - raw.mean(0)) / raw.std(0, unbiased=False)
    torch.testing.assert_close(item["series"], whole[15:35], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(spec.transform(raw, False)["series"], item["series"])
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        crop = spec.transform(raw, True)["series"]
        # Every training crop is a window of the same standardised series.
        matches = [s for s in range(31) if torch.allclose(crop, whole[s:s + 20], atol=1e-4)]
        assert len(matches) == 1
        starts.add(matches[0])
    assert len(starts) > 3, f"random crops all started at {starts}"


def test_short_series_are_padded_and_masked_and_constant_channels_are_zero() -> None:
    spec = anymodal.get_modality("timeseries", length=8)
    raw = torch.tensor([[1.0, 5.0, 0.0], [2.0, 5.0, 1.0], [3.0, 5.0, 0.0]])
    item = spec.transform(raw, True)
    assert item["mask"].tolist() == [True] * 3 + [False] * 5
    assert torch.equal(item["series"][3:], torch.zeros(5, 3))
    real = item["series"][:3]
    torch.testing.assert_close(real.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert torch.equal(real[:, 1], torch.zeros(3)), "a constant channel must become zeros"
    assert torch.isfinite(item["series"]).all()


def test_transform_rejects_a_series_of_the_wrong_shape() -> None:
    with pytest.raises(anymodal.DataError, match="channels=3"):
        anymodal.get_modality("timeseries").transform(torch.zeros(10, 2), False)


def test_collate_stacks_series_and_masks() -> None:
    spec = anymodal.get_modality("timeseries", length=8)
    items = [spec.transform(torch.randn(t, 3), False) for t in (3, 8, 12)]
    batch = spec.collate(items)
    assert batch["series"].shape == (3, 8, 3) and batch["mask"].shape == (3, 8)
    assert batch["mask"].sum(1).tolist() == [3, 8, 8]


def test_spec_functions_pickle_for_dataloader_workers(files: Path) -> None:
    spec = anymodal.get_modality("timeseries", length=16)
    load, transform, synthesize = pickle.loads(
        pickle.dumps((spec.load, spec.transform, spec.synthesize)))
    item = transform(load(files / "good.npy"), False)
    assert torch.equal(item["series"], spec.transform(spec.load(files / "good.npy"),
                                                      False)["series"])
    assert len(synthesize(2, torch.Generator().manual_seed(0))) == 2


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(anymodal.ConfigError, match="channels must be >= 1"):
        anymodal.get_modality("timeseries", channels=0)
    with pytest.raises(anymodal.ConfigError, match="lenght"):
        anymodal.get_modality("timeseries", lenght=10)


# -- synthetic data ---------------------------------------------------------------------


def test_synthetic_labels_pick_the_waveform_and_the_frequency_band() -> None:
    spec = anymodal.get_modality("timeseries", num_classes=8, noise=0.0, length=256)
    labels = torch.arange(8)
    items = spec.synthesize(8, torch.Generator().manual_seed(3), labels)
    distinct = [len(torch.unique(item["series"][:, 0])) for item in items]
    assert SHAPES[1] == "square" and distinct[1] == 2 and distinct[5] == 2
    assert min(distinct[0], distinct[2], distinct[3]) > 50

    def crossings(item: dict[str, torch.Tensor]) -> int:
        signs = torch.sign(item["series"][:, 0])
        return int((signs[1:] != signs[:-1]).sum())

    # Band 1 (classes 4..7) has about twice the frequency of band 0 (classes 0..3).
    assert 1.6 < crossings(items[4]) / crossings(items[0]) < 2.4
    assert 1.6 < crossings(items[6]) / crossings(items[2]) < 2.4


def test_synthesize_is_seeded_and_wraps_labels_around_num_classes() -> None:
    spec = anymodal.get_modality("timeseries", length=32)
    first = spec.synthesize(4, torch.Generator().manual_seed(1), torch.tensor([0, 1, 2, 3]))
    again = spec.synthesize(4, torch.Generator().manual_seed(1), torch.tensor([4, 5, 6, 7]))
    other = spec.synthesize(4, torch.Generator().manual_seed(2), torch.tensor([0, 1, 2, 3]))
    for a, b, c in zip(first, again, other):
        assert torch.equal(a["series"], b["series"])
        assert not torch.equal(a["series"], c["series"])
    with pytest.raises(ValueError, match="3 labels for n=4"):
        spec.synthesize(4, torch.Generator(), torch.arange(3))


# -- the encoder ------------------------------------------------------------------------


def test_encoder_contract() -> None:
    spec = anymodal.get_encoder_spec("timeseries_cnn1d")
    check_encoder(spec)
    # in_channels is not repeated: the encoder takes it from the modality's channels.
    check_encoder(spec, params={"hidden": 16, "depth": 2, "width": 24, "dropout": 0.1},
                  modality_params={"channels": 2, "length": 40})
    mono = anymodal.get_modality("timeseries", channels=1)
    assert anymodal.create_encoder("timeseries_cnn1d", mono).config.in_channels == 1
    with pytest.raises(anymodal.ConfigError, match="in_channels=4 differs"):
        anymodal.create_encoder("timeseries_cnn1d", mono, in_channels=4)


def test_encoder_output_ignores_how_much_padding_follows_the_series() -> None:
    torch.manual_seed(0)
    encoder = anymodal.create_encoder("timeseries_cnn1d", hidden=16, depth=3).eval()
    raw = torch.randn(30, 3)
    short = anymodal.get_modality("timeseries", length=40)
    long = anymodal.get_modality("timeseries", length=90)
    with torch.no_grad():
        a = encoder(short.collate([short.transform(raw, False)]))
        b = encoder(long.collate([long.transform(raw, False)]))
        unmasked = encoder(long.collate([long.transform(raw, False)])["series"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, unmasked, atol=1e-3), "the mask must matter"


def test_encoder_errors_name_the_parameter() -> None:
    encoder = anymodal.create_encoder("timeseries_cnn1d", in_channels=2)
    with pytest.raises(ValueError, match="in_channels=2"):
        encoder(torch.zeros(1, 10, 3))
    with pytest.raises(anymodal.ConfigError, match="kernel_size must be odd"):
        anymodal.create_encoder("timeseries_cnn1d", kernel_size=4)
    with pytest.raises(anymodal.ConfigError, match="kernal_size"):
        anymodal.create_encoder("timeseries_cnn1d", kernal_size=3)
    assert "timeseries_cnn1d" in anymodal.list_encoders("timeseries")
