// Talking to Sori: the API key (asked for once when the server answers 401,
// kept in this browser), JSON requests, uploads with progress, and downloads.
import { t } from "./i18n.js";
import { $, el, errorMessage, showError, openDialog } from "./view.js";

/** The Authorization header for the key kept in this browser, if any. */
export function authHeaders() {
  const key = localStorage.getItem("sori.key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Shows the key dialog with the server's message; resolves once a key is saved. */
export function askKey(message) {
  return new Promise((resolve) => {
    $("key-message").textContent = message;
    $("key-input").value = "";
    $("key-form").onsubmit = () => {
      localStorage.setItem("sori.key", $("key-input").value.trim());
      resolve();
    };
    openDialog($("key-dialog"));
  });
}

/**
 * Runs `send` (resolving with {status, body}) until the server accepts the
 * key; a server that cannot be reached answers status 0 with a message.
 */
async function authorized(send) {
  const once = () => send().catch(() => ({ status: 0, body: { error: { message: t("server_unreachable") } } }));
  let answer = await once();
  while (answer.status === 401) {
    await askKey(errorMessage(answer.body));
    answer = await once();
  }
  return answer;
}

/** The body of `response`: JSON, or null when there is none (204). */
async function jsonOf(response) {
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : null;
}

/** Sends `method` to `url` with the key; resolves with {status, body}. */
export function request(url, method = "GET") {
  return authorized(async () => {
    const response = await fetch(url, { method, headers: authHeaders() });
    return { status: response.status, body: await jsonOf(response) };
  });
}

/** Downloads `url` (with the key) as a file named `name`. */
export async function download(url, name) {
  const { status, body } = await authorized(async () => {
    const response = await fetch(url, { headers: authHeaders() });
    return { status: response.status, body: response.ok ? await response.blob() : await jsonOf(response) };
  });
  if (status !== 200) return showError(errorMessage(body));
  const a = el("a", { href: URL.createObjectURL(body), download: name });
  a.click();
  URL.revokeObjectURL(a.href);
}

/** The file name of a transcript of `filename` with another extension. */
export function renamed(filename, ext) {
  return `${filename.replace(/\.[^.]+$/, "")}.${ext}`;
}

/** The formats a finished transcription downloads in: label, path under /files/{id}/, extension. */
export const DOWNLOADS = [["TXT", "text", "txt"], ["SRT", "srt", "srt"], ["VTT", "vtt", "vtt"], ["JSON", "json", "json"]];

/** Buttons that download transcription `file` ({file_id, filename}) in each format. */
export function downloadButtons(file) {
  return DOWNLOADS.map(([label, path, ext]) => {
    const button = el("button", { type: "button", class: "ghost", "data-format": ext, "aria-label": `${label}: ${file.filename}` }, label);
    button.addEventListener("click", () => download(`/files/${encodeURIComponent(file.file_id)}/${path}`, renamed(file.filename, ext)));
    return button;
  });
}

/** POSTs a form with upload progress; resolves with {status, body}. */
export function post(url, form, onProgress) {
  return authorized(() => postOnce(url, form, onProgress));
}

function postOnce(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.upload.onload = () => onProgress(1);
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response });
    xhr.onerror = () => reject(new Error(t("error_generic")));
    xhr.send(form);
  });
}
