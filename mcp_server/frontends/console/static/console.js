"use strict";
function cell(row, name, text) { const td = row.querySelector("td." + name); if (td) td.textContent = text; }
function render(job) {
  let row = document.querySelector('tr.job[data-job="' + job.job_id + '"]');
  if (!row) { location.reload(); return; }
  row.className = "job status-" + job.status;
  cell(row, "status", job.status);
  cell(row, "phase", job.phase || "");
  const progress = row.querySelector("td.progress");
  progress.textContent = "";
  if (job.percent !== null) {
    const bar = document.createElement("progress"); bar.max = 100; bar.value = job.percent;
    progress.append(bar, " " + job.percent + "%");
  }
  cell(row, "files", job.files_seen + "/" + (job.files_total === null ? "?" : job.files_total));
  cell(row, "chunks", String(job.chunks_created));
  cell(row, "eta", job.eta_seconds === null ? "" : Math.round(job.eta_seconds) + " s");
  if (!["pending", "running"].includes(job.status)) {
    const button = row.querySelector("button.cancel"); if (button) button.remove();
  }
  if (job.error_message && !document.querySelector('[data-error-for="' + job.job_id + '"]')) {
    const tr = document.createElement("tr"); tr.className = "error-row"; tr.dataset.errorFor = job.job_id;
    const td = document.createElement("td"); td.colSpan = 9;
    const pre = document.createElement("pre"); pre.className = "error"; pre.textContent = job.error_message;
    td.append(pre); tr.append(td); row.after(tr);
  }
}
async function refresh() {
  try {
    const response = await fetch("/api/jobs", {credentials: "same-origin"});
    if (response.ok) (await response.json()).jobs.forEach(render);
  } catch (e) { /* the next tick retries */ }
}
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.cancel");
  if (!button) return;
  button.disabled = true;
  await fetch("/api/jobs/" + button.dataset.job + "/cancel", {method: "POST", credentials: "same-origin"});
  refresh();
});
if (document.body.dataset.page === "jobs") setInterval(refresh, 1000);
