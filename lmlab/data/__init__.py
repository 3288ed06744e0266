"""Data for the course: real corpora (download, cache, verify), synthetic sources, splits and batches.

Example:
    >>> from lmlab.data import load_text, MarkovSource, LMBatches
    >>> text = load_text("tinyshakespeare")      # 1,115,394 characters
"""

from lmlab.data.batching import ArrayBatches, LMBatches, train_val_split
from lmlab.data.corpora import (
    CORPORA,
    Corpus,
    DownloadError,
    SMSSpam,
    VerifyResult,
    data_dir,
    download_all,
    fetch,
    load_sms_spam,
    load_text,
    read_corpus,
    offline_env,
    verify,
)
from lmlab.data.synthetic import GrammarSource, MarkovSource, Sentence
from lmlab.data.topics import Document, TopicSource

__all__ = [
    "CORPORA",
    "ArrayBatches",
    "Corpus",
    "Document",
    "DownloadError",
    "GrammarSource",
    "LMBatches",
    "MarkovSource",
    "SMSSpam",
    "Sentence",
    "TopicSource",
    "VerifyResult",
    "data_dir",
    "download_all",
    "fetch",
    "load_sms_spam",
    "load_text",
    "read_corpus",
    "offline_env",
    "train_val_split",
    "verify",
]
