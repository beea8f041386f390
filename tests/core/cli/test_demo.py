"""`pneumolab demo` proven against the real running server: a fresh process on a free port,
driven through gradio_client as a browser would drive it, never by calling the function."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image as PILImage

from core.imaging import load_image_file
from core.imaging.display import model_input
from core.ml.inference import predict_probability, prediction_summary
from core.tasks.predict import load_version_model
from core.versions import get_version
from core.workspace import Workspace

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[3]
SERVE_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
# Files SQLite itself creates and removes beside the database while a connection is open.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _expected(ws: Workspace, version_id: int, path: Path, threshold: float | None = None):
    """(probability map, summary, threshold) of the product's own functions for one file."""
    model, meta, dev = load_version_model(ws, get_version(ws, version_id), "cpu")
    loaded = load_image_file(path)
    m = loaded.meta
    image = model_input(loaded.pixels, m.window_center, m.window_width, m.value_min, m.value_max)
    prob = predict_probability(model, image, meta.size, dev, meta.normalisation)
    if threshold is None:
        # A threshold the tiny model surely crosses: about half the image is then predicted.
        threshold = float(np.median(prob))
    return prob, prediction_summary(prob, threshold), threshold


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(SQLITE_SIDE_FILES)
    }


def _wait_until_serving(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"demo did not serve within {SERVE_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM the server's process group (as Ctrl+C would stop it); kill it if it hangs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=STOP_TIMEOUT_S)
        pytest.fail(f"demo did not stop within {STOP_TIMEOUT_S} s of SIGTERM")
    return proc.returncode, out


def _holds_bytes(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.read_bytes() == data]


def _rgb(path: str) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"))


@pytest.mark.timeout(900)
def test_demo_predicts_real_xrays_through_the_running_server(
    imported_workspace,
    cxr_lungs_dir,
    dicom_mono1,
    free_port,
    tmp_path,
    monkeypatch,
    train_and_predict,
):
    ws = imported_workspace(4)
    version_id = train_and_predict(ws)
    xray = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
    prob, summary, threshold = _expected(ws, version_id, xray)
    dicom_prob, dicom_summary, _ = _expected(ws, version_id, dicom_mono1, threshold)
    before = _files(ws.root)

    port = free_port()
    server_tmp = tmp_path / "server-tmp"  # the server's TMPDIR: where Gradio keeps uploads
    server_tmp.mkdir()
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(server_tmp),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    argv = [sys.executable, "-m", "core.cli", "--workspace", str(ws.root), "demo"]
    argv += ["--model", str(version_id), "--port", str(port), "--threshold", repr(threshold)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_serving(proc, url, log)
        monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        client = Client(
            url,
            verbose=False,
            download_files=str(tmp_path / "downloads"),
            analytics_enabled=False,
            httpx_kwargs={"timeout": 300},
        )

        # A real X-ray (JPEG).
        response = client.predict(handle_file(str(xray)), api_name="/predict")
        message, predicted, heatmap, regions, result, boxes = response
        height, width = prob.shape
        for shown in (predicted, heatmap, regions):
            assert shown and Path(shown).is_file()
            assert _rgb(shown).shape == (height, width, 3)  # the input's size and aspect
        red = _rgb(predicted).astype(int)
        mask = prob > threshold
        assert mask.any() and (~mask).any()
        assert np.all(red[mask, 0] > red[mask, 1]) and np.all(red[mask, 1] == red[mask, 2])
        assert np.all(red[~mask, 0] == red[~mask, 1])  # grey where nothing is predicted
        assert result["model_version"] == version_id and result["threshold"] == threshold
        assert result["image_score"] == pytest.approx(summary.image_score, abs=1e-6)
        assert f"{summary.image_score:.3f}" in message
        assert result["area_fraction"] == pytest.approx(summary.area_fraction, abs=1e-6)
        expected_boxes = [asdict(b) for b in summary.boxes]
        assert expected_boxes
        assert [{**b, "confidence": pytest.approx(b["confidence"])} for b in expected_boxes] == (
            result["boxes"]
        )
        assert len(boxes["data"]) == len(expected_boxes)
        assert not (_rgb(regions) == _rgb(predicted)).all()  # the boxes are drawn
        text = json.dumps(response)
        assert xray.name not in text and xray.stem not in text
        assert not _holds_bytes(server_tmp, xray.read_bytes())  # the upload is deleted

        # The real MONOCHROME1 DICOM.
        response = client.predict(handle_file(str(dicom_mono1)), api_name="/predict")
        message, predicted, _heatmap, _regions, result, _boxes = response
        assert _rgb(predicted).shape == (*dicom_prob.shape, 3)
        dicom_red = _rgb(predicted).astype(int)
        dicom_mask = dicom_prob > threshold
        assert np.all(dicom_red[dicom_mask, 0] > dicom_red[dicom_mask, 1])
        assert np.all(dicom_red[~dicom_mask, 0] == dicom_red[~dicom_mask, 1])
        assert result["image_score"] == pytest.approx(dicom_summary.image_score, abs=1e-6)
        assert len(result["boxes"]) == len(dicom_summary.boxes)
        assert dicom_mono1.stem not in json.dumps(response)
        assert not _holds_bytes(server_tmp, dicom_mono1.read_bytes())

        # Random bytes: a plain refusal in the message, no images, no traceback.
        noise = tmp_path / "noise.bin"
        noise.write_bytes(np.random.default_rng(0).bytes(4096))
        message, predicted, _heatmap, _regions, result, _boxes = client.predict(
            handle_file(str(noise)), api_name="/predict"
        )
        assert "Not analysed" in message and "not a PNG, JPEG or DICOM file" in message
        assert "Traceback" not in message and predicted is None and result is None
        assert not _holds_bytes(server_tmp, noise.read_bytes())
        client.close()
    finally:
        code, out = _stop(proc)

    assert code == 0, log.read_text()[-3000:]
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # the CLI's one JSON line, Gradio's prints kept off stdout
    assert json.loads(lines[0])["model_version"] == version_id
    assert _files(ws.root) == before  # nothing stored in the workspace
    assert list(server_tmp.iterdir()) == []  # Gradio's folder removed on exit


def test_demo_refuses_an_unknown_model_version(run_cli, tmp_path):
    code, out, _err = run_cli("--workspace", str(tmp_path / "ws"), "demo", "--model", "99")
    assert code == 2
    assert "99" in out["error"]
