"""The `lmlab` command, run as a real process."""

import json
import os
import shutil
import subprocess
import sys

import pytest


def lmlab(*args, cwd=None, timeout=240):
    env = dict(os.environ, LMLAB_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "lmlab.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def test_env_reports_versions_device_and_data(data_dir):
    out = lmlab("env")
    assert out.returncode == 0, out.stderr
    for word in ("torch", "transformers", "device", "threads", "data cache", "tinyshakespeare"):
        assert word in out.stdout


def test_env_check_device_on_cpu():
    out = lmlab("env", "--check-device", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "device check on cpu" in out.stdout


def test_data_verify_good_and_bad_folders(data_dir, tmp_path):
    good = lmlab("data", "verify", str(data_dir))
    assert good.returncode == 0 and good.stdout.count("ok ") == 2, good.stdout
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("not shakespeare")
    bad = lmlab("data", "verify", str(tmp_path))
    assert bad.returncode == 1 and "BAD" in bad.stdout


@pytest.mark.slow
def test_train_sample_and_refuse_to_overwrite(data_dir, tmp_path):
    run = tmp_path / "run"
    small = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--batch-size", "8",
             "--threads", "1"]
    out = lmlab("train", "--out", str(run), "--max-steps", "20", "--eval-every", "10", *small)
    assert out.returncode == 0, out.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["metrics"]["steps"] == 20 and record["config"]["max_steps"] == 20
    history = json.loads((run / "history.json").read_text())
    assert history["val_losses"][-1] < history["val_losses"][0]
    assert (run / "checkpoints" / "latest").is_file() and (run / "tokenizer.json").is_file()

    again = lmlab("train", "--out", str(run), "--max-steps", "20", *small)
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = lmlab("train", "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr

    s = lmlab("sample", "--checkpoint", str(run), "--prompt", "ROMEO:", "--max-new-tokens", "20", "--seed", "1")
    assert s.returncode == 0, s.stderr
    assert s.stdout.startswith("ROMEO:") and len(s.stdout.splitlines()[0]) >= 6
    s2 = lmlab("sample", "--checkpoint", str(run), "--prompt", "ROMEO:", "--max-new-tokens", "20", "--seed", "1")
    assert s2.stdout == s.stdout  # seeded samples are reproducible

    missing = lmlab("train", "--out", str(tmp_path / "nothing"), "--resume")
    assert missing.returncode == 2 and "nothing to resume" in missing.stderr


def test_resume_with_a_run_record_of_another_version_says_what_is_missing(tmp_path, capsys):
    from lmlab.cli import main

    (tmp_path / "run.json").write_text(json.dumps({"lmlab_version": "0.0.1", "config": {"model": "gpt", "lr": 1e-3}}))
    with pytest.warns(UserWarning, match="written by lmlab 0.0.1"):
        assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "written by lmlab 0.0.1" in err and "lacks the settings ['corpus'" in err and "start a new run" in err
    (tmp_path / "run.json").write_text("{damaged")
    assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_run_config_round_trips_and_names_missing_or_unknown_settings():
    from lmlab.runconfig import RunConfig

    run = RunConfig.new("lstm", "cpu", {"n_layer": 2, "n_head": 4, "lr": None}, corpus="tinyshakespeare",
                        tokenizer="char", vocab_size=512, seed=1, threads=1)
    assert run.settings.n_layer == 2 and run.settings.lr == 3e-3  # the preset, changed by the options given
    data = run.to_dict()
    assert data["model"] == "lstm" and "n_head" not in data  # an LSTM has no heads
    assert RunConfig.from_dict(json.loads(json.dumps(data))) == run
    with pytest.raises(ValueError, match=r"lacks the settings \['n_hidden'\]"):
        RunConfig.from_dict({k: v for k, v in data.items() if k != "n_hidden"})
    with pytest.raises(ValueError, match=r"does not know: \['n_head'\]"):
        RunConfig.from_dict({**data, "n_head": 4})
    assert run.train_config(device="cpu").max_steps == run.settings.max_steps


TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-every",
        "2", "--threads", "1", "--seed", "3", "--no-progress"]


def test_resume_applies_max_steps_and_accepts_the_same_command_line(data_dir, tmp_path, capsys):
    from lmlab.cli import main

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "2"]) == 0
    with pytest.warns(UserWarning, match="max_steps: checkpoint 2, now 4"):  # a longer schedule: said, not refused
        assert main(["train", "--out", str(run), "--resume", "--max-steps", "4"]) == 0  # train longer
    assert json.loads((run / "history.json").read_text())["steps"][-1] == 4
    assert json.loads((run / "run.json").read_text())["config"]["max_steps"] == 4
    # the whole first command line again, with --resume: nothing else differs from the run, so it goes on
    with pytest.warns(UserWarning, match="max_steps: checkpoint 4, now 6"):
        assert main(["train", "--out", str(run), *TINY, "--max-steps", "6", "--resume"]) == 0
    assert json.loads((run / "history.json").read_text())["steps"][-1] == 6
    capsys.readouterr()


def test_overwrite_starts_afresh_with_a_new_tokenizer(data_dir, tmp_path, capsys):
    from lmlab.cli import main
    from lmlab.tokenizers import CharTokenizer, load_tokenizer

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "2"]) == 0
    shutil.rmtree(run / "checkpoints")  # a run killed before its first checkpoint ...
    CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz").save(run / "tokenizer.json")  # ... of other settings
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "2"]) == 2
    assert "pass --resume to continue it or --overwrite to replace it" in capsys.readouterr().err
    assert load_tokenizer(run / "tokenizer.json").vocab_size == 26  # untouched
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "2", "--overwrite"]) == 0
    assert load_tokenizer(run / "tokenizer.json").vocab_size == 65  # made from the corpus again
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000002"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_planted_temporary_file_link_does_not_make_train_overwrite_its_target(data_dir, tmp_path, capsys):
    from lmlab.cli import main

    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("history.json.tmp", "run.json.tmp", "tokenizer.json.tmp"):
        (run / name).symlink_to(victim)
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "2"]) == 0
    assert victim.read_text() == "precious"
    assert json.loads((run / "history.json").read_text())["steps"][-1] == 2
    capsys.readouterr()
