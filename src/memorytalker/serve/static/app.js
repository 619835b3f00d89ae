// The page: upload or record speech, follow the job, show the 3D face, the video and the downloads.
import { FaceViewer } from './viewer.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 400;
const RECORDER_TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4'];

const page = {
  info: null,
  viewer: null,
  job: null,
  faceUrl: null,
  recorder: null,
  busy: false,
  lastError: null,
};
window.memorytalker = page; // for the end-to-end test and for curious users

function setState(state) {
  document.body.dataset.state = state;
}

function showStatus(text) {
  $('status').textContent = text;
}

function showError(message) {
  page.lastError = message;
  $('error').textContent = message;
  $('error').hidden = false;
  $('progress').hidden = true;
  showStatus('');
  setState('error');
}

function clearError() {
  page.lastError = null;
  $('error').hidden = true;
  $('error').textContent = '';
}

function setBusy(busy) {
  page.busy = busy;
  $('upload-button').disabled = busy || !$('file-input').files.length;
  $('record-button').disabled = busy && !(page.recorder && page.recorder.state === 'recording');
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

async function loadInfo() {
  try {
    const response = await fetch('/api/info');
    page.info = await response.json();
    $('limits').textContent =
      `Speech up to ${page.info.max_seconds} s, files up to ${page.info.max_bytes_text} ` +
      `(WAV, FLAC, OGG, MP3, M4A, WebM). Output: ${page.info.fps} frames per second.`;
  } catch (err) {
    showError(`Cannot reach the server: ${err.message}`);
  }
}

function resetResults() {
  const audio = $('audio');
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  const video = $('video');
  video.pause();
  video.removeAttribute('src');
  video.load();
  video.hidden = true;
  $('video-placeholder').hidden = false;
  $('downloads').hidden = true;
  $('play-button').disabled = true;
  page.faceUrl = null;
  page.job = null;
  if (page.viewer) page.viewer.unload();
  $('viewer-placeholder').hidden = false;
}

async function submitAudio(blob, filename) {
  clearError();
  resetResults();
  if (page.info && blob.size > page.info.max_bytes) {
    showError(`${filename} is larger than this server's limit of ${page.info.max_bytes_text}`);
    return;
  }
  setBusy(true);
  setState('uploading');
  showStatus(`Uploading ${filename}…`);
  const form = new FormData();
  form.append((page.info && page.info.upload_field) || 'audio', blob, filename);
  let response;
  try {
    response = await fetch('/api/jobs', { method: 'POST', body: form });
  } catch (err) {
    setBusy(false);
    showError(`Cannot reach the server: ${err.message}`);
    return;
  }
  const data = await readJson(response);
  if (!response.ok) {
    setBusy(false);
    showError(data.error || `The server refused the upload (HTTP ${response.status}).`);
    return;
  }
  setState('working');
  follow(data.status_url);
}

async function follow(url) {
  let job;
  try {
    const response = await fetch(url);
    job = await readJson(response);
    if (!response.ok) throw new Error(job.error || `HTTP ${response.status}`);
  } catch (err) {
    setBusy(false);
    showError(`Lost track of the job: ${err.message}`);
    return;
  }
  page.job = job;
  const progress = $('progress');
  progress.hidden = false;
  progress.max = job.steps;
  progress.value = job.status === 'done' ? job.steps : job.step - 1;
  if (job.status === 'failed') {
    setBusy(false);
    showError(`Animation failed: ${job.error}`);
    return;
  }
  if (job.files.glb && page.faceUrl !== job.files.glb) {
    page.faceUrl = job.files.glb;
    showFace(job); // while the video renders
  }
  if (job.status === 'done') {
    showVideo(job);
    progress.hidden = true;
    setBusy(false);
    showStatus(`Done: ${job.frames} frames of ${job.seconds.toFixed(1)} s speech in ${job.elapsed.toFixed(1)} s.`);
    return;
  }
  showStatus(`Step ${job.step} of ${job.steps}: ${job.stage_label}… (${job.elapsed.toFixed(0)} s)`);
  setTimeout(() => follow(url), POLL_MS);
}

async function showFace(job) {
  const audio = $('audio');
  audio.src = job.files.wav;
  try {
    if (!page.viewer) page.viewer = new FaceViewer($('viewer'), () => audio.currentTime);
    const loaded = await page.viewer.load(job.files.glb);
    page.faceLoaded = loaded;
  } catch (err) {
    showError(err.message);
    return;
  }
  $('viewer-placeholder').hidden = true;
  $('play-button').disabled = false;
  if (document.body.dataset.state !== 'error') setState(job.status === 'done' ? 'done' : 'face');
  audio.play().catch(() => {}); // allowed after the user's click; otherwise the Play button does it
}

function showVideo(job) {
  const stem = job.filename.replace(/\.[^.]*$/, '') || 'speech';
  const video = $('video');
  video.src = job.files.mp4;
  video.hidden = false;
  $('video-placeholder').hidden = true;
  for (const [key, ext] of [['mp4', 'mp4'], ['glb', 'glb'], ['csv', 'csv'], ['npy', 'npy'], ['wav', 'wav']]) {
    const link = $(`download-${key}`);
    link.parentElement.hidden = !job.files[key];
    link.href = job.files[key] || '';
    link.download = `${stem}.${ext}`;
  }
  $('downloads').hidden = false;
  page.job = job;
  $('avatar-panel').hidden = !job.files.csv; // ARKit weights exist on the project's face only
  if (document.body.dataset.state !== 'error') setState('done');
}

// ------------------------------------------------------------------------------------ recording
async function toggleRecording() {
  const button = $('record-button');
  if (page.recorder && page.recorder.state === 'recording') {
    page.recorder.stop();
    return;
  }
  clearError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof MediaRecorder === 'undefined') {
    showError('This browser cannot record on this page (recording needs http://localhost or https). Upload a file instead.');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(`No microphone: ${err.message}. Allow microphone access, or upload a file instead.`);
    return;
  }
  const type = RECORDER_TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || '';
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const chunks = [];
  const started = performance.now();
  const maxMs = ((page.info && page.info.max_seconds) || 60) * 1000 - 500;
  const tick = setInterval(() => {
    const ms = performance.now() - started;
    $('record-timer').textContent = `${(ms / 1000).toFixed(1)} s`;
    if (ms >= maxMs && recorder.state === 'recording') recorder.stop();
  }, 100);
  recorder.ondataavailable = (event) => {
    if (event.data.size) chunks.push(event.data);
  };
  recorder.onstop = () => {
    clearInterval(tick);
    stream.getTracks().forEach((track) => track.stop());
    button.classList.remove('recording');
    button.innerHTML = '&#9679; Record';
    $('record-timer').textContent = '';
    page.recorder = null;
    const mime = recorder.mimeType || type || 'audio/webm';
    const ext = mime.includes('ogg') ? 'ogg' : mime.includes('mp4') ? 'm4a' : 'webm';
    submitAudio(new Blob(chunks, { type: mime }), `recording.${ext}`);
  };
  page.recorder = recorder;
  recorder.start(250);
  button.classList.add('recording');
  button.innerHTML = '&#9632; Stop';
  showStatus('Recording… press Stop when you are done.');
  setState('recording');
}

