"""lmlab: a small, readable PyTorch package behind the lmlab course notebooks.

Import what you need from its modules, for example::

    from lmlab.data import load_text, LMBatches
    from lmlab.tokenizers import CharTokenizer
    from lmlab.models import GPT, GPTConfig
    from lmlab.train import train, TrainConfig

`import lmlab` itself is light: heavy libraries are imported by the modules that use them.
"""

import os as _os

# Idle OpenMP threads of PyTorch sleep instead of spinning. On a machine that is busy with other work (a
# browser, a second kernel) spinning threads fight the working ones for the cores: measured on 2 cores under
# load, a training step took about 2.4 s instead of about 0.5 s. On an idle machine sleeping costs about 3%. It
# takes effect only when lmlab is imported before torch (as in the notebooks' setup cell and the `lmlab`
# command); set OMP_WAIT_POLICY yourself to choose otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
