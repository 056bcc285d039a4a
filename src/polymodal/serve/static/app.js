// The demo page: one field per input that GET /metadata lists, POST /predict?explain=1 as multipart,
// then the label, a bar per class and each input's saliency map (over the image for image inputs).
"use strict";

const $ = (id) => document.getElementById(id);
const ACCEPT = { image: "image/*", audio: "audio/*,.wav,.flac,.ogg,.npy", video: "video/*", timeseries: ".npy,.csv" };
let meta = null;
const imageUrls = {}; // input name -> object URL of the chosen image file

function showError(message) {
  $("error").textContent = message || "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error || JSON.stringify(body)}`;
  } catch (_) {
    return `${response.status}: ${response.statusText}`;
  }
}

function buildFields(inputs) {
  const fields = $("fields");
  for (const input of inputs) {
    const box = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = `${input.name} (${input.modality})`;
    box.appendChild(legend);
    let control;
    if (input.file) {
      control = document.createElement("input");
      control.type = "file";
      control.accept = ACCEPT[input.modality] || "";
      if (input.modality === "image") {
        control.addEventListener("change", () => {
          const file = control.files[0];
          if (imageUrls[input.name]) URL.revokeObjectURL(imageUrls[input.name]);
          imageUrls[input.name] = file ? URL.createObjectURL(file) : null;
        });
      }
    } else {
      control = document.createElement("textarea");
      control.placeholder = input.accepts;
    }
    control.name = input.name;
    control.id = `input-${input.name}`;
    box.appendChild(control);
    const hint = document.createElement("div");
    hint.className = "muted";
    hint.textContent = `${input.accepts}; leave empty if missing`;
    box.appendChild(hint);
    fields.appendChild(box);
  }
}

function showProbabilities(probabilities, top) {
  const probs = $("probs");
  probs.innerHTML = "";
  for (const [name, p] of Object.entries(probabilities)) {
    const row = document.createElement("div");
    row.className = "row" + (name === top ? " top" : "");
    row.dataset.class = name;
    row.innerHTML = '<span class="name"></span><span class="track"><div class="fill"></div></span><span class="value"></span>';
    row.querySelector(".name").textContent = name;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = p.toFixed(3);
    probs.appendChild(row);
  }
}

// A (h, w) map in [0, 1] as a red, semi-transparent RGBA image of the same size.
function heatmap(map, flip) {
  const h = map.length, w = map[0].length;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    const src = map[flip ? h - 1 - y : y];
    for (let x = 0; x < w; x++) {
      const v = Math.max(0, Math.min(1, src[x]));
      const i = 4 * (y * w + x);
      img.data[i] = 255;
      img.data[i + 1] = Math.round(200 * (1 - v));
      img.data[i + 2] = 0;
      img.data[i + 3] = Math.round(190 * v);
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

async function drawMap(name, modality, explanation) {
  let map = explanation.map;
  if (!Array.isArray(map[0])) map = [map]; // a (T,) map: one row
  const figure = document.createElement("figure");
  const canvas = document.createElement("canvas");
  canvas.id = `map-${name}`;
  const size = 224;
  canvas.width = modality === "image" ? size : Math.max(size, 3 * map[0].length);
  canvas.height = modality === "image" ? size : Math.max(48, Math.min(size, 4 * map.length));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (modality === "image" && imageUrls[name]) {
    const img = new Image();
    img.src = imageUrls[name];
    await img.decode();
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  }
  ctx.imageSmoothingEnabled = true;
  // Spectrogram-like maps (audio features): low frequencies at the bottom.
  ctx.drawImage(heatmap(map, modality === "audio"), 0, 0, canvas.width, canvas.height);
  canvas.dataset.ready = "1";
  const caption = document.createElement("figcaption");
  caption.className = "muted";
  caption.textContent = `${name}: ${explanation.method}`;
  figure.append(canvas, caption);
  $("maps").appendChild(figure);
}

async function predict(event) {
  event.preventDefault();
  showError("");
  const data = new FormData();
  for (const input of meta.inputs) {
    const control = $(`input-${input.name}`);
    if (input.file && control.files.length) data.append(input.name, control.files[0]);
    else if (!input.file && control.value.trim()) data.append(input.name, control.value);
  }
  const explain = meta.explain && $("explain").checked;
  $("status").textContent = "predicting…";
  const t0 = performance.now();
  const response = await fetch(`/predict${explain ? "?explain=1" : ""}`, { method: "POST", body: data });
  $("status").textContent = `${(performance.now() - t0).toFixed(0)} ms`;
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const result = await response.json();
  $("result").hidden = false;
  $("maps").innerHTML = "";
  $("probs").innerHTML = "";
  $("label").textContent = result.label ?? result.text ?? (result.labels ? result.labels.join(", ") : "");
  $("missing").textContent = result.missing && result.missing.length
    ? `missing: ${result.missing.join(", ")} (predicted from the others)` : "";
  if (result.probabilities) showProbabilities(result.probabilities, result.label);
  const shown = new Set(["label", "labels", "text", "probabilities", "missing", "explanation"]);
  const other = Object.fromEntries(Object.entries(result).filter(([k]) => !shown.has(k)));
  $("other").textContent = Object.keys(other).length ? JSON.stringify(other) : "";
  const modality = Object.fromEntries(meta.inputs.map((i) => [i.name, i.modality]));
  for (const [name, explanation] of Object.entries(result.explanation || {})) {
    await drawMap(name, modality[name], explanation);
  }
  $("result").dataset.done = "1";
}

async function generate(event) {
  event.preventDefault();
  showError("");
  const out = $("generated");
  out.textContent = $("prompt").value;
  const body = {
    prompt: $("prompt").value,
    max_tokens: Number($("max-tokens").value),
    temperature: Number($("temperature").value),
    stream: true,
  };
  const response = await fetch("/generate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out.textContent += decoder.decode(value, { stream: true });
  }
}

async function main() {
  const response = await fetch("/metadata");
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  meta = await response.json();
  if (meta.use === "generate") {
    $("about").textContent = `${meta.run}: a language model (vocabulary ${meta.vocab_size}, context ${meta.block_size})`;
    $("lm-form").hidden = false;
    $("lm-form").addEventListener("submit", generate);
    return;
  }
  if (meta.use === "chat") {
    startChat(meta); // chat.js
    return;
  }
  const names = meta.inputs.map((i) => `${i.name} (${i.modality})`).join(", ");
  const classes = meta.classes ? `; ${meta.classes.length} classes` : "";
  $("about").textContent = `${meta.run}: ${meta.head} model over ${names}${classes}`;
  buildFields(meta.inputs);
  $("explain-box").hidden = !meta.explain;
  $("form").hidden = false;
  $("form").addEventListener("submit", (e) => predict(e).catch((err) => showError(String(err))));
}

window.addEventListener("DOMContentLoaded", () => main().catch((err) => showError(String(err))));
