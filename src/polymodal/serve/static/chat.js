// The chat panel for assistant runs: drop (or pick) an image or a sound, ask, read the answer as it streams.
// The server keeps no conversation: every POST /chat sends the question, the earlier turns and the files.
"use strict";

const chat = { meta: null, files: {}, history: [] };

function inputFor(file) {
  // The run's input whose modality matches the file's type (by MIME type, else by extension).
  const type = file.type || "";
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  const guess = type.startsWith("image/") || ["png", "jpg", "jpeg", "webp", "bmp"].includes(ext) ? "image"
    : type.startsWith("audio/") || ["wav", "flac", "ogg"].includes(ext) ? "audio"
    : type.startsWith("video/") ? "video" : ext === "npy" || ext === "csv" ? "timeseries" : "";
  return chat.meta.inputs.find((i) => i.modality === guess);
}

function attach(files) {
  showError("");
  for (const file of files) {
    const input = inputFor(file);
    if (!input) {
      const took = chat.meta.inputs.map((i) => `${i.name} (${i.modality})`).join(", ");
      showError(`${file.name}: this assistant reads ${took}; drop one of those`);
      continue;
    }
    if (chat.files[input.name]) chat.history = []; // a new file for an input starts the turns afresh
    chat.files[input.name] = file;
  }
  showAttached();
}

function showAttached() {
  const names = Object.entries(chat.files).map(([name, f]) => `${name}: ${f.name}`);
  $("attached").textContent = names.length ? `attached — ${names.join(", ")}` : "nothing attached";
}

function addLine(who, text) {
  const line = document.createElement("div");
  line.className = `turn ${who}`;
  line.textContent = text;
  $("log").appendChild(line);
  return line;
}

async function send(event) {
  event.preventDefault();
  showError("");
  const message = $("message").value;
  const data = new FormData();
  data.append("message", message);
  data.append("history", JSON.stringify(chat.history));
  for (const [name, file] of Object.entries(chat.files)) data.append(name, file);
  const response = await fetch("/chat", { method: "POST", body: data });
  if (!response.ok) {
    showError(await errorText(response)); // one line; the conversation goes on
    return;
  }
  addLine("question", message);
  const answer = addLine("answer", "");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    answer.textContent += decoder.decode(value, { stream: true });
  }
  chat.history.push({ question: message, answer: answer.textContent });
  $("message").value = "";
  answer.dataset.done = "1";
}

function startChat(meta) {
  chat.meta = meta;
  const names = meta.inputs.map((i) => `${i.name} (${i.modality})`).join(", ");
  $("about").textContent = `${meta.run}: an assistant that answers questions about ${names} (context ${meta.block_size})`;
  $("chat").hidden = false;
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    attach(e.dataTransfer.files);
  });
  $("chat-file").addEventListener("change", () => attach($("chat-file").files));
  $("chat-form").addEventListener("submit", (e) => send(e).catch((err) => showError(String(err))));
  $("chat-reset").addEventListener("click", () => {
    chat.files = {};
    chat.history = [];
    $("log").innerHTML = "";
    $("chat-file").value = "";
    showAttached();
  });
  showAttached();
}
