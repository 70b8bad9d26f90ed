// The History view: every kept transcription (GET /files), searched and
// filtered, a page at a time, and the recent batches (GET /batches); each
// opens in the view it was made in, and each can be deleted after a question.
import { t, LANGUAGES } from "./i18n.js";
import { $, el, fmt, speedInWords, showError, showNotice, errorMessage, cellWith, openDialog } from "./view.js";
import { request, downloadButtons } from "./api.js";

/** What the view shows now, kept to draw it again in another language. */
const history = { files: [], nextCursor: null, batches: [], filtered: false, open: null };

/** Wires the view; `open` holds {transcription(id), batch(id), forget(id)} of the other views. */
export function initHistory(open) {
  history.open = open;
  $("history-search").addEventListener("submit", (e) => {
    e.preventDefault();
    loadHistory();
  });
  $("history-search").addEventListener("reset", () => setTimeout(loadHistory));
  $("history-more").addEventListener("click", () => loadFiles(history.nextCursor));
}

/** Fills the language filter's options (again, after the page's language changed). */
export function labelHistory() {
  const select = $("history-language");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, t("any_language")),
    ...LANGUAGES.filter((code) => code !== "auto").map((code) => el("option", { value: code }, code)));
  select.value = chosen;
  renderFiles();
  renderBatches();
}

/** Loads the first page of transcriptions (with the filters) and the batches. */
export async function loadHistory() {
  await Promise.all([loadFiles(null), loadBatches()]);
}

/** The filters of the form as GET /files' query; days are the browser's local days. */
function filters() {
  const query = new URLSearchParams();
  const text = (id) => $(id).value.trim();
  if (text("history-q")) query.set("q", text("history-q"));
  if (text("history-name")) query.set("name", text("history-name"));
  if ($("history-language").value) query.set("language", $("history-language").value);
  const from = $("history-from").value, to = $("history-to").value;
  if (from) query.set("from", new Date(`${from}T00:00:00`).toISOString());
  if (to) {
    const end = new Date(`${to}T00:00:00`);
    end.setDate(end.getDate() + 1);
    query.set("to", end.toISOString());
  }
  return query;
}

/** Loads a page of transcriptions: the first (`cursor` null) or the one after `cursor`. */
async function loadFiles(cursor) {
  const query = filters();
  history.filtered = [...query.keys()].length > 0;
  if (cursor) query.set("cursor", cursor);
  const { status, body } = await request(`/files?${query}`);
  if (status !== 200) return showError(errorMessage(body));
  showError("");
  history.files = cursor ? [...history.files, ...body.files] : body.files;
  history.nextCursor = body.next_cursor;
  renderFiles();
}

async function loadBatches() {
  const { status, body } = await request("/batches");
  if (status !== 200) return showError(errorMessage(body));
  history.batches = body;
  renderBatches();
}

/** A button labelled `label` for people and `label: name` for screen readers. */
function action(label, name, onClick, className = "ghost") {
  const button = el("button", { type: "button", class: className, "aria-label": `${label}: ${name}` }, label);
  button.addEventListener("click", onClick);
  return button;
}

function renderFiles() {
  $("history-rows").replaceChildren(...history.files.map((f) => {
    const tr = el("tr", { "data-file-id": f.file_id });
    const name = el("td", { class: "name" }, f.filename);
    if (f.batch_id) name.append(el("span", { class: "badge" }, t("in_batch")));
    const actions = el("td", { class: "actions-cell" });
    actions.append(action(t("open"), f.filename, () => history.open.transcription(f.file_id), "primary"));
    if (f.batch_id) actions.append(action(t("open_batch"), f.filename, () => history.open.batch(f.batch_id)));
    else actions.append(action(t("delete"), f.filename, () => deleteFile(f), "danger"));
    const downloads = el("td", { class: "downloads" });
    downloads.append(...downloadButtons(f));
    tr.append(
      name,
      el("td", {}, fmt.date(f.created_at)),
      el("td", { class: "num" }, fmt.sec(f.audio_duration_sec)),
      el("td", {}, f.language),
      el("td", { class: "num" }, fmt.sec(f.processing_time_sec)),
      el("td", { class: "num" }, fmt.pct(f.cpu_percent_avg)),
      el("td", { class: "num" }, fmt.mib(f.ram_mb_peak)),
      el("td", { class: "speed" }, speedInWords(f.real_time_factor)),
      actions,
      downloads,
    );
    return tr;
  }));
  const empty = $("history-empty");
  empty.hidden = history.files.length > 0;
  empty.textContent = t(history.filtered ? "history_no_match" : "history_empty");
  $("history-more").hidden = !history.nextCursor;
}

function renderBatches() {
  $("batches-rows").replaceChildren(...history.batches.map((b) => {
    const tr = el("tr", { "data-batch-id": b.batch_id, "data-status": b.status });
    const when = fmt.date(b.created_at);
    const actions = el("td", { class: "actions-cell" });
    actions.append(action(t("open"), when, () => history.open.batch(b.batch_id), "primary"),
      action(t("delete"), when, () => deleteBatch(b), "danger"));
    tr.append(
      el("td", {}, when),
      el("td", { class: "num" }, String(b.progress.total)),
      cellWith(el("span", { class: `status ${b.status === "complete" ? "done" : "processing"}` }, t(`batch_${b.status}`))),
      el("td", {}, t("progress", b.progress)),
      actions,
    );
    return tr;
  }));
  $("batches-empty").hidden = history.batches.length > 0;
}

/** Asks before deleting; resolves true when the person confirms. */
function confirmDelete(message) {
  const dialog = $("confirm-dialog");
  $("confirm-message").textContent = message;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
    openDialog(dialog);
  });
}

async function deleteFile(file) {
  if (!(await confirmDelete(t("confirm_file", { name: file.filename })))) return;
  await deleted(`/files/${encodeURIComponent(file.file_id)}`, file.file_id, file.filename);
}

async function deleteBatch(batch) {
  const date = fmt.date(batch.created_at);
  if (!(await confirmDelete(t("confirm_batch", { date, n: batch.progress.total })))) return;
  await deleted(`/batch/${encodeURIComponent(batch.batch_id)}`, batch.batch_id, date);
}

/** Sends the deletion; says what went, or why not, and shows the history without it. */
async function deleted(url, id, name) {
  const { status, body } = await request(url, "DELETE");
  if (status !== 204) return showError(errorMessage(body));
  history.open.forget(id);
  showNotice(t("deleted", { name }));
  await loadHistory();
}
