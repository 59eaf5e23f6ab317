"""Any TFDS image-classification dataset by name, through ``tfds.testing.mock_data``
(no download), the Fashion-MNIST fallback decision, and augmentation."""

from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from htaf_jax import data as data_lib
from htaf_jax.data import pipeline, sources

SIZES = {"train": 40, "test": 20}


class _Source:
    """A random-access data source of fake records shaped as the dataset's features."""

    def __init__(self, builder, split):
        image_key, label_key = sources.record_keys(builder)
        shape = builder.info.features[image_key].shape
        classes = builder.info.features[label_key].num_classes
        rng = np.random.default_rng(abs(hash((builder.name, split))) % 2**32)
        n = SIZES[split]
        self.records = [
            {
                image_key: rng.integers(0, 256, shape, dtype=np.uint8),
                label_key: np.int64(i % classes),
            }
            for i in range(n)
        ]
        self.split = split

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __getitems__(self, keys):
        return [self.records[i] for i in keys]


def _fake_as_data_source(self, split=None, **kwargs):
    return _Source(self, split)


@pytest.fixture
def mocked_tfds(tmp_path, monkeypatch):
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(tmp_path / "no-fashion-mnist"))
    sources._read_split.cache_clear()  # the cache must not leak fake splits into other tests
    with tfds.testing.mock_data(as_data_source_fn=_fake_as_data_source):
        yield str(tmp_path / "tfds")
    sources._read_split.cache_clear()


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),
        ("svhn_cropped", (32, 32, 3), 10),
        ("mnist", (28, 28, 1), 10),
    ],
)
def test_any_tfds_dataset_by_name(mocked_tfds, name, shape, classes):
    splits = data_lib.load_splits(name, mocked_tfds, validation_size=8)
    assert splits.train.images.shape == (32,) + shape and splits.train.images.dtype == np.uint8
    assert splits.eval.images.shape == (8,) + shape and splits.eval_split == "validation"
    assert splits.num_classes == classes
    np.testing.assert_array_equal(splits.train.labels, np.arange(32) % classes)
    # Normalisation fitted on the training split, per channel.
    x = splits.train.images.reshape(-1, shape[-1]) / 255.0
    np.testing.assert_allclose(splits.normalizer.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(splits.normalizer.std, x.std(0), rtol=1e-5)
    images, labels = next(
        data_lib.train_batches(
            splits.train, splits.normalizer, 16, seed=0, epoch=0, crop_padding=4, flip=True
        )
    )
    assert images.shape == (16,) + shape and images.dtype == np.float32
    test = data_lib.load_splits(name, mocked_tfds, test_subset=5)
    assert test.eval_split == "test" and test.eval.images.shape == (5,) + shape
    # The label names figures and explanations print: TFDS's, one per class (a mocked
    # builder knows no names: CIFAR's come with its download, so they are the digits).
    assert data_lib.class_names(name, mocked_tfds) == [str(c) for c in range(classes)]


def test_class_names_of_the_installed_fashion_mnist():
    assert data_lib.class_names("fashion_mnist")[:2] == ["T-shirt/top", "Trouser"]


def test_fashion_mnist_falls_back_to_tfds_when_not_installed_and_online(mocked_tfds):
    with mock.patch.object(sources, "host_can_download", return_value=True):
        splits = data_lib.load_splits("fashion_mnist", mocked_tfds)
        builder = sources.builder_for("fashion_mnist", mocked_tfds)
    assert builder.name == "fashion_mnist"  # TFDS's, not the local htaf_fashion_mnist
    assert splits.train.images.shape == (40, 28, 28, 1) and splits.num_classes == 10


def test_fashion_mnist_offline_and_not_installed_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(tmp_path))
    download = mock.Mock(side_effect=AssertionError("must not download offline"))
    with (
        mock.patch.object(sources, "host_can_download", return_value=False),
        mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", download),
    ):
        with pytest.raises(data_lib.DatasetNotFoundError) as e:
            sources.builder_for("fashion_mnist", str(tmp_path / "tfds"))
    message = str(e.value)
    assert message.startswith("Fashion-MNIST not found") and len(message.splitlines()) == 1
    assert "apt-get install dataset-fashion-mnist" in message and "fashion_mnist" in message
    download.assert_not_called()


def test_fashion_mnist_online_but_the_download_fails_names_both(tmp_path, monkeypatch):
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(tmp_path))
    with (
        mock.patch.object(sources, "host_can_download", return_value=True),
        mock.patch.object(
            tfds.core.DatasetBuilder,
            "download_and_prepare",
            side_effect=ConnectionError("no route"),
        ),
    ):
        with pytest.raises(data_lib.DatasetNotFoundError) as e:
            sources.builder_for("fashion_mnist", str(tmp_path / "tfds"))
    message = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "TFDS's fashion_mnist failed too" in message and "ConnectionError" in message


def test_host_can_download_is_a_quick_connection_test():
    with mock.patch.object(sources.socket, "create_connection", side_effect=OSError):
        assert not sources.host_can_download()
    with mock.patch.object(sources.socket, "create_connection") as conn:
        assert sources.host_can_download(timeout=0.5)
    conn.assert_called_once_with(sources.DOWNLOAD_HOST, timeout=0.5)


def test_varying_image_sizes_are_refused(mocked_tfds):
    builder = tfds.builder("caltech101", data_dir=mocked_tfds)
    with pytest.raises(ValueError, match="images of varying size"):
        sources.record_keys(builder)


# ------------------------------------------------------------ augmentation --
def test_crop_and_flip_hand_case():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 1) + 1
    out = pipeline.crop_and_flip(img, 1, np.array([[0, 0], [1, 1]]), np.array([False, True]))
    # Image 0: window at the top-left of the padded image: a zero row and column first.
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    # Image 1: the centre window (the image itself), mirrored left-right.
    np.testing.assert_array_equal(out[1, :, :, 0], img[1, :, ::-1, 0])
    np.testing.assert_array_equal(
        pipeline.crop_and_flip(img, 0, np.zeros((2, 2), int), np.zeros(2, bool)), img
    )


def test_augmentation_is_off_by_default_seeded_and_split_by_rows():
    rng = np.random.default_rng(0)
    split = data_lib.ArraySplit(
        rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8), np.arange(64, dtype=np.int32) % 10
    )
    norm = data_lib.Normalizer.fit(split.images)
    plain = list(data_lib.train_batches(split, norm, 16, seed=1, epoch=2))
    again = list(
        data_lib.train_batches(split, norm, 16, seed=1, epoch=2, crop_padding=0, flip=False)
    )
    for (a, _), (b, _) in zip(plain, again):
        np.testing.assert_array_equal(a, b)
    aug = list(data_lib.train_batches(split, norm, 16, seed=1, epoch=2, crop_padding=2, flip=True))
    assert not np.allclose(aug[0][0], plain[0][0])
    resumed = list(
        data_lib.train_batches(
            split, norm, 16, seed=1, epoch=2, start_step=2, crop_padding=2, flip=True
        )
    )
    np.testing.assert_array_equal(resumed[0][0], aug[2][0])  # resume sees the same batch
    halves = [
        next(
            data_lib.train_batches(
                split, norm, 16, seed=1, epoch=2, crop_padding=2, flip=True, rows=r
            )
        )
        for r in ((0, 8), (8, 16))
    ]
    np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), aug[0][0])
    with pytest.raises(ValueError, match="crop_padding must be ≥ 0"):
        next(data_lib.train_batches(split, norm, 16, seed=0, epoch=0, crop_padding=-1))
