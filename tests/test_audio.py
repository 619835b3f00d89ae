"""Audio loading: any format / rate / channel count -> 16 kHz mono float32, with clear errors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_file

from memorytalker.data.audio import SAMPLE_RATE, load_audio, num_frames, read_audio_file, resample, write_wav
from memorytalker.errors import AudioError


def sine(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_frequency(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    window = np.hanning(len(audio))
    spectrum = np.abs(np.fft.rfft(audio * window))
    return float(np.argmax(spectrum) * rate / len(audio))


def encode_with_pyav(path, audio: np.ndarray, rate: int, container: str, codec: str) -> None:
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_size = 960
        for start in range(0, len(audio), frame_size):
            chunk = audio[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_wav_44k_stereo_int16(tmp_path):
    left, right = sine(440, 44100), sine(440, 44100) * 0.5
    pcm = (np.stack([left, right], 1) * 32767).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, 44100, subtype="PCM_16")
    audio = load_audio(tmp_path / "a.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == math.ceil(pcm.shape[0] * 160 / 441)
    assert abs(peak_frequency(audio) - 440) < 3
    assert np.max(np.abs(audio[200:-200])) == pytest.approx(0.375, abs=0.01)  # channel mean


def test_wav_22k_float_and_flac(tmp_path):
    wave = sine(300, 22050)
    sf.write(tmp_path / "a.wav", wave, 22050, subtype="FLOAT")
    sf.write(tmp_path / "a.flac", wave, 22050)
    for name in ("a.wav", "a.flac"):
        audio = load_audio(tmp_path / name)
        assert audio.size == math.ceil(wave.size * 320 / 441)
        assert abs(peak_frequency(audio) - 300) < 3


@pytest.mark.parametrize(
    ("container", "codec", "rate"), [("mp3", "libmp3lame", 44100), ("webm", "libopus", 48000)]
)
def test_compressed_containers_via_pyav(tmp_path, container, codec, rate):
    wave = sine(500, rate, seconds=1.0)
    path = tmp_path / f"a.{container}"
    encode_with_pyav(path, wave, rate, container, codec)
    audio = load_audio(path)
    assert abs(audio.size / SAMPLE_RATE - 1.0) < 0.1  # codec padding only
    assert abs(peak_frequency(audio) - 500) < 3
    from_bytes = load_audio(path.read_bytes())
    np.testing.assert_allclose(from_bytes, audio, atol=1e-6)


def test_bytes_input(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, sine(250, 16000), 16000, format="WAV", subtype="PCM_16")
    audio = load_audio(buf.getvalue())
    assert audio.size == 8000 and abs(peak_frequency(audio) - 250) < 3


def test_resampling_keeps_frequency_and_is_exact():
    for rate in (8000, 22050, 44100, 48000):
        wave = sine(1000, rate, seconds=1.0)
        out = resample(wave, rate, 16000)
        assert abs(out.size - 16000) <= 1
        assert abs(peak_frequency(out) - 1000) <= 1
        # amplitude preserved away from the edges
        assert np.max(np.abs(out[500:-500])) == pytest.approx(0.5, abs=0.01)
    same = sine(100, 16000)
    np.testing.assert_array_equal(resample(same, 16000, 16000), same)


def test_arrays_need_a_rate_and_integer_pcm_is_scaled():
    with pytest.raises(AudioError, match="sample_rate is required"):
        load_audio(np.zeros(100, np.float32))
    pcm = (sine(200, 16000) * 32767).astype(np.int16)
    audio = load_audio(pcm, sample_rate=16000)
    assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=1e-3)
    stereo = np.stack([pcm, pcm], 1)
    np.testing.assert_allclose(load_audio(stereo, sample_rate=16000), audio, atol=1e-6)
    with pytest.raises(AudioError, match="unsupported audio sample type"):
        load_audio(np.zeros(10, dtype=np.complex64), sample_rate=16000)


def test_bad_inputs_have_clear_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio at all " * 20)
    bad = np.zeros(1000, np.float32)
    bad[10] = np.nan
    cases = [
        (tmp_path / "empty.wav", "empty"),
        (tmp_path / "text.wav", "not a readable audio file"),
        (tmp_path / "missing.wav", "not found"),
        (tmp_path, "directory"),
        (b"", "empty"),
        (b"garbage bytes" * 10, "cannot read audio <bytes>"),
    ]
    for src, match in cases:
        with pytest.raises(AudioError, match=match):
            load_audio(src)
    with pytest.raises(AudioError, match="NaN"):
        load_audio(bad, sample_rate=16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="longer than the limit"):
        load_audio(np.zeros(32000, np.float32), sample_rate=16000, max_duration=1.0)
    with pytest.raises(AudioError, match="shorter than the minimum"):
        load_audio(np.zeros(800, np.float32) + 0.1, sample_rate=16000, min_duration=0.1)
    with pytest.raises(AudioError, match="silent"):
        load_audio(np.zeros(1600, np.float32), sample_rate=16000, reject_silence=True)
    with pytest.raises(AudioError, match="2-D"):
        load_audio(np.zeros((2, 2, 2), np.float32), sample_rate=16000)


def test_write_wav_round_trip_and_num_frames(tmp_path):
    wave = sine(300, 16000) * 3  # clipped to [-1, 1] on write
    write_wav(tmp_path / "o.wav", wave)
    data, rate = read_audio_file(tmp_path / "o.wav")
    assert rate == 16000 and data.shape == (8000, 1) and np.max(np.abs(data)) <= 1.0
    assert num_frames(16000, 30) == 30 and num_frames(8000, 25) == 12 and num_frames(1, 30) == 1


def test_real_speech_files():
    for name, seconds in (("faceformer_test.wav", 11.5), ("voca_test_sentence.wav", 5.1)):
        audio = load_audio(shared_file("speech", name))
        assert audio.dtype == np.float32 and abs(audio.size / SAMPLE_RATE - seconds) < 0.1
        assert 0.05 < np.max(np.abs(audio)) <= 1.0