// ------------------------------------------------------------------------------------ wiring
function init() {
  $('file-input').addEventListener('change', () => setBusy(page.busy));
  $('upload-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const file = $('file-input').files[0];
    if (file) submitAudio(file, file.name);
  });
  $('record-button').addEventListener('click', toggleRecording);
  const audio = $('audio');
  const play = $('play-button');
  play.addEventListener('click', () => (audio.paused ? audio.play() : audio.pause()));
  audio.addEventListener('play', () => {
    play.innerHTML = '&#10074;&#10074; Pause';
    $('video').pause();
  });
  audio.addEventListener('pause', () => (play.innerHTML = '&#9654; Play'));
  $('video').addEventListener('play', () => audio.pause());
  setBusy(false);
  loadInfo();
}

init();

// ------------------------------------------------------------------------------------ your avatar
async function retargetAvatar(file) {
  const status = $('avatar-status');
  if (!file || !page.job) return;
  status.textContent = `Playing the ARKit weights on ${file.name}…`;
  const form = new FormData();
  form.append('avatar', file, file.name);
  let body;
  try {
    const response = await fetch(`/api/jobs/${page.job.id}/retarget`, { method: 'POST', body: form });
    body = await response.json();
    if (!response.ok) throw new Error(body.error || body.detail || `HTTP ${response.status}`);
  } catch (err) {
    status.textContent = '';
    showError(`Avatar: ${err.message}`);
    return;
  }
  const audio = $('audio');
  try {
    await page.viewer.load(body.url);
  } catch (err) {
    showError(err.message);
    return;
  }
  clearError();
  const missing = body.missing_arkit.length ? ` It has no target for: ${body.missing_arkit.join(', ')}.` : '';
  const unmapped = body.unmapped_targets.length ? ` Targets not driven: ${body.unmapped_targets.join(', ')}.` : '';
  status.textContent = `Your avatar talks: ${body.mapped} targets driven.${missing}${unmapped}`;
  const link = $('download-avatar');
  link.href = body.url;
  link.download = file.name.replace(/\.glb$/i, '') + '-talking.glb';
  link.hidden = false;
  audio.currentTime = 0;
  audio.play().catch(() => {});
}

$('avatar-input').addEventListener('change', (e) => retargetAvatar(e.target.files[0]));
