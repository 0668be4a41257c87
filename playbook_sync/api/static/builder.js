// The builder's only script: follow a generation job, and busy/confirm states on forms. Pages work without it.
(function () {
  var box = document.getElementById("job");
  if (box && box.dataset.job && (box.dataset.status === "queued" || box.dataset.status === "running")) {
    var poll = function () {
      fetch("/playbooks/jobs/" + box.dataset.job, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (job) {
        document.getElementById("job-message").textContent = job.kind + " generation: " + (job.message || job.status);
        document.getElementById("job-progress").value = job.progress;
        if (job.status === "succeeded" || job.status === "failed") { location.reload(); } else { setTimeout(poll, 700); }
      }).catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 300);
  }
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
      if (form.dataset.busy) { document.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); }); }
    });
  });
})();
