"""The package ``elman.data`` re-exports lazily: names resolve, torch only when needed."""

import subprocess
import sys

import pytest

import elman.data


def test_every_exported_name_resolves_to_its_module():
    assert sorted(elman.data.__all__) == sorted(elman.data._EXPORTS)
    for name, module in elman.data._EXPORTS.items():
        value = getattr(elman.data, name)
        assert value is getattr(sys.modules[f"elman.data.{module}"], name)
    assert set(elman.data.__all__) <= set(dir(elman.data))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Vocab'"):
        elman.data.Vocab  # noqa: B018


def run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_table_and_special_tokens_do_not_import_torch():
    run(
        "import sys\n"
        "from elman.data import DATASETS, EOS, UNK, resolve\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )


def test_vocabulary_still_exports_the_special_tokens():
    run(
        "from elman.data import EOS, UNK, Vocabulary\n"
        "from elman.data.vocabulary import EOS as E, UNK as U\n"
        "assert (E, U) == (EOS, UNK) == ('<eos>', '<unk>')\n"
        "assert Vocabulary.build(['a']).itos == [UNK, EOS, 'a']\n"
    )
