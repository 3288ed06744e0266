"""lmlab: a small, readable PyTorch package behind the lmlab course notebooks.

Import what you need from its modules, for example::

    from lmlab.data import load_text, LMBatches
    from lmlab.tokenizers import CharTokenizer
    from lmlab.models import GPT, GPTConfig
    from lmlab.train import train, TrainConfig

`import lmlab` itself is light: heavy libraries are imported by the modules that use them.
"""

__version__ = "0.1.0"
