"""Recurrent LIF network 700-200-20 on the Spiking Heidelberg Digits (SHD).

    python -m experiments.train --config experiments/configs/snn_shd.py --workdir workdirs/snn_shd

Trains a recurrent LIF network on SHD's spike events, binned on the host into
T = 100 frames over 1.4 s (as Zenke's SHD tutorial bins them).

The files ``shd_train.h5`` and ``shd_test.h5`` (gunzipped, from
https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/) are read from
$HTAF_SHD_DIR (default ~/data/shd; ``--config.data_dir`` overrides); without
them the run stops with a message naming that folder. Each sample is a frame
sequence (T, 700) of event counts; the hidden layer is a Dense followed by an
all-to-all recurrent LIF (snnTorch's ``RLeaky``), the output is the mean over
time of the readout layer's currents.
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.dataset = "shd"
    # SHD's events binned into event_num_steps frames over event_max_time seconds.
    config.event_num_steps = 100
    config.event_max_time = 1.4
    config.num_epochs = 30
    config.batch_size = 128
    config.eval_batch_size = 256
    config.learning_rate = 1e-3
    config.model.name = "rsnn"
    config.model.hidden = (200,)
    config.model.all_to_all = True
    config.model.beta = 0.9
    config.model.threshold = 1.0
    config.model.reset = "subtract"
    config.model.readout = "membrane"
    config.model.readout_beta = 0.0
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
